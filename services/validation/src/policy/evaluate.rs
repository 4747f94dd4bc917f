//! Evaluating the compiled rules on each object of a run, within the time limits, and turning
//! their results into findings.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use configsync_core::event::{Finding, Severity};
use regorus::Value;

use super::engine::{Compiled, SetRule, Target, error_text, locate};
use super::limits::{self, Exceeded, PolicyLimits};
use super::{EXEMPT_ANNOTATION, PolicyMode, baseline, redact};
use crate::manifests::Manifest;

/// Evaluates every target on every manifest. See [`super::Policies::evaluate`].
pub(super) fn evaluate(
    compiled: &Compiled,
    manifests: &[Manifest],
    limits: PolicyLimits,
    mode: PolicyMode,
) -> Vec<Finding> {
    let run_start = Instant::now();
    let mut findings = Vec::new();
    let mut engine = compiled.engine.clone();
    if compiled.uses_objects {
        let objects: Vec<serde_json::Value> = manifests
            .iter()
            .map(|m| redact::shareable(&m.object))
            .collect();
        let data = serde_json::json!({"configsync": {"objects": objects}});
        if let Err(error) = engine.add_data(Value::from(data)) {
            findings.push(run_finding(
                "policy.error",
                format!(
                    "data.configsync.objects is not available: {}",
                    error_text(&error.to_string())
                ),
            ));
        }
    }
    for (index, manifest) in manifests.iter().enumerate() {
        let run_left = limits.total.saturating_sub(run_start.elapsed());
        if run_left.is_zero() {
            findings.push(run_finding(
                "policy.timeout",
                format!(
                    "policies ran past the total limit of {:?}; {} of {} objects were not checked",
                    limits.total,
                    manifests.len() - index,
                    manifests.len()
                ),
            ));
            break;
        }
        let mut object_findings = Vec::new();
        evaluate_object(
            &mut engine,
            &compiled.targets,
            manifest,
            limits.per_object.min(run_left),
            &mut object_findings,
        );
        let exempt = exemptions(&manifest.object);
        let secrets = if redact::is_secret(&manifest.object) {
            redact::secret_strings(&manifest.object)
        } else {
            Vec::new()
        };
        for mut finding in object_findings {
            if exempt.contains(finding.rule.as_str()) {
                continue;
            }
            finding.message = redact::redact(&finding.message, &secrets);
            findings.push(finding);
        }
    }
    // Warn mode: policies never block, including policies that failed to run.
    if mode == PolicyMode::Warn {
        for f in &mut findings {
            f.severity = Severity::Warning;
        }
    }
    findings
}

/// All targets on one object, within `budget` for the whole object.
fn evaluate_object(
    engine: &mut regorus::Engine,
    targets: &[Target],
    manifest: &Manifest,
    budget: Duration,
    out: &mut Vec<Finding>,
) {
    // The baseline comes first; it is skipped for kinds it has no rule for.
    let skip = targets
        .first()
        .is_some_and(|t| t.query == baseline::COMBINED_QUERY)
        && !baseline::applies_to(&manifest.reference.kind);
    let targets = &targets[usize::from(skip)..];
    if targets.is_empty() {
        return;
    }
    engine.set_input(Value::from(without_nulls(&manifest.object)));
    evaluate_targets(engine, targets, manifest, (Instant::now(), budget), out);
}

/// The targets on the engine's input, within the object's (start, budget). Returns false
/// when the budget ran out.
fn evaluate_targets(
    engine: &mut regorus::Engine,
    targets: &[Target],
    manifest: &Manifest,
    (start, budget): (Instant, Duration),
    out: &mut Vec<Finding>,
) -> bool {
    for target in targets {
        let left = budget.saturating_sub(start.elapsed());
        let result = if left.is_zero() {
            Err(Stop::Limit(Exceeded::Time))
        } else {
            limits::set_budget(engine, left);
            engine
                .eval_rule(target.query.clone())
                .map_err(|error| match limits::exceeded(&error) {
                    Some(exceeded) => Stop::Limit(exceeded),
                    None => Stop::Error(error.to_string()),
                })
        };
        match result {
            Ok(value) => results(target, manifest, &value, out),
            Err(Stop::Limit(Exceeded::Time)) => {
                out.push(object_finding(
                    manifest,
                    "policy.timeout",
                    Severity::Error,
                    format!(
                        "policy {} ({}) ran past the limit of {budget:?} on {} {}; the remaining policies were not evaluated on it",
                        target.name(),
                        target.file,
                        manifest.reference.kind,
                        manifest.reference.name
                    ),
                ));
                // The object's budget is spent.
                return false;
            }
            Err(Stop::Limit(Exceeded::Memory)) => out.push(object_finding(
                manifest,
                "policy.memory",
                Severity::Error,
                format!(
                    "policy {} ({}) went over a memory limit on {} {}: numbers.range may build at most {} elements",
                    target.name(),
                    target.file,
                    manifest.reference.kind,
                    manifest.reference.name,
                    limits::MAX_RANGE_ELEMENTS
                ),
            )),
            Err(Stop::Error(_)) if target.rules.len() > 1 => {
                // A field of an unexpected type (the schema check reports it) broke one of
                // the combined rules: run them one by one, so the others still report.
                if !evaluate_targets(engine, &target.split(), manifest, (start, budget), out) {
                    return false;
                }
            }
            Err(Stop::Error(error)) => {
                // regorus reports some mistakes only when a rule runs (an unknown function,
                // a wrong number of arguments, conflicting rules): say where.
                let at = locate(&error)
                    .map(|(file, line, _)| format!(" at {file}:{line}"))
                    .unwrap_or_default();
                out.push(object_finding(
                    manifest,
                    "policy.error",
                    Severity::Error,
                    format!("policy {} failed{at}: {}", target.name(), error_text(&error)),
                ))
            }
        }
    }
    true
}

enum Stop {
    Limit(Exceeded),
    Error(String),
}

/// Findings from a target's value: the set of its one rule, or an array of sets (the
/// baseline's combined query).
fn results(target: &Target, manifest: &Manifest, value: &Value, out: &mut Vec<Finding>) {
    match (target.rules.as_slice(), value) {
        (_, Value::Undefined) => {}
        ([rule], value) => rule_results(rule, &target.file, manifest, value, out),
        (rules, Value::Array(values)) if values.len() == rules.len() => {
            for (rule, value) in rules.iter().zip(values.iter()) {
                rule_results(rule, &target.file, manifest, value, out);
            }
        }
        (_, other) => out.push(object_finding(
            manifest,
            "policy.result",
            Severity::Error,
            format!("{} returned {}", target.query, type_name(other)),
        )),
    }
}

/// Findings from a rule's set: messages or `{"msg", "rule"/"id", "path"}` objects.
fn rule_results(
    rule: &SetRule,
    file: &str,
    manifest: &Manifest,
    value: &Value,
    out: &mut Vec<Finding>,
) {
    let bad_result = |what: &str| {
        object_finding(
            manifest,
            "policy.result",
            Severity::Error,
            format!(
                "policy {}.{} ({file}) {what}; each result must be a string or an object with a string msg",
                rule.package, rule.rule
            ),
        )
    };
    let set = match value {
        Value::Undefined => return,
        Value::Set(set) => set,
        other => {
            out.push(bad_result(&format!("is {}, not a set", type_name(other))));
            return;
        }
    };
    let default_rule = format!("policy.{}.{}", rule.package, rule.rule);
    for element in set.iter_sorted() {
        let (message, id, path) = match element {
            Value::String(message) => (message.to_string(), None, None),
            Value::Object(object) => {
                let text = |key: &str| match object.get(&Value::from(key)) {
                    Some(Value::String(s)) => Some(s.to_string()),
                    _ => None,
                };
                let Some(message) = text("msg") else {
                    out.push(bad_result("returned an object without a string msg"));
                    continue;
                };
                (message, text("rule").or_else(|| text("id")), text("path"))
            }
            other => {
                out.push(bad_result(&format!("returned {}", type_name(other))));
                continue;
            }
        };
        let mut finding = object_finding(
            manifest,
            id.as_deref().unwrap_or(&default_rule),
            rule.severity,
            message,
        );
        finding.path = path;
        out.push(finding);
    }
}

/// The kind of a value, never the value itself (it may be a Secret's).
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Set(_) => "a set",
        Value::Object(_) => "an object",
        Value::Undefined => "undefined",
    }
}

/// The rule ids the object opts out of with the exemption annotation.
fn exemptions(object: &serde_json::Value) -> BTreeSet<&str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(EXEMPT_ANNOTATION))
        .and_then(serde_json::Value::as_str)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn object_finding(manifest: &Manifest, rule: &str, severity: Severity, message: String) -> Finding {
    manifest.finding(severity, rule, message)
}

fn run_finding(rule: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        rule: rule.into(),
        message,
        file: None,
        line: None,
        column: None,
        object: None,
        path: None,
    }
}

/// The object as the API server stores it: a field set to null is absent (`volumes:` left
/// empty by a template). Policies then never meet a null where they expect a list.
fn without_nulls(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(without_nulls).collect())
        }
        other => other.clone(),
    }
}
