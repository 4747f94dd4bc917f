//! `PartialObjectMetadata` responses, for clients that ask for metadata only (kube's
//! `get_metadata`, `list_metadata` and `metadata_watcher`).

use bytes::Bytes;
use serde_json::{Value, json};

/// Whether the Accept header asks for `PartialObjectMetadata` (or its List).
pub fn wanted(accept: &str) -> bool {
    accept.contains("as=PartialObjectMetadata")
}

pub fn partial(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
}

pub fn list<'a>(items: impl Iterator<Item = &'a Value>, metadata: Value) -> Value {
    let items: Vec<Value> = items.map(partial).collect();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items})
}

/// Rewrites one watch line so that its object is metadata only (bookmarks and errors stay).
pub fn watch_line(line: Bytes) -> Bytes {
    let Ok(mut ev) = serde_json::from_slice::<Value>(&line) else {
        return line;
    };
    if matches!(ev["type"].as_str(), Some("ADDED" | "MODIFIED" | "DELETED")) {
        ev["object"] = partial(&ev["object"]);
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
    fn keeps_only_metadata() {
        let o = json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        assert_eq!(
            partial(&o),
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a"}})
        );
        assert!(wanted(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        ));
        let line = Bytes::from_static(
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"},\"data\":{}}}\n",
        );
        let out: Value = serde_json::from_slice(&watch_line(line)).expect("json");
        assert_eq!(out["object"]["kind"], "PartialObjectMetadata");
    }
}
