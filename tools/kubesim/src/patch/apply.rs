//! Server-side apply and the `metadata.managedFields` bookkeeping of every write.

use super::fields::{
    FieldSet, display, fields_of, from_fields_v1, get_at, remove_at, to_fields_v1, trackable,
};
use super::keys::{is_associative, is_set, item_key};
use serde_json::{Map, Value, json};

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Managed {
    fn is(&self, manager: &str, operation: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.is_none()
    }
}

pub fn read_managed(object: &Value) -> Vec<Managed> {
    let Some(entries) = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    entries
        .iter()
        .filter_map(|e| {
            Some(Managed {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e.get("operation")?.as_str()?.to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

pub fn write_managed(object: &mut Value, entries: &[Managed]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Fields that another manager owns with a different value than the apply sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub field: String,
}

/// Who writes, and how it is recorded.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
    /// Status is tracked only through the status subresource.
    pub keep_status: bool,
}

/// Server-side apply of `applied` onto `live` (an empty object when creating).
///
/// Returns the merged object with its managedFields, or the conflicts when `force` is off.
pub fn server_side_apply(
    live: &Value,
    applied: &Value,
    w: &Writer,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let applied_t = trackable(applied, w.keep_status);
    let live_t = trackable(live, w.keep_status);
    let new_fields = fields_of(&applied_t);
    let mut entries = read_managed(live);

    let mut conflicts = Vec::new();
    let mut conflicting = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.is(w.manager, "Apply") {
            continue;
        }
        for p in e.fields.intersection(&new_fields) {
            if p.last().map(String::as_str) == Some(".") {
                continue;
            }
            if get_at(&live_t, p) != get_at(&applied_t, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    field: display(p),
                });
                conflicting.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    for (i, p) in conflicting {
        entries[i].fields.remove(&p);
    }

    let mut merged = merge_value("", live, &strip_untracked_identity(applied));
    let previous: FieldSet = entries
        .iter()
        .find(|e| e.is(w.manager, "Apply"))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: Vec<&Managed> = entries
        .iter()
        .filter(|e| !e.is(w.manager, "Apply"))
        .collect();
    // Deepest first, so that an item goes after its own fields were considered.
    let mut removed: Vec<_> = previous.difference(&new_fields).cloned().collect();
    removed.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in removed {
        if is_item_key_field(&p) {
            // A key field goes with its item (the `.` path), never alone.
            continue;
        }
        let owner_prefix: &[String] = if p.last().map(String::as_str) == Some(".") {
            &p[..p.len() - 1]
        } else {
            &p
        };
        let still_owned = others
            .iter()
            .any(|e| e.fields.iter().any(|q| q.starts_with(owner_prefix)))
            || new_fields.iter().any(|q| q.starts_with(owner_prefix));
        if !still_owned {
            remove_at(&mut merged, &p);
            prune_empty_parents(&mut merged, owner_prefix);
        }
    }

    match entries.iter_mut().find(|e| e.is(w.manager, "Apply")) {
        Some(e) => {
            e.fields = new_fields;
            e.time = w.now.to_string();
            e.api_version = w.api_version.to_string();
        }
        None => entries.push(Managed {
            manager: w.manager.to_string(),
            operation: "Apply".into(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: None,
            fields: new_fields,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    write_managed(&mut merged, &entries);
    Ok(merged)
}

/// Records a non-apply write (create, update, patch) as an `Update` by `manager`:
/// it takes the fields it changed from everyone else.
pub fn record_update(old: Option<&Value>, new: &mut Value, w: &Writer, subresource: Option<&str>) {
    let old_t = old.map(|o| trackable(o, w.keep_status));
    let new_t = trackable(new, w.keep_status);
    let present = fields_of(&new_t);
    // A list item itself (`.`) changes only by appearing; edits inside it are its fields'.
    let changed: FieldSet = present
        .iter()
        .filter(|p| {
            old_t.as_ref().is_none_or(|o| {
                if p.last().is_some_and(|e| e == ".") {
                    get_at(o, p).is_none()
                } else {
                    get_at(o, p) != get_at(&new_t, p)
                }
            })
        })
        .cloned()
        .collect();
    let mut entries = old.map(read_managed).unwrap_or_default();
    // Entries of the other endpoint (main resource or status) track fields this write cannot see.
    for e in entries
        .iter_mut()
        .filter(|e| e.subresource.as_deref() == subresource)
    {
        e.fields = e.fields.intersection(&present).cloned().collect();
        if !(e.manager == w.manager
            && e.operation == "Update"
            && e.subresource.as_deref() == subresource)
        {
            e.fields = e.fields.difference(&changed).cloned().collect();
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| {
            e.manager == w.manager
                && e.operation == "Update"
                && e.subresource.as_deref() == subresource
        }) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = w.now.to_string();
                e.api_version = w.api_version.to_string();
            }
            None => entries.push(Managed {
                manager: w.manager.to_string(),
                operation: "Update".into(),
                api_version: w.api_version.to_string(),
                time: w.now.to_string(),
                subresource: subresource.map(str::to_string),
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    write_managed(new, &entries);
}

fn strip_untracked_identity(applied: &Value) -> Value {
    let mut a = applied.clone();
    if let Some(meta) = a.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("resourceVersion");
        meta.remove("uid");
        meta.remove("creationTimestamp");
        meta.remove("generation");
    }
    a
}

/// Structural merge of an applied configuration: maps field by field, associative lists
/// item by item, sets as unions, everything else replaced.
fn merge_value(field: &str, live: &Value, applied: &Value) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge_value(k, lv, av),
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a))
            if !a.is_empty() && is_associative(field, a) && is_associative(field, l) =>
        {
            let mut out = l.clone();
            for item in a {
                let key = item_key(field, a, item);
                let pos = out.iter().position(|x| item_key(field, l, x) == key);
                match pos {
                    Some(i) => out[i] = merge_value("", &out[i], item),
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        (Value::Array(l), Value::Array(a)) if is_set(field) => {
            let mut out = l.clone();
            out.extend(a.iter().filter(|x| !l.contains(x)).cloned());
            Value::Array(out)
        }
        _ => applied.clone(),
    }
}

/// Whether a path is a key field of an associative-list item, e.g. `k:{"name":"a"}` / `f:name`.
fn is_item_key_field(path: &[String]) -> bool {
    let [.., item, field] = path else {
        return false;
    };
    let (Some(key), Some(name)) = (item.strip_prefix("k:"), field.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|k| k.contains_key(name))
}

/// Removing a field's last child leaves an empty map or list that nobody applied; drop it.
fn prune_empty_parents(object: &mut Value, path: &[String]) {
    for len in (1..path.len()).rev() {
        let parent = &path[..len];
        if !parent.last().is_some_and(|p| p.starts_with("f:")) {
            return;
        }
        match get_at(object, parent) {
            Some(Value::Object(m)) if m.is_empty() => remove_at(object, parent),
            Some(Value::Array(a)) if a.is_empty() => remove_at(object, parent),
            _ => return,
        }
    }
}

/// The 409 message Kubernetes gives for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let mut by_manager: Vec<(String, Vec<String>)> = Vec::new();
    for c in conflicts {
        let who = format!("conflict with \"{}\" using {}", c.manager, c.api_version);
        match by_manager.iter_mut().find(|(w, _)| *w == who) {
            Some((_, fields)) => fields.push(c.field.clone()),
            None => by_manager.push((who, vec![c.field.clone()])),
        }
    }
    let n = conflicts.len();
    let mut msg = format!(
        "Apply failed with {n} conflict{}: ",
        if n == 1 { "" } else { "s" }
    );
    let parts: Vec<String> = by_manager
        .iter()
        .map(|(who, fields)| {
            if fields.len() == 1 {
                format!("{who}: {}", fields[0])
            } else {
                let who = who.replacen("conflict with", "conflicts with", 1);
                format!("{who}:\n- {}", fields.join("\n- "))
            }
        })
        .collect();
    msg.push_str(&parts.join("\n"));
    msg
}

/// Details causes for the conflict Status.
pub fn conflict_causes(conflicts: &[Conflict]) -> Vec<Value> {
    conflicts
        .iter()
        .map(|c| {
            json!({"type": "FieldManagerConflict",
                   "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                   "field": c.field})
        })
        .collect()
}

/// Whether anything but metadata and status differs (what bumps `metadata.generation`).
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        m.remove("status");
        m
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "apps/v1",
            now: NOW,
            keep_status: false,
        }
    }

    fn deploy(replicas: i64, labels: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "default", "labels": labels},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}})
    }

    #[test]
    fn apply_records_ownership() {
        let out = server_side_apply(
            &json!({}),
            &deploy(1, json!({"app": "web"})),
            &w("a"),
            false,
        )
        .expect("applies");
        let m = read_managed(&out);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].operation, "Apply");
        assert!(
            out.pointer("/metadata/managedFields/0/fieldsV1/f:spec/f:replicas")
                .is_some()
        );
        assert!(
            out.pointer("/metadata/managedFields/0/fieldsV1/f:metadata/f:name")
                .is_none()
        );
    }

    #[test]
    fn conflict_with_updater_unless_forced() {
        let live =
            server_side_apply(&json!({}), &deploy(1, json!({})), &w("a"), false).expect("applies");
        let mut patched = live.clone();
        patched["spec"]["replicas"] = json!(5);
        record_update(Some(&live), &mut patched, &w("kubectl-patch"), None);
        let err = server_side_apply(&patched, &deploy(1, json!({})), &w("a"), false)
            .expect_err("conflicts");
        assert_eq!(err[0].manager, "kubectl-patch");
        assert_eq!(err[0].field, ".spec.replicas");
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using apps/v1: .spec.replicas"
        );
        let forced =
            server_side_apply(&patched, &deploy(1, json!({})), &w("a"), true).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 1);
        assert!(
            read_managed(&forced)
                .iter()
                .all(|m| m.manager != "kubectl-patch")
        );
        // Same value: shared ownership, no conflict.
        let again = server_side_apply(&patched, &deploy(5, json!({})), &w("a"), false)
            .expect("no conflict");
        assert_eq!(read_managed(&again).len(), 2);
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_owned() {
        let live = server_side_apply(
            &json!({}),
            &deploy(1, json!({"a": "1", "b": "2"})),
            &w("a"),
            false,
        )
        .expect("applies");
        let mut labelled = live.clone();
        labelled["metadata"]["labels"]["c"] = json!("3");
        record_update(Some(&live), &mut labelled, &w("kubectl-label"), None);
        let out = server_side_apply(&labelled, &deploy(1, json!({"a": "1"})), &w("a"), false)
            .expect("applies");
        assert_eq!(out["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        let managers: Vec<String> = read_managed(&out).into_iter().map(|m| m.manager).collect();
        assert_eq!(managers, vec!["a", "kubectl-label"]);
    }

    #[test]
    fn removed_container_goes() {
        let mut two = deploy(1, json!({}));
        two["spec"]["template"]["spec"]["containers"] =
            json!([{"name": "nginx", "image": "nginx"}, {"name": "side", "image": "envoy"}]);
        let live = server_side_apply(&json!({}), &two, &w("a"), false).expect("applies");
        let out = server_side_apply(&live, &deploy(1, json!({})), &w("a"), false).expect("applies");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        let mut with_env = deploy(1, json!({}));
        with_env["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}]);
        let live = server_side_apply(&out, &with_env, &w("a"), false).expect("applies");
        let out = server_side_apply(&live, &deploy(1, json!({})), &w("a"), false).expect("applies");
        assert!(
            out["spec"]["template"]["spec"]["containers"][0]
                .get("env")
                .is_none(),
            "{out}"
        );
    }

    #[test]
    fn editing_inside_an_item_does_not_take_the_item() {
        let live =
            server_side_apply(&json!({}), &deploy(1, json!({})), &w("a"), false).expect("applies");
        let mut edited = live.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        record_update(Some(&live), &mut edited, &w("kubectl-edit"), None);
        let edit = read_managed(&edited)
            .into_iter()
            .find(|m| m.manager == "kubectl-edit")
            .expect("recorded");
        assert!(
            edit.fields
                .iter()
                .all(|p| p.last().is_some_and(|e| e != ".")),
            "{:?}",
            edit.fields
        );
        // The applier drops the container; kubectl-edit still owns its image, so it stays.
        let mut none = deploy(1, json!({}));
        none["spec"]["template"]["spec"]["containers"] = json!([{"name": "other", "image": "x"}]);
        let out = server_side_apply(&edited, &none, &w("a"), true).expect("applies");
        let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, vec!["nginx", "other"]);
    }

    #[test]
    fn generation_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"x": "1"}}, "spec": {"r": 1}, "status": {"s": 1}});
        let b = json!({"metadata": {}, "spec": {"r": 1}, "status": {"s": 2}});
        assert!(!spec_changed(&a, &b));
        assert!(spec_changed(&a, &json!({"spec": {"r": 2}})));
    }
}
