//! Who changed a drifted field: the field manager that owns its path in the live object's
//! `metadata.managedFields` (server-side apply bookkeeping), read without I/O.

use configsync_core::cluster::FIELD_MANAGER;
use serde_json::Value;

use crate::compare::segments;

/// One managedFields entry, as far as attribution cares.
struct Entry<'a> {
    manager: &'a str,
    time: &'a str,
    fields: Option<&'a Value>,
}

fn entries(live: &Value) -> Vec<Entry<'_>> {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some(Entry {
                        manager: e.get("manager")?.as_str()?,
                        time: e.get("time").and_then(Value::as_str).unwrap_or_default(),
                        fields: e.get("fieldsV1"),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a `fieldsV1` set contains the field at `pointer` (`/data/color` → `f:data` →
/// `f:color`; a list-valued path ends at the list's own key, since lists are atomic here).
fn owns(fields: &Value, pointer: &str) -> bool {
    let mut node = fields;
    for segment in segments(pointer) {
        match node.get(format!("f:{segment}")) {
            Some(next) => node = next,
            None => return false,
        }
    }
    true
}

/// The managers that own the field at `pointer`.
pub fn owners(live: &Value, pointer: &str) -> Vec<String> {
    entries(live)
        .into_iter()
        .filter(|e| e.fields.is_some_and(|f| owns(f, pointer)))
        .map(|e| e.manager.to_string())
        .collect()
}

/// The manager (other than ConfigSync) that made a drift at `paths`: the most recent one owning
/// one of the paths, else the most recent one at all (a removed field has no owner left).
pub fn changed_by(live: &Value, paths: &[String]) -> Option<String> {
    let others: Vec<Entry<'_>> = entries(live)
        .into_iter()
        .filter(|e| e.manager != FIELD_MANAGER)
        .collect();
    let latest = |candidates: Vec<&Entry<'_>>| {
        // RFC 3339 times in UTC compare as text; on a tie the later entry wins.
        candidates
            .into_iter()
            .rev()
            .max_by(|a, b| a.time.cmp(b.time))
            .map(|e| e.manager.to_string())
    };
    let owning: Vec<&Entry<'_>> = others
        .iter()
        .filter(|e| e.fields.is_some_and(|f| paths.iter().any(|p| owns(f, p))))
        .collect();
    latest(owning).or_else(|| latest(others.iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live() -> Value {
        json!({"metadata": {"managedFields": [
            {"manager": "configsync", "operation": "Apply", "time": "2026-11-26T06:00:00Z",
             "fieldsV1": {"f:data": {"f:size": {}}, "f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}}}}},
            {"manager": "kubectl-patch", "operation": "Update", "time": "2026-11-26T06:01:00Z",
             "fieldsV1": {"f:data": {"f:color": {}}}},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-11-26T06:05:00Z",
             "fieldsV1": {"f:spec": {"f:containers": {}}}}
        ]}})
    }

    #[test]
    fn the_owner_of_the_drifted_path_is_named() {
        assert_eq!(
            changed_by(&live(), &["/data/color".into()]).as_deref(),
            Some("kubectl-patch")
        );
        assert_eq!(
            changed_by(&live(), &["/spec/containers".into()]).as_deref(),
            Some("kubectl-edit")
        );
    }

    #[test]
    fn configsync_is_never_blamed_and_an_unowned_path_falls_back_to_the_latest_other_manager() {
        assert_eq!(
            changed_by(&live(), &["/data/size".into()]).as_deref(),
            Some("kubectl-edit")
        );
        assert_eq!(
            changed_by(&live(), &["/data/gone".into()]).as_deref(),
            Some("kubectl-edit")
        );
        let only_us = json!({"metadata": {"managedFields": [{"manager": "configsync", "fieldsV1": {"f:data": {}}}]}});
        assert_eq!(changed_by(&only_us, &["/data".into()]), None);
        assert_eq!(changed_by(&json!({}), &["/data".into()]), None);
    }

    #[test]
    fn owners_follow_escaped_pointers() {
        let o = owners(&live(), "/metadata/labels/app.kubernetes.io~1managed-by");
        assert_eq!(o, ["configsync"]);
    }
}
