//! Which declared fields of a desired object differ from the live object: a pure comparison
//! (no I/O) that walks the desired object's leaves and names each drift by its JSON pointer.

use base64::Engine;
use configsync_core::event::FieldDrift;
use serde_json::{Map, Value};

/// The RFC 6901 pointer of a path (`~` → `~0`, `/` → `~1`).
pub fn pointer<S: AsRef<str>>(segments: &[S]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.as_ref().replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// The segments of an RFC 6901 pointer (the inverse of [`pointer`]).
pub fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The declared fields of `desired` whose live value differs or is missing, sorted by path.
///
/// Only `metadata.labels` and `metadata.annotations` of the metadata are compared (the rest is
/// identity or written by the server), `status` never is, and lists are compared whole (as
/// server-side apply treats atomic lists), each desired item against the live item at the same
/// place, so that fields the server defaults inside items do not count as drift.
pub fn diff(desired: &Value, live: &Value) -> Vec<FieldDrift> {
    let mut drifts = Vec::new();
    let Some(desired) = desired.as_object() else {
        return drifts;
    };
    let desired = secret_string_data_as_data(desired, live);
    let mut path = Vec::new();
    for (key, value) in &desired {
        match key.as_str() {
            // Identity (already matched to find the live object) and what the cluster reports.
            "apiVersion" | "kind" | "status" => continue,
            "metadata" => {
                for part in ["labels", "annotations"] {
                    if let Some(declared) = value.get(part) {
                        path.extend(["metadata".to_string(), part.to_string()]);
                        walk(
                            &mut path,
                            declared,
                            live.get("metadata").and_then(|m| m.get(part)),
                            &mut drifts,
                        );
                        path.clear();
                    }
                }
            }
            _ => {
                path.push(key.clone());
                walk(&mut path, value, live.get(key), &mut drifts);
                path.clear();
            }
        }
    }
    drifts.sort_by(|a, b| a.path.cmp(&b.path));
    drifts
}

fn walk(
    path: &mut Vec<String>,
    desired: &Value,
    live: Option<&Value>,
    drifts: &mut Vec<FieldDrift>,
) {
    match desired {
        Value::Object(map) => {
            for (key, value) in map {
                path.push(key.clone());
                walk(path, value, live.and_then(|l| l.get(key)), drifts);
                path.pop();
            }
        }
        // A null in an applied manifest declares nothing.
        Value::Null => {}
        leaf => {
            if !live.is_some_and(|l| matches(leaf, l)) {
                drifts.push(FieldDrift {
                    path: pointer(path),
                    desired: Some(leaf.clone()),
                    live: live.cloned(),
                });
            }
        }
    }
}

/// Whether `live` holds everything `desired` declares: maps may carry more keys, lists must
/// have the same length with each item matching, numbers compare by value.
pub fn matches(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| v.is_null() || l.get(k).is_some_and(|lv| matches(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| matches(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

/// A real API server turns a Secret's `stringData` into base64 `data` and keeps no
/// `stringData`; compare it as `data` then. (A server that keeps `stringData` is compared as is.)
fn secret_string_data_as_data(desired: &Map<String, Value>, live: &Value) -> Map<String, Value> {
    let mut desired = desired.clone();
    let is_secret = desired.get("kind").and_then(Value::as_str) == Some("Secret");
    if !is_secret || live.get("stringData").is_some() {
        return desired;
    }
    if let Some(Value::Object(strings)) = desired.remove("stringData") {
        let data = desired
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(data) = data.as_object_mut() {
            for (key, value) in strings {
                if let Some(text) = value.as_str() {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                    data.insert(key, Value::String(encoded));
                }
            }
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn configmap(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default",
            "labels": {"app.kubernetes.io/managed-by": "configsync"}}, "data": data})
    }

    #[test]
    fn identical_objects_do_not_drift_and_server_additions_are_ignored() {
        let desired = configmap(json!({"color": "blue"}));
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("7");
        live["metadata"]["managedFields"] = json!([]);
        live["metadata"]["labels"]["extra"] = json!("x");
        live["status"] = json!({"phase": "Bound"});
        assert!(diff(&desired, &live).is_empty());
    }

    #[test]
    fn a_changed_value_is_reported_with_its_pointer_and_both_values() {
        let desired = configmap(json!({"color": "blue", "size": "m"}));
        let live = configmap(json!({"color": "red", "size": "m"}));
        let drifts = diff(&desired, &live);
        assert_eq!(
            drifts,
            [FieldDrift {
                path: "/data/color".into(),
                desired: Some(json!("blue")),
                live: Some(json!("red"))
            }]
        );
    }

    #[test]
    fn a_missing_field_or_label_is_a_drift_without_a_live_value() {
        let desired = configmap(json!({"color": "blue"}));
        let mut live = configmap(json!({}));
        live["metadata"]["labels"] = json!({});
        let paths: Vec<_> = diff(&desired, &live)
            .into_iter()
            .map(|d| (d.path, d.live))
            .collect();
        assert_eq!(
            paths,
            [
                ("/data/color".to_string(), None),
                (
                    "/metadata/labels/app.kubernetes.io~1managed-by".to_string(),
                    None
                )
            ]
        );
    }

    #[test]
    fn lists_are_compared_whole_but_tolerate_server_defaults_inside_items() {
        let desired = json!({"kind": "Deployment", "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
        let mut live = desired.clone();
        live["spec"]["replicas"] = json!(2.0);
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        assert!(diff(&desired, &live).is_empty());
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:latest");
        let drifts = diff(&desired, &live);
        assert_eq!(drifts.len(), 1);
        assert_eq!(drifts[0].path, "/spec/template/spec/containers");
        let mut longer = desired.clone();
        longer["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "web", "image": "nginx:1.27"}, {"name": "side", "image": "x"}]);
        assert_eq!(
            diff(&desired, &longer)[0].path,
            "/spec/template/spec/containers"
        );
    }

    #[test]
    fn other_metadata_and_nulls_are_not_compared() {
        let desired = json!({"metadata": {"name": "a", "namespace": "default", "finalizers": ["x"]}, "spec": {"gone": null}});
        assert!(diff(&desired, &json!({"metadata": {"name": "a"}})).is_empty());
    }

    #[test]
    fn pointers_escape_and_unescape() {
        let p = pointer(&["metadata", "annotations", "a/b~c"]);
        assert_eq!(p, "/metadata/annotations/a~1b~0c");
        assert_eq!(segments(&p), ["metadata", "annotations", "a/b~c"]);
    }

    #[test]
    fn secret_string_data_is_compared_as_encoded_data() {
        let desired =
            json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"password": "hunter2"}});
        let live =
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"password": "aHVudGVyMg=="}});
        assert!(diff(&desired, &live).is_empty());
        let live = json!({"apiVersion": "v1", "kind": "Secret", "data": {"password": "b3RoZXI="}});
        let drifts = diff(&desired, &live);
        assert_eq!(drifts.len(), 1);
        assert_eq!(drifts[0].path, "/data/password");
    }
}
