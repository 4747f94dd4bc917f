//! What particular kinds do on write: namespaces are Active, CRDs become Established and
//! (un)register their resources, workloads get their rollout status.

use crate::registry::{self, Resource};
use crate::status::ApiError;
use serde_json::{Value, json};

/// The annotation that keeps a workload from ever becoming ready.
pub const NEVER_READY: &str = "kubesim.configsync.io/never-ready";

/// Kind-specific status on create and update; returns the resources a CRD serves.
pub fn on_write(
    res: &Resource,
    object: &mut Value,
    now: &str,
) -> Result<Option<Vec<Resource>>, ApiError> {
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Namespace") => {
            object["status"] = json!({"phase": if object.pointer("/metadata/deletionTimestamp").is_some() { "Terminating" } else { "Active" }});
            Ok(None)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object, now).map(Some),
        _ => Ok(None),
    }
}

fn crd(object: &mut Value, now: &str) -> Result<Vec<Resource>, ApiError> {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let invalid = |m: String| {
        ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            &name,
            vec![("spec".into(), m)],
        )
    };
    let resources = registry::from_crd(object).map_err(invalid)?;
    let spec = &object["spec"];
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(ApiError::invalid(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            &name,
            vec![(
                "metadata.name".into(),
                format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            )],
        ));
    }
    let mut accepted = spec["names"].clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(
            resources
                .first()
                .map(|r| r.singular.clone())
                .unwrap_or_default()
        );
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!(
            "{}List",
            spec.pointer("/names/kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    let stored: Vec<Value> = spec
        .get("versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let condition = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    object["status"] = json!({
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
    Ok(resources)
}

/// The status a workload converges to once its rollout is done (or stuck).
pub fn rollout_status(res: &Resource, object: &Value, now: &str) -> Option<Value> {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let never_ready = object
        .pointer(&format!(
            "/metadata/annotations/{}",
            NEVER_READY.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        == Some("true");
    let replicas = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready = if never_ready { 0 } else { replicas };
    let cond = |t: &str, ok: bool, reason: &str, message: &str| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message});
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(match res.kind.as_str() {
        "Deployment" => {
            let progressing = if never_ready {
                cond(
                    "Progressing",
                    false,
                    "ProgressDeadlineExceeded",
                    &format!("ReplicaSet \"{name}\" has timed out progressing."),
                )
            } else {
                cond(
                    "Progressing",
                    true,
                    "NewReplicaSetAvailable",
                    &format!("ReplicaSet \"{name}\" has successfully progressed."),
                )
            };
            let available = if never_ready {
                cond(
                    "Available",
                    false,
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                )
            } else {
                cond(
                    "Available",
                    true,
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                )
            };
            let mut s = json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": ready, "availableReplicas": ready, "conditions": [available, progressing]});
            if never_ready {
                s["unavailableReplicas"] = json!(replicas);
            }
            s
        }
        "StatefulSet" => {
            json!({"observedGeneration": generation, "replicas": replicas, "readyReplicas": ready,
            "currentReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": ready,
            "currentRevision": format!("{name}-{generation}"), "updateRevision": format!("{name}-{generation}")})
        }
        "DaemonSet" => {
            let scheduled = 1;
            json!({"observedGeneration": generation, "desiredNumberScheduled": scheduled, "currentNumberScheduled": scheduled,
                "updatedNumberScheduled": scheduled, "numberReady": if never_ready { 0 } else { scheduled },
                "numberAvailable": if never_ready { 0 } else { scheduled }, "numberMisscheduled": 0})
        }
        "Job" => {
            let completions = object
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if never_ready {
                json!({"startTime": now, "active": 1, "ready": 0})
            } else {
                json!({"startTime": now, "completionTime": now, "succeeded": completions, "active": 0, "ready": 0,
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True", "lastProbeTime": now, "lastTransitionTime": now},
                        {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}]})
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment_res() -> Resource {
        registry::builtins()
            .into_iter()
            .find(|r| r.kind == "Deployment")
            .expect("builtin")
    }

    #[test]
    fn deployment_converges_or_never_becomes_ready() {
        let d = json!({"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 2}});
        let s = rollout_status(&deployment_res(), &d, "t").expect("workload");
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["availableReplicas"], 2);
        let stuck = json!({"metadata": {"name": "web", "generation": 1, "annotations": {NEVER_READY: "true"}}, "spec": {"replicas": 2}});
        let s = rollout_status(&deployment_res(), &stuck, "t").expect("workload");
        assert_eq!(s["readyReplicas"], 0);
        assert_eq!(s["conditions"][1]["reason"], "ProgressDeadlineExceeded");
    }

    #[test]
    fn crd_becomes_established() {
        let res = registry::builtins()
            .into_iter()
            .find(|r| r.kind == "CustomResourceDefinition")
            .expect("builtin");
        let mut crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1", "served": true, "storage": true}]}});
        let served = on_write(&res, &mut crd, "t").expect("valid").expect("crd");
        assert_eq!(served.len(), 1);
        assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
        let mut misnamed = crd.clone();
        misnamed["metadata"]["name"] = json!("other");
        assert_eq!(
            on_write(&res, &mut misnamed, "t")
                .expect_err("misnamed")
                .code,
            422
        );
    }
}
