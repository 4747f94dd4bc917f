//! The `/scale` subresource of Deployments and StatefulSets (`kubectl scale`).

use crate::patch::{json::json_patch, merge::merge_patch};
use crate::registry::Resource;
use crate::status::ApiError;
use crate::store::{PatchKind, Store, WriteOptions};
use serde_json::{Value, json};

pub fn has_scale(res: &Resource) -> bool {
    res.group == "apps" && matches!(res.kind.as_str(), "Deployment" | "StatefulSet")
}

/// The autoscaling/v1 Scale view of a workload.
pub fn scale_of(o: &Value) -> Value {
    let meta = &o["metadata"];
    let selector: Vec<String> = o
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                     "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": o.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector.join(",")}
    })
}

/// Writes a new Scale (from PUT, or a patch of the current Scale) through to the workload.
pub fn write(
    store: &Store,
    res: &Resource,
    ns: &str,
    name: &str,
    kind: Option<PatchKind>,
    body: &Value,
    opts: &WriteOptions,
) -> Result<Value, ApiError> {
    let current = scale_of(&store.get(res, ns, name)?);
    let wanted = match kind {
        None => body.clone(),
        Some(PatchKind::Json) => {
            json_patch(&current, body).map_err(|e| ApiError::new(422, "Invalid", e))?
        }
        // A Scale has no lists, so strategic merge and merge patch agree.
        Some(PatchKind::Merge | PatchKind::Strategic) => merge_patch(&current, body),
        Some(PatchKind::Apply) => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "apply is not supported on the scale subresource",
            ));
        }
    };
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "Scale",
                "autoscaling",
                name,
                vec![(
                    "spec.replicas".into(),
                    "Invalid value: must be a non-negative integer".into(),
                )],
            )
        })?;
    let opts = WriteOptions {
        subresource: None,
        ..opts.clone()
    };
    let (_, o) = store.patch(
        res,
        ns,
        name,
        PatchKind::Merge,
        &json!({"spec": {"replicas": replicas}}),
        &opts,
    )?;
    Ok(scale_of(&o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["selector"], "app=web");
    }
}
