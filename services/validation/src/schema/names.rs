//! Object names, label keys and values, and annotation keys, as the API server validates
//! them (apimachinery's `IsDNS1123Subdomain`, `IsDNS1123Label`, `IsDNS1035Label`,
//! `IsQualifiedName`, `IsValidLabelValue`). The OpenAPI documents say only "string"; these
//! are the mistakes (`My_Config`, a label value with a space) that otherwise surface at apply.

use serde_json::Value;

use configsync_core::event::Severity;

use super::check::Problem;

/// How a kind's names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameRule {
    /// Lowercase letters, digits, `-` and `.`, at most 253: most kinds.
    Subdomain,
    /// Lowercase letters, digits and `-`, at most 63: Namespaces.
    Label,
    /// As `Label`, starting with a letter: Services.
    Label1035,
    /// Anything but `/`, `%`, `.` and `..`: RBAC objects (`system:controller:x`).
    PathSegment,
}

fn rule_for(kind: &str) -> NameRule {
    match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Label1035,
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => NameRule::PathSegment,
        _ => NameRule::Subdomain,
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63: a label value (may be empty) and
/// the name part of a qualified name.
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// `[prefix/]name`, the prefix a DNS subdomain: label and annotation keys.
fn is_qualified_name(s: &str) -> bool {
    match s.rsplit_once('/') {
        Some((prefix, name)) => is_subdomain(prefix) && !name.is_empty() && is_label_value(name),
        None => !s.is_empty() && is_label_value(s),
    }
}

fn name_ok(rule: NameRule, name: &str) -> bool {
    match rule {
        NameRule::Subdomain => is_subdomain(name),
        NameRule::Label => is_label(name),
        NameRule::Label1035 => is_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
        NameRule::PathSegment => {
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
        }
    }
}

fn explain(rule: NameRule) -> &'static str {
    match rule {
        NameRule::Subdomain => {
            "lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        }
        NameRule::Label => {
            "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
        }
        NameRule::Label1035 => {
            "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters"
        }
        NameRule::PathSegment => "any characters but '/' and '%', and not '.' or '..'",
    }
}

/// A name or key as quoted in a message: bounded, so a hostile one cannot bloat the report.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((end, _)) => format!("\"{}…\"", &s[..end]),
        None => format!("{s:?}"),
    }
}

/// Where objects keep metadata whose labels the API server validates.
const METADATA: &[&[&str]] = &[
    &["metadata"],
    &["spec", "template", "metadata"],
    &["spec", "jobTemplate", "spec", "template", "metadata"],
];

/// The problems of a built-in object's name, labels and annotation keys. Custom resources
/// get only the label and annotation checks (their names follow their CRD's rules).
pub(crate) fn problems(kind: &str, builtin: bool, object: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    let error = |path: String, message: String| Problem {
        severity: Severity::Error,
        rule: "schema.name",
        path,
        message,
    };
    let name = object.pointer("/metadata/name").and_then(Value::as_str);
    if let Some(name) = name.filter(|_| builtin) {
        let rule = rule_for(kind);
        if !name_ok(rule, name) {
            out.push(error(
                ".metadata.name".into(),
                format!(
                    "{kind} name {} is not valid: {}",
                    quoted(name),
                    explain(rule)
                ),
            ));
        } else if kind == "CronJob" && name.len() > 52 {
            // Its Jobs are named after it with an 11-character suffix.
            out.push(error(
                ".metadata.name".into(),
                format!("CronJob name {} is longer than 52 characters", quoted(name)),
            ));
        }
    }
    for steps in METADATA {
        let Some(meta) = steps.iter().try_fold(object, |v, step| v.get(*step)) else {
            continue;
        };
        let at = steps.join(".");
        if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
            for (key, value) in labels {
                if !is_qualified_name(key) {
                    out.push(error(
                        format!(".{at}.labels"),
                        format!("label key {} is not valid: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", quoted(key)),
                    ));
                }
                if let Some(text) = value.as_str()
                    && !is_label_value(text)
                {
                    out.push(error(
                        format!(".{at}.labels[{}]", Value::from(key.as_str())),
                        format!("label {} has an invalid value {}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", quoted(key), quoted(text)),
                    ));
                }
            }
        }
        if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
            for key in annotations.keys().filter(|k| !is_qualified_name(k)) {
                out.push(error(
                    format!(".{at}.annotations"),
                    format!("annotation key {} is not valid: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'", quoted(key)),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(kind: &str, object: Value) -> Vec<String> {
        problems(kind, true, &object)
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn names_follow_their_kinds_rules() {
        assert!(name_ok(NameRule::Subdomain, "web-1.example"));
        assert!(!name_ok(NameRule::Subdomain, "My_Config"));
        assert!(!name_ok(NameRule::Subdomain, &"a".repeat(254)));
        assert!(name_ok(NameRule::Label, "team-a"));
        assert!(!name_ok(NameRule::Label, "team.a"));
        assert!(!name_ok(NameRule::Label1035, "1web"));
        assert!(name_ok(NameRule::PathSegment, "system:controller:job"));
        assert!(!name_ok(NameRule::PathSegment, "a/b"));
        assert!(rules("ConfigMap", json!({"metadata": {"name": "ok-1"}})).is_empty());
        assert_eq!(
            rules("Service", json!({"metadata": {"name": "1-svc"}})),
            [".metadata.name"]
        );
        assert_eq!(
            rules("CronJob", json!({"metadata": {"name": "c".repeat(53)}})),
            [".metadata.name"]
        );
    }

    #[test]
    fn label_keys_and_values_and_annotation_keys() {
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("app"));
        assert!(!is_qualified_name("bad key!"));
        assert!(!is_qualified_name("Example.com/x"));
        assert!(is_label_value(""));
        assert!(is_label_value("v1.2_3-x"));
        assert!(!is_label_value("has space"));
        assert!(!is_label_value("-x"));
        let object = json!({
            "metadata": {"name": "d", "labels": {"ok": "v", "bad key!": "v", "v": "has space"},
                         "annotations": {"example.com/fine": "any value at all", "no way": "x"}},
            "spec": {"template": {"metadata": {"labels": {"app": "x y"}}}}
        });
        assert_eq!(
            rules("Deployment", object),
            [
                ".metadata.labels",
                ".metadata.labels[\"v\"]",
                ".metadata.annotations",
                ".spec.template.metadata.labels[\"app\"]"
            ]
        );
    }
}
