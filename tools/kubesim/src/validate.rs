//! Object validation the API server does before storing: names, labels, identity.

use serde_json::Value;

const DNS_SUBDOMAIN_MAX: usize = 253;
const DNS_LABEL_MAX: usize = 63;

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= DNS_LABEL_MAX
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= DNS_SUBDOMAIN_MAX && s.split('.').all(is_dns_label)
}

/// How a kind's names are checked, as its Kubernetes validation does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NameRule {
    DnsLabel,
    DnsSubdomain,
    /// RBAC names only need to be usable as a path segment (`system:controller:x` is fine).
    PathSegment,
}

pub fn name_rule(kind: &str) -> NameRule {
    match kind {
        "Namespace" | "Service" => NameRule::DnsLabel,
        "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding" => NameRule::PathSegment,
        _ => NameRule::DnsSubdomain,
    }
}

pub fn check_name(rule: NameRule, name: &str) -> Result<(), String> {
    let ok = match rule {
        NameRule::DnsLabel => is_dns_label(name),
        NameRule::DnsSubdomain => is_dns_subdomain(name),
        NameRule::PathSegment => {
            !name.is_empty()
                && name.len() <= DNS_SUBDOMAIN_MAX
                && name != "."
                && name != ".."
                && !name.contains(['/', '%'])
        }
    };
    if ok {
        return Ok(());
    }
    Err(match rule {
        NameRule::DnsLabel => format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (at most {DNS_LABEL_MAX} characters)"
        ),
        NameRule::DnsSubdomain => format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (at most {DNS_SUBDOMAIN_MAX} characters)"
        ),
        NameRule::PathSegment => format!(
            "Invalid value: {name:?}: may not contain '/' or '%' and must be at most {DNS_SUBDOMAIN_MAX} characters"
        ),
    })
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= DNS_LABEL_MAX
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label or annotation key: `[prefix/]name`.
pub fn is_qualified_name(key: &str) -> bool {
    match key.rsplit_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(key),
    }
}

pub fn is_label_value(v: &str) -> bool {
    v.is_empty() || is_qualified_name_part(v)
}

/// Checks metadata that every object must satisfy; returns (field, message) causes.
pub fn check_metadata(object: &Value, rule: NameRule) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let meta = object.get("metadata");
    match meta.and_then(|m| m.get("name")).and_then(Value::as_str) {
        Some(name) => {
            if let Err(e) = check_name(rule, name) {
                causes.push(("metadata.name".into(), e));
            }
        }
        None => causes.push((
            "metadata.name".into(),
            "Required value: name or generateName is required".into(),
        )),
    }
    if let Some(labels) = meta.and_then(|m| m.get("labels")) {
        match labels.as_object() {
            Some(labels) => {
                for (k, v) in labels {
                    if !is_qualified_name(k) {
                        causes.push(("metadata.labels".to_string(), format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.'")));
                    }
                    match v.as_str() {
                        Some(s) if is_label_value(s) => {}
                        _ => causes.push((
                            format!("metadata.labels.{k}"),
                            format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most {DNS_LABEL_MAX} characters)"),
                        )),
                    }
                }
            }
            None => causes.push((
                "metadata.labels".into(),
                "Invalid value: must be a map of strings".into(),
            )),
        }
    }
    if let Some(ann) = meta.and_then(|m| m.get("annotations")) {
        match ann.as_object() {
            Some(ann) => {
                for (k, v) in ann {
                    if !is_qualified_name(k) || !v.is_string() {
                        causes.push(("metadata.annotations".into(), format!("Invalid value: {k:?}: annotations must be a map of strings with qualified keys")));
                    }
                }
            }
            None => causes.push((
                "metadata.annotations".into(),
                "Invalid value: must be a map of strings".into(),
            )),
        }
    }
    if let Some(f) = meta.and_then(|m| m.get("finalizers"))
        && !f.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        causes.push((
            "metadata.finalizers".into(),
            "Invalid value: must be a list of strings".into(),
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(check_name(NameRule::DnsSubdomain, "a.b-c").is_ok());
        assert!(check_name(NameRule::DnsSubdomain, "A").is_err());
        assert!(check_name(NameRule::DnsSubdomain, &"a".repeat(254)).is_err());
        assert!(check_name(NameRule::DnsLabel, "a.b").is_err());
        assert!(check_name(NameRule::PathSegment, "system:controller:x").is_ok());
        assert!(check_name(NameRule::PathSegment, "a/b").is_err());
    }

    #[test]
    fn labels() {
        let ok = json!({"metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "web", "e": ""}}});
        assert!(check_metadata(&ok, NameRule::DnsSubdomain).is_empty());
        let bad = json!({"metadata": {"name": "x", "labels": {"app": "-bad-"}}});
        assert_eq!(check_metadata(&bad, NameRule::DnsSubdomain).len(), 1);
        let unnamed = json!({"metadata": {}});
        assert_eq!(
            check_metadata(&unnamed, NameRule::DnsSubdomain)[0].0,
            "metadata.name"
        );
    }
}
