//! Field sets in the `FieldsV1` form of `metadata.managedFields`, kept as sets of leaf paths.
//!
//! A path element is `f:<field>`, `k:<key json>` (an item of an associative list),
//! `v:<value json>` (an item of a set) or `.` (the item itself).

use super::keys::{is_associative, is_set, item_key};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Top-level and metadata fields that are identity or server-owned, never tracked.
const UNTRACKED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The object without the fields that ownership does not track.
pub fn trackable(object: &Value, keep_status: bool) -> Value {
    let mut o = object.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if !keep_status {
            m.remove("status");
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            meta.retain(|k, _| !UNTRACKED_METADATA.contains(&k.as_str()));
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    o
}

/// The leaf paths that a value sets.
pub fn fields_of(value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = value {
        walk_map(m, &mut Vec::new(), &mut out);
    }
    out
}

fn walk_map(m: &Map<String, Value>, prefix: &mut Path, out: &mut FieldSet) {
    for (k, v) in m {
        prefix.push(format!("f:{k}"));
        walk_value(k, v, prefix, out);
        prefix.pop();
    }
}

fn walk_value(field: &str, v: &Value, prefix: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(child) if !child.is_empty() => walk_map(child, prefix, out),
        Value::Array(items) if !items.is_empty() && is_associative(field, items) => {
            for item in items {
                let Some(key) = item_key(field, items, item) else {
                    continue;
                };
                prefix.push(format!("k:{}", Value::Object(key)));
                prefix.push(".".into());
                out.insert(prefix.clone());
                prefix.pop();
                if let Value::Object(im) = item {
                    walk_map(im, prefix, out);
                }
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() && is_set(field) => {
            for item in items {
                prefix.push(format!("v:{item}"));
                out.insert(prefix.clone());
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The value a path points at; `.` points at the item itself.
pub fn get_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = value;
    let mut field = "";
    for el in path {
        if let Some(name) = el.strip_prefix("f:") {
            cur = cur.get(name)?;
            field = name;
        } else if let Some(key) = el.strip_prefix("k:") {
            let key: Value = serde_json::from_str(key).ok()?;
            let items = cur.as_array()?;
            cur = items
                .iter()
                .find(|i| item_key(field, items, i).map(Value::Object).as_ref() == Some(&key))?;
        } else if let Some(v) = el.strip_prefix("v:") {
            let v: Value = serde_json::from_str(v).ok()?;
            cur = cur.as_array()?.iter().find(|i| **i == v)?;
        } else if el != "." {
            return None;
        }
    }
    Some(cur)
}

/// Removes what a path points at: a field, a set value, or (for `.`) a list item.
pub fn remove_at(value: &mut Value, path: &[String]) {
    let path = match path.last().map(String::as_str) {
        Some(".") => &path[..path.len() - 1],
        _ => path,
    };
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let field = parents
        .iter()
        .rev()
        .find_map(|p| p.strip_prefix("f:"))
        .unwrap_or("")
        .to_string();
    let Some(parent) = get_at_mut(value, parents) else {
        return;
    };
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        let Ok(key) = serde_json::from_str::<Value>(key) else {
            return;
        };
        if let Some(items) = parent.as_array_mut() {
            let snapshot = items.clone();
            items.retain(|i| {
                item_key(&field, &snapshot, i).map(Value::Object).as_ref() != Some(&key)
            });
        }
    } else if let Some(v) = last.strip_prefix("v:") {
        let Ok(v) = serde_json::from_str::<Value>(v) else {
            return;
        };
        if let Some(items) = parent.as_array_mut() {
            items.retain(|i| *i != v);
        }
    }
}

fn get_at_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = value;
    let mut field = String::new();
    for el in path {
        if let Some(name) = el.strip_prefix("f:") {
            cur = cur.get_mut(name)?;
            field = name.to_string();
        } else if let Some(key) = el.strip_prefix("k:") {
            let key: Value = serde_json::from_str(key).ok()?;
            let items = cur.as_array_mut()?;
            let snapshot = items.clone();
            let pos = snapshot.iter().position(|i| {
                item_key(&field, &snapshot, i).map(Value::Object).as_ref() == Some(&key)
            })?;
            cur = &mut items[pos];
        } else if el != "." {
            return None;
        }
    }
    Some(cur)
}

/// The nested `fieldsV1` object of a set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for el in path {
            let next = cur
                .entry(el.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(m) = next else { break };
            cur = m;
        }
    }
    Value::Object(root)
}

/// The set a `fieldsV1` object describes: the paths to its empty leaves.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(v: &Value, prefix: &mut Path, out: &mut FieldSet) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    go(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// A path as conflict messages show it: `.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(name) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(name);
        } else if let Some(key) = el.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(key)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}})
    }

    #[test]
    fn fieldsv1_shape_matches_kubernetes() {
        let f = to_fields_v1(&fields_of(&obj()));
        assert_eq!(
            f,
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                       "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(from_fields_v1(&f), fields_of(&obj()));
    }

    #[test]
    fn get_and_remove_list_items() {
        let mut o = obj();
        let p: Path = vec![
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"nginx\"}",
            "f:image",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(get_at(&o, &p), Some(&json!("nginx")));
        let mut item = p.clone();
        item.pop();
        item.push(".".into());
        remove_at(&mut o, &item);
        assert_eq!(o["spec"]["template"]["spec"]["containers"], json!([]));
        assert_eq!(
            display(&p),
            ".spec.template.spec.containers[name=\"nginx\"].image"
        );
    }

    #[test]
    fn trackable_drops_identity() {
        let o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "uid": "u"}, "data": {"k": "v"}});
        assert_eq!(trackable(&o, false), json!({"data": {"k": "v"}}));
    }
}
