//! Compiling policies into one regorus engine, once: parsing each file (Rego v1, then v0 for
//! conftest-era files), preparing the engine, and finding the rules to evaluate. A file that
//! does not compile becomes a `policy.compile` finding and is left out; the others still run.

use configsync_core::event::{Finding, Severity};
use regorus::Engine;

use super::{baseline, limits};

/// The rule names a package may define, and the severity of their results.
pub(super) const RULES: &[(&str, Severity)] = &[
    ("deny", Severity::Error),
    ("violation", Severity::Error),
    ("warn", Severity::Warning),
];

/// One set rule: `deny`, `violation` or `warn` of one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SetRule {
    /// The package without `data.`, e.g. `kubernetes.security`.
    pub package: String,
    pub rule: &'static str,
    pub severity: Severity,
}

/// One query to evaluate per object: a user's set rule, or all of the baseline's at once.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// `data.<package>.<rule>`, or the baseline's combined rule.
    pub query: String,
    /// The policy file that declares it (the first, when a package spans files).
    pub file: String,
    /// The set rules the query returns: one (the value is the set), or for the baseline
    /// several (the value is an array of their sets, in this order).
    pub rules: Vec<SetRule>,
}

impl Target {
    /// One target per rule: how the baseline is evaluated on an object the combined query
    /// failed on, so that the rules that can run still report.
    pub fn split(&self) -> Vec<Target> {
        self.rules
            .iter()
            .map(|rule| Target {
                query: format!("data.{}.{}", rule.package, rule.rule),
                file: self.file.clone(),
                rules: vec![rule.clone()],
            })
            .collect()
    }

    /// The name of the policy in messages: `package.rule`, or the baseline's package prefix.
    pub fn name(&self) -> String {
        match self.rules.as_slice() {
            [one] => format!("{}.{}", one.package, one.rule),
            _ => "configsync.baseline".into(),
        }
    }
}

/// A prepared engine and what to evaluate with it.
#[derive(Debug, Clone)]
pub(super) struct Compiled {
    pub engine: Engine,
    pub targets: Vec<Target>,
    /// Whether a user policy reads `data.configsync` (the run's objects). Building that
    /// document costs more than the baseline itself on a run with large CRDs, so it is only
    /// built for policies that name it.
    pub uses_objects: bool,
}

/// Whether any of the user's sources names `data.configsync` (directly or by import).
fn uses_objects(sources: &[Source]) -> bool {
    sources
        .iter()
        .any(|s| !baseline::is_baseline(&s.file) && s.rego.contains("data.configsync"))
}

/// One parsed policy file.
struct Source {
    file: String,
    rego: String,
    /// Parsed as Rego v0 (the v1 parse failed and the v0 one did not).
    v0: bool,
}

/// Whether a path is a policy file: `*.rego`, but not a conftest/OPA unit test.
pub fn is_policy_file(path: &str) -> bool {
    path.ends_with(".rego") && !path.ends_with("_test.rego")
}

/// Compiles the baseline and the user's policies. Findings are `policy.compile`, with the
/// file and line of the error.
pub(super) fn compile(user: &[(String, String)]) -> (Compiled, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut sorted: Vec<&(String, String)> =
        user.iter().filter(|(p, _)| is_policy_file(p)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sources: Vec<Source> = baseline::MODULES
        .iter()
        .map(|(file, rego)| (file.to_string(), rego.to_string()))
        .chain([(
            baseline::COMBINED_FILE.to_string(),
            baseline::combined_module(),
        )])
        .map(|(file, rego)| Source {
            file,
            rego,
            v0: false,
        })
        .collect();
    for (file, rego) in sorted {
        match parse(file, rego) {
            Ok(v0) => sources.push(Source {
                file: file.clone(),
                rego: rego.clone(),
                v0,
            }),
            Err(error) => findings.push(compile_finding(file, &error)),
        }
    }
    // Errors the parser cannot see (conflicting rule kinds, recursion, ...) show when the
    // engine is prepared. Each round leaves out the file the error names, so this ends
    // after at most one round per user file.
    loop {
        let (engine, result) = build(&sources);
        let Err(error) = result else {
            let targets = targets(&engine, &sources);
            let uses_objects = uses_objects(&sources);
            return (
                Compiled {
                    engine,
                    targets,
                    uses_objects,
                },
                findings,
            );
        };
        let located = locate(&error.to_string());
        let culprit = located.as_ref().and_then(|(file, _, _)| {
            sources
                .iter()
                .position(|s| &s.file == file && !baseline::is_baseline(file))
        });
        match culprit {
            Some(index) => {
                let source = sources.remove(index);
                findings.push(compile_finding(&source.file, &error.to_string()));
            }
            None => {
                // Not attributable to one user file: run the baseline alone rather than
                // nothing, and say so.
                let mut finding = compile_finding("", &error.to_string());
                finding.file = located.map(|(file, _, _)| file);
                finding.message = format!("{}; user policies were not loaded", finding.message);
                findings.push(finding);
                sources.retain(|s| baseline::is_baseline(&s.file));
                let (engine, result) = build(&sources);
                let targets = match result {
                    Ok(()) => targets(&engine, &sources),
                    Err(_) => Vec::new(),
                };
                let uses_objects = uses_objects(&sources);
                return (
                    Compiled {
                        engine,
                        targets,
                        uses_objects,
                    },
                    findings,
                );
            }
        }
    }
}

/// Parses one file: Rego v1 first, then v0 (`deny[msg] { ... }`), as conftest did before
/// v1. Returns whether it is v0, or the error of the parse that got further.
fn parse(file: &str, rego: &str) -> Result<bool, String> {
    let mut engine = Engine::new();
    let v1 = match engine.add_policy(file.into(), rego.into()) {
        Ok(_) => return Ok(false),
        Err(e) => e.to_string(),
    };
    engine.set_rego_v0(true);
    let v0 = match engine.add_policy(file.into(), rego.into()) {
        Ok(_) => return Ok(true),
        Err(e) => e.to_string(),
    };
    let position = |e: &str| locate(e).map(|(_, line, column)| (line, column));
    Err(if position(&v0) > position(&v1) {
        v0
    } else {
        v1
    })
}

/// An engine with the sources added and prepared (regorus prepares on the first evaluation).
fn build(sources: &[Source]) -> (Engine, anyhow::Result<()>) {
    let mut engine = Engine::new();
    let result = (|| {
        for source in sources {
            engine.set_rego_v0(source.v0);
            engine.add_policy(source.file.clone(), source.rego.clone())?;
        }
        limits::add_bounded_builtins(&mut engine)?;
        // A constant of the baseline: evaluating it prepares the engine and nothing else.
        engine.eval_rule("data.configsync.baseline.lib.container_fields".into())?;
        Ok(())
    })();
    (engine, result)
}

/// The baseline's combined query, then the `deny`/`violation`/`warn` rules the user's
/// sources declare, in file order.
fn targets(engine: &Engine, sources: &[Source]) -> Vec<Target> {
    let baseline = declared_rules(
        engine,
        sources.iter().filter(|s| baseline::is_baseline(&s.file)),
    );
    let mut targets = vec![Target {
        query: baseline::COMBINED_QUERY.into(),
        file: baseline::COMBINED_FILE.into(),
        rules: baseline.into_iter().map(|(_, rule)| rule).collect(),
    }];
    let user = declared_rules(
        engine,
        sources.iter().filter(|s| !baseline::is_baseline(&s.file)),
    );
    targets.extend(user.into_iter().map(|(file, rule)| Target {
        query: format!("data.{}.{}", rule.package, rule.rule),
        file,
        rules: vec![rule],
    }));
    targets
}

/// (file, rule) of each set rule the sources declare, once per package and rule.
fn declared_rules<'a>(
    engine: &Engine,
    sources: impl Iterator<Item = &'a Source>,
) -> Vec<(String, SetRule)> {
    let mut found: Vec<(String, SetRule)> = Vec::new();
    for source in sources {
        let package = package_of(&source.rego);
        for (rule, severity) in RULES {
            let declared = engine
                .has_declared_rule_rooted_at(&source.file, rule)
                .unwrap_or(false);
            let known = found
                .iter()
                .any(|(_, r)| r.package == package && r.rule == *rule);
            if declared && !known {
                found.push((
                    source.file.clone(),
                    SetRule {
                        package: package.clone(),
                        rule,
                        severity: *severity,
                    },
                ));
            }
        }
    }
    found
}

/// The package a parsed file declares (`package a.b` → `a.b`): the first `package` line.
fn package_of(rego: &str) -> String {
    rego.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| p.split('#').next().unwrap_or(p).trim().to_string())
        .unwrap_or_default()
}

/// (file, line, column) of a regorus error, from its `--> file:line:col` marker.
pub(super) fn locate(error: &str) -> Option<(String, u32, u32)> {
    let start = error.find("--> ")? + 4;
    let location = error[start..].lines().next()?;
    let mut parts = location.rsplitn(3, ':');
    let column = parts.next()?.trim().parse().ok()?;
    let line = parts.next()?.trim().parse().ok()?;
    Some((parts.next()?.to_string(), line, column))
}

/// The message of a regorus error without its source excerpt: the text after `error: `.
pub(super) fn error_text(error: &str) -> String {
    match error.rfind("error: ") {
        Some(i) => error[i + 7..].trim().to_string(),
        None => error.trim().lines().next().unwrap_or_default().to_string(),
    }
}

fn compile_finding(file: &str, error: &str) -> Finding {
    let located = locate(error);
    Finding {
        column: located.as_ref().map(|l| l.2),
        ..Finding::file_error(
            "policy.compile",
            file,
            located.as_ref().map(|l| l.1),
            format!("policy does not compile: {}", error_text(error)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn the_baseline_is_one_query_over_every_rule_it_declares() {
        let (compiled, findings) = compile(&[]);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(compiled.targets.len(), 1);
        let target = &compiled.targets[0];
        assert_eq!(target.query, baseline::COMBINED_QUERY);
        // The combined module lists exactly the rules the baseline files declare.
        let declared: Vec<_> = target
            .rules
            .iter()
            .map(|r| (r.package.as_str(), r.rule))
            .collect();
        let mut listed = baseline::RULES.to_vec();
        let mut declared_sorted = declared.clone();
        listed.sort();
        declared_sorted.sort();
        assert_eq!(declared_sorted, listed);
    }

    #[test]
    fn v1_and_v0_files_load_and_tests_are_skipped() {
        let (compiled, findings) = compile(&user(&[
            (
                "p/new.rego",
                "package new\nimport rego.v1\ndeny contains \"x\" if true\n",
            ),
            (
                "p/old.rego",
                "package old\nwarn[msg] { msg := \"y\" }\nviolation[m] { m := \"z\" }\n",
            ),
            ("p/old_test.rego", "package old\ntest_x { false }\n"),
            ("p/README.md", "not rego"),
        ]));
        assert!(findings.is_empty(), "{findings:?}");
        let user: Vec<_> = compiled
            .targets
            .iter()
            .filter(|t| t.file.starts_with("p/"))
            .map(|t| (t.query.as_str(), t.rules[0].severity))
            .collect();
        assert_eq!(
            user,
            [
                ("data.new.deny", Severity::Error),
                ("data.old.violation", Severity::Error),
                ("data.old.warn", Severity::Warning),
            ]
        );
    }

    #[test]
    fn compile_errors_name_file_and_line_and_the_rest_still_loads() {
        let (compiled, findings) = compile(&user(&[
            (
                "p/broken.rego",
                "package broken\nimport rego.v1\n\ndeny contains msg if {\n  msg := \n}\n",
            ),
            (
                "p/ok.rego",
                "package ok\nimport rego.v1\nwarn contains \"w\" if true\n",
            ),
        ]));
        assert_eq!(findings.len(), 1, "{findings:?}");
        let f = &findings[0];
        assert_eq!(f.rule, "policy.compile");
        assert_eq!(f.file.as_deref(), Some("p/broken.rego"));
        assert!(matches!(f.line, Some(5 | 6)), "{f:?}");
        assert!(compiled.targets.iter().any(|t| t.query == "data.ok.warn"));
        assert!(!compiled.targets.iter().any(|t| t.file == "p/broken.rego"));
    }

    #[test]
    fn errors_found_when_preparing_drop_only_their_file() {
        // Parses, but the analyzer finds the variable assigned twice.
        let (compiled, findings) = compile(&user(&[
            (
                "p/conflict.rego",
                "package conflict\nimport rego.v1\ndeny contains y if { y := 1; y := 2 }\n",
            ),
            (
                "p/ok.rego",
                "package ok\nimport rego.v1\nwarn contains \"w\" if true\n",
            ),
        ]));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].file.as_deref(), Some("p/conflict.rego"));
        assert_eq!(findings[0].line, Some(3));
        assert!(compiled.targets.iter().any(|t| t.query == "data.ok.warn"));
    }

    #[test]
    fn locations_parse() {
        let e =
            "\n--> dir/a.rego:2:11\n  |\n2 | deny[msg] {\n  |   ^\nerror: `if` keyword is required";
        assert_eq!(locate(e), Some(("dir/a.rego".into(), 2, 11)));
        assert_eq!(error_text(e), "`if` keyword is required");
    }
}
