//! Merge keys of Kubernetes lists of maps, shared by strategic merge patch and server-side apply.
//!
//! kubesim keeps no OpenAPI schema, so lists are recognised by their field name, as the
//! built-in types declare them (`patchMergeKey`, `listMapKeys`); other lists are atomic.

use serde_json::{Map, Value};

/// The candidate key fields of a list field, the first one being required in every item.
fn key_fields(field: &str, items: &[Value]) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "imagePullSecrets"
        | "volumes"
        | "env"
        | "versions" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "hostAliases" => &["ip"],
        "ports" => {
            // Container ports and service ports share a field name but not their key.
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                &["containerPort", "protocol"]
            } else {
                &["port", "protocol"]
            }
        }
        _ => return None,
    })
}

/// The strategic-merge-patch key of a list, if its items are maps that carry it.
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let keys = key_fields(field, items)?;
    let primary = keys[0];
    items
        .iter()
        .all(|i| i.get(primary).is_some())
        .then_some(primary)
}

/// Whether server-side apply treats the list as associative (keyed) rather than atomic.
pub fn is_associative(field: &str, items: &[Value]) -> bool {
    merge_key(field, items).is_some()
}

/// The identity of one item of an associative list: its key fields, sorted.
pub fn item_key(field: &str, items: &[Value], item: &Value) -> Option<Map<String, Value>> {
    let keys = key_fields(field, items)?;
    let mut out = Map::new();
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    for k in sorted {
        if let Some(v) = item.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    out.contains_key(keys[0]).then_some(out)
}

/// Lists of scalars that Kubernetes merges as sets.
pub fn is_set(field: &str) -> bool {
    field == "finalizers"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ports_key_depends_on_kind_of_port() {
        let c = vec![json!({"containerPort": 80})];
        let s = vec![json!({"port": 80, "protocol": "TCP"})];
        assert_eq!(merge_key("ports", &c), Some("containerPort"));
        assert_eq!(merge_key("ports", &s), Some("port"));
        let k = item_key("ports", &s, &s[0]).expect("keyed");
        assert_eq!(Value::Object(k), json!({"port": 80, "protocol": "TCP"}));
    }

    #[test]
    fn unknown_lists_are_atomic() {
        assert!(!is_associative("args", &[json!("a")]));
        assert!(!is_associative("containers", &[json!({"image": "x"})]));
    }
}
