//! `meta.k8s.io/v1` Tables for `kubectl get`'s human-readable output.

use crate::registry::Resource;
use crate::store::Page;
use bytes::Bytes;
use serde_json::{Value, json};

fn columns(res: &Resource) -> Value {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name of the object", "priority": 0}),
    ];
    if !res.columns.is_empty() {
        for c in &res.columns {
            let kind = if c.kind == "date" {
                "string"
            } else {
                c.kind.as_str()
            };
            cols.push(json!({"name": c.name, "type": kind, "format": "", "description": c.json_path, "priority": c.priority}));
        }
        return Value::Array(cols);
    }
    if res.is_workload() && res.kind != "Job" {
        cols.push(json!({"name": "Ready", "type": "string", "format": "", "description": "Ready replicas", "priority": 0}));
    }
    cols.push(json!({"name": "Age", "type": "string", "format": "", "description": "Time since creation", "priority": 0}));
    Value::Array(cols)
}

/// The `.a.b[0].c` subset of JSONPath that printer columns use.
fn simple_json_path<'a>(o: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = o;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (field, index) = match part.split_once('[') {
            Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn age(o: &Value) -> String {
    age_of(
        o.pointer("/metadata/creationTimestamp")
            .unwrap_or(&Value::Null),
    )
}

fn age_of(timestamp: &Value) -> String {
    let Some(created) = timestamp.as_str() else {
        return "<unknown>".into();
    };
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn row(res: &Resource, o: &Value) -> Value {
    let name = o.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let mut cells = vec![name];
    if !res.columns.is_empty() {
        for c in &res.columns {
            let v = simple_json_path(o, &c.json_path)
                .cloned()
                .unwrap_or(Value::Null);
            cells.push(match (c.kind.as_str(), &v) {
                ("date", Value::String(_)) => json!(age_of(&v)),
                _ => v,
            });
        }
        return json!({"cells": cells, "object": o});
    }
    if res.is_workload() && res.kind != "Job" {
        let want = o
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let ready = o
            .pointer("/status/readyReplicas")
            .or(o.pointer("/status/numberReady"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        cells.push(json!(format!("{ready}/{want}")));
    }
    cells.push(json!(age(o)));
    // The whole object goes along, so that `-o name`, labels and watch output work.
    json!({"cells": cells, "object": o})
}

fn table(res: &Resource, rows: Vec<Value>, rv: Option<String>, cont: Option<String>) -> Value {
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv);
    }
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns(res), "rows": rows})
}

pub fn list(res: &Resource, page: &Page) -> Value {
    let rows = page.items.iter().map(|o| row(res, o)).collect();
    table(
        res,
        rows,
        Some(page.rv.to_string()),
        page.continue_token.clone(),
    )
}

pub fn single(res: &Resource, o: &Value) -> Value {
    let rv = o
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    table(res, vec![row(res, o)], rv, None)
}

/// Rewrites one watch line so that its object is a one-row Table (bookmarks and errors stay).
pub fn watch_line(res: &Resource, line: Bytes) -> Bytes {
    let Ok(mut ev) = serde_json::from_slice::<Value>(&line) else {
        return line;
    };
    if matches!(ev["type"].as_str(), Some("ADDED" | "MODIFIED" | "DELETED")) {
        ev["object"] = single(res, &ev["object"]);
        let mut v = serde_json::to_vec(&ev).unwrap_or_default();
        v.push(b'\n');
        return Bytes::from(v);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths() {
        let o = json!({"spec": {"replicas": 3, "items": [{"name": "a"}]}});
        assert_eq!(simple_json_path(&o, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(
            simple_json_path(&o, ".spec.items[0].name"),
            Some(&json!("a"))
        );
        assert_eq!(simple_json_path(&o, ".spec.missing"), None);
    }
}
