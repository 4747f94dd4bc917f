//! Strategic merge patch: JSON merge patch, except that lists of maps with a Kubernetes
//! merge key are merged item by item, and `$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList` and `$setElementOrder` directives are honoured.

use super::keys::merge_key;
use serde_json::{Map, Value};

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

pub fn strategic_merge(target: &Value, patch: &Value) -> Result<Value, String> {
    let Value::Object(p) = patch else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    let t = target.as_object().cloned().unwrap_or_default();
    Ok(merge_map(t, p)?
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(Map::new())))
}

/// Merges a patch map into a target map; `None` means the map was deleted (`$patch: delete`).
fn merge_map(
    mut target: Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, String> {
    match patch.get("$patch").map(|v| v.as_str()) {
        Some(Some("replace")) => return Ok(Some(strip_directives_map(patch))),
        Some(Some("delete")) => return Ok(None),
        Some(Some("merge")) | None => {}
        Some(other) => return Err(format!("unknown $patch directive {other:?}")),
    }
    for (k, pv) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with(SET_ORDER) {
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE) {
            let doomed = pv.as_array().ok_or_else(|| format!("{k} must be a list"))?;
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|i| !doomed.contains(i));
            }
            continue;
        }
        if pv.is_null() {
            target.remove(k);
            continue;
        }
        let merged = match (target.remove(k), pv) {
            (Some(Value::Object(tm)), Value::Object(pm)) => merge_map(tm, pm)?.map(Value::Object),
            (None | Some(Value::Null), Value::Object(pm)) => {
                merge_map(Map::new(), pm)?.map(Value::Object)
            }
            (Some(Value::Array(ta)), Value::Array(pa)) => {
                Some(Value::Array(merge_list(k, ta, pa)?))
            }
            (_, other) => Some(strip_directives(other)),
        };
        if let Some(v) = merged {
            target.insert(k.clone(), v);
        }
    }
    if let Some(retain) = patch.get("$retainKeys") {
        let keep: Vec<&str> = retain
            .as_array()
            .ok_or("$retainKeys must be a list")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(Some(target))
}

fn merge_list(field: &str, target: Vec<Value>, patch: &[Value]) -> Result<Vec<Value>, String> {
    // `[{"$patch": "replace"}, ...]` replaces the whole list.
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect());
    }
    let mut all = target.clone();
    all.extend(patch.iter().filter(|i| i.get("$patch").is_none()).cloned());
    let Some(key) = merge_key(field, &all) else {
        return Ok(patch.iter().map(strip_directives).collect());
    };
    let mut out = target;
    for item in patch {
        let Some(id) = item.get(key) else { continue };
        let pos = out.iter().position(|t| t.get(key) == Some(id));
        let directive = item.get("$patch").and_then(Value::as_str);
        match (pos, directive) {
            (Some(i), Some("delete")) => {
                out.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), _) => {
                let existing = out[i].as_object().cloned().unwrap_or_default();
                let pm = item.as_object().cloned().unwrap_or_default();
                match merge_map(existing, &pm)? {
                    Some(m) => out[i] = Value::Object(m),
                    None => {
                        out.remove(i);
                    }
                }
            }
            (None, _) => out.push(strip_directives(item)),
        }
    }
    Ok(out)
}

fn strip_directives_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), strip_directives(v)))
        .collect()
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives_map(m)),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
             "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "envoy"}
        ]}}}})
    }

    #[test]
    fn containers_merge_by_name() {
        let p = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]}]}}}});
        let out = strategic_merge(&deployment(), &p).expect("merges");
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c.as_array().map(Vec::len), Some(2));
        assert_eq!(c[0]["image"], "nginx:2");
        assert_eq!(c[0]["ports"][0]["containerPort"], 80);
        assert_eq!(c[0]["env"].as_array().map(Vec::len), Some(2));
        assert_eq!(c[1]["image"], "envoy");
    }

    #[test]
    fn patch_delete_removes_an_item() {
        let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
        let out = strategic_merge(&deployment(), &p).expect("merges");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn replace_directive_and_null() {
        let t = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let p = json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}});
        assert_eq!(
            strategic_merge(&t, &p).expect("merges"),
            json!({"metadata": {"labels": {"c": "3"}}})
        );
        let p = json!({"metadata": {"labels": {"a": null}}});
        assert_eq!(
            strategic_merge(&t, &p).expect("merges"),
            json!({"metadata": {"labels": {"b": "2"}}})
        );
    }

    #[test]
    fn lists_without_key_are_replaced() {
        let t = json!({"args": ["a", "b"]});
        assert_eq!(
            strategic_merge(&t, &json!({"args": ["c"]})).expect("merges"),
            json!({"args": ["c"]})
        );
        let t = json!({"finalizers": ["a", "b"]});
        let p = json!({"$deleteFromPrimitiveList/finalizers": ["a"]});
        assert_eq!(
            strategic_merge(&t, &p).expect("merges"),
            json!({"finalizers": ["b"]})
        );
    }

    #[test]
    fn non_object_patch_is_refused() {
        assert!(strategic_merge(&json!({}), &json!([1])).is_err());
    }
}
