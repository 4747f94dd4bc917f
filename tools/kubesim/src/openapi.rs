//! OpenAPI documents, only as far as kubectl needs them.
//!
//! kubectl decides between client-side schema validation and server-side field validation
//! by finding the `fieldValidation` query parameter on the PATCH operation of a kind in
//! `/openapi/v3/<group-version>`. Declaring it there lets `kubectl apply` validate on the
//! server (which accepts, and here ignores, `fieldValidation`) without full schemas.

use crate::registry::Resource;
use serde_json::{Map, Value, json};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of per group/version documents.
pub fn v3_index(resources: &[Resource], generation: u64) -> Value {
    let mut paths = Map::new();
    for r in resources {
        let p = gv_path(&r.group, &r.version);
        paths.entry(p.clone()).or_insert_with(
            || json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={generation:016X}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<api/v1|apis/group/version>`: one document with the operations of its kinds.
pub fn v3_document(resources: &[Resource], path: &str) -> Option<Value> {
    let served: Vec<&Resource> = resources
        .iter()
        .filter(|r| gv_path(&r.group, &r.version) == path)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for r in served {
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}}
        ]);
        let op = |id: &str| {
            json!({"operationId": id, "x-kubernetes-action": id, "x-kubernetes-group-version-kind": gvk,
                   "parameters": params, "responses": {"200": {"description": "OK"}}})
        };
        let base = if r.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("/{path}/{}", r.plural)
        };
        paths.insert(format!("{base}/{{name}}"), json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        paths.insert(base, json!({"get": op("list"), "post": op("post")}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-kubesim"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

/// `/openapi/v2` as protobuf (gnostic `openapi.v2.Document`): swagger and info only.
///
/// kubectl falls back to client-side validation for `kind: List` documents and then needs
/// this document; with no definitions in it, kubectl skips the schema checks of each item.
pub fn v2_protobuf() -> Vec<u8> {
    fn field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
        out.push(tag);
        // Lengths here are small constants (< 128), so one varint byte suffices.
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    let mut info = Vec::new();
    field(&mut info, 0x0a, b"Kubernetes");
    field(&mut info, 0x12, b"v1.32.0-kubesim");
    let mut doc = Vec::new();
    field(&mut doc, 0x0a, b"2.0");
    field(&mut doc, 0x12, &info);
    doc
}

/// `/openapi/v2` as JSON, for clients that ask for it.
pub fn v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0-kubesim"}, "paths": {}, "definitions": {}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    #[test]
    fn patch_declares_field_validation() {
        let r = builtins();
        let idx = v3_index(&r, 1);
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/apis/apps/v1"))
        );
        let doc = v3_document(&r, "apis/apps/v1").expect("served");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|x| x["name"] == "fieldValidation"))
        );
        assert!(v3_document(&r, "apis/nope/v1").is_none());
        assert_eq!(&v2_protobuf()[..5], b"\x0a\x032.0");
    }
}
