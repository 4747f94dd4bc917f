//! Health of a live object, with kstatus-like rules: a workload is healthy once the controller
//! has observed its latest generation and every replica is updated, ready and available; a Job
//! once complete; a PVC once bound; a LoadBalancer Service once it has an ingress; a CRD once
//! established; anything with a `Ready` condition once it is true; everything else on apply.
//!
//! Pure functions of the object's JSON, so the applier, the CLI and tests share them.

use serde_json::Value;

/// What the rules say about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Healthy now.
    Ready,
    /// Not yet: still rolling out, or waiting for something (the reason says what).
    InProgress(String),
    /// Will not become healthy without a change (a Job failed, a rollout exceeded its
    /// progress deadline).
    Failed(String),
}

impl Health {
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }

    /// Why the object is not healthy (`None` when it is).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Ready => None,
            Self::InProgress(r) | Self::Failed(r) => Some(r),
        }
    }
}

/// Whether the health of a declared object depends on what the cluster reports: kinds with
/// no status to wait for (configuration, RBAC, plain Services) are ready once applied, and
/// need no read.
pub fn needs_status(declared: &Value) -> bool {
    let kind = declared["kind"].as_str().unwrap_or_default();
    let core_or_rbac = matches!(
        declared["apiVersion"].as_str().unwrap_or_default(),
        "v1" | "rbac.authorization.k8s.io/v1" | "networking.k8s.io/v1" | "policy/v1"
    );
    let statusless = matches!(
        kind,
        "ConfigMap"
            | "Secret"
            | "ServiceAccount"
            | "Role"
            | "RoleBinding"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "NetworkPolicy"
            | "PodDisruptionBudget"
            | "LimitRange"
            | "ResourceQuota"
            | "Namespace"
    ) || (kind == "Service" && declared["spec"]["type"] != "LoadBalancer");
    !(core_or_rbac && statusless)
}

/// The health of `object` (a live object as the API server returns it).
pub fn assess(object: &Value) -> Health {
    let kind = object["kind"].as_str().unwrap_or_default();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    if let Some(pending) = generation_pending(object) {
        return pending;
    }
    match (api_version, kind) {
        ("apps/v1", "Deployment") => deployment(object),
        ("apps/v1", "StatefulSet") => stateful_set(object),
        ("apps/v1", "DaemonSet") => daemon_set(object),
        ("apps/v1", "ReplicaSet") => replicas_ready(object, "readyReplicas", "availableReplicas"),
        ("batch/v1", "Job") => job(object),
        ("v1", "PersistentVolumeClaim") => match object["status"]["phase"].as_str() {
            Some("Bound") => Health::Ready,
            Some("Lost") => Health::Failed("the claim lost its volume".into()),
            phase => Health::InProgress(format!(
                "the claim is {}, not Bound",
                phase.unwrap_or("not yet bound")
            )),
        },
        ("v1", "Service") if object["spec"]["type"] == "LoadBalancer" => {
            let ingress = object["status"]["loadBalancer"]["ingress"].as_array();
            if ingress.is_some_and(|i| !i.is_empty()) {
                Health::Ready
            } else {
                Health::InProgress("the load balancer has no ingress yet".into())
            }
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            match condition(object, "Established") {
                Some(("True", _)) => Health::Ready,
                _ => Health::InProgress("the definition is not established yet".into()),
            }
        }
        _ => match condition(object, "Ready") {
            Some(("True", _)) | None => Health::Ready,
            Some((_, message)) => Health::InProgress(format!("Ready is not True: {message}")),
        },
    }
}

/// A spec change the controller has not seen yet: nothing in `status` speaks of it.
fn generation_pending(object: &Value) -> Option<Health> {
    let generation = object["metadata"]["generation"].as_i64()?;
    let observed = object["status"]["observedGeneration"].as_i64()?;
    (observed < generation).then(|| {
        Health::InProgress(format!(
            "the controller has observed generation {observed} of {generation}"
        ))
    })
}

/// The `status` and `message` of the condition of `type_`.
fn condition<'a>(object: &'a Value, type_: &str) -> Option<(&'a str, &'a str)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default(),
                c["message"]
                    .as_str()
                    .or(c["reason"].as_str())
                    .unwrap_or_default(),
            )
        })
}

fn count(object: &Value, field: &str) -> i64 {
    object["status"][field].as_i64().unwrap_or(0)
}

fn desired_replicas(object: &Value) -> i64 {
    object["spec"]["replicas"].as_i64().unwrap_or(1)
}

fn deployment(object: &Value) -> Health {
    if let Some(("False", message)) = condition(object, "Progressing") {
        return Health::Failed(format!("the rollout is not progressing: {message}"));
    }
    let progressing = object["status"]["conditions"].as_array().and_then(|c| {
        c.iter()
            .find(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
    });
    if let Some(c) = progressing {
        let message = c["message"]
            .as_str()
            .unwrap_or("progress deadline exceeded");
        return Health::Failed(format!(
            "the rollout exceeded its progress deadline: {message}"
        ));
    }
    let desired = desired_replicas(object);
    let updated = count(object, "updatedReplicas");
    if updated < desired {
        return Health::InProgress(format!("{updated} of {desired} replicas updated"));
    }
    if count(object, "replicas") > updated {
        return Health::InProgress(format!(
            "{} old replicas are still terminating",
            count(object, "replicas") - updated
        ));
    }
    replicas_ready(object, "readyReplicas", "availableReplicas")
}

fn replicas_ready(object: &Value, ready_field: &str, available_field: &str) -> Health {
    let desired = desired_replicas(object);
    let ready = count(object, ready_field);
    let available = count(object, available_field);
    if ready < desired {
        Health::InProgress(format!("{ready} of {desired} replicas ready"))
    } else if available < desired {
        Health::InProgress(format!("{available} of {desired} replicas available"))
    } else {
        Health::Ready
    }
}

fn stateful_set(object: &Value) -> Health {
    let desired = desired_replicas(object);
    let ready = count(object, "readyReplicas");
    if ready < desired {
        return Health::InProgress(format!("{ready} of {desired} replicas ready"));
    }
    let status = &object["status"];
    if let (Some(current), Some(update)) = (
        status["currentRevision"].as_str(),
        status["updateRevision"].as_str(),
    ) && current != update
    {
        let updated = count(object, "updatedReplicas");
        return Health::InProgress(format!("{updated} of {desired} replicas updated"));
    }
    Health::Ready
}

fn daemon_set(object: &Value) -> Health {
    let desired = count(object, "desiredNumberScheduled");
    let updated = count(object, "updatedNumberScheduled");
    let available = count(object, "numberAvailable");
    if updated < desired {
        Health::InProgress(format!("{updated} of {desired} pods updated"))
    } else if available < desired {
        Health::InProgress(format!("{available} of {desired} pods available"))
    } else {
        Health::Ready
    }
}

fn job(object: &Value) -> Health {
    if let Some(("True", message)) = condition(object, "Failed") {
        return Health::Failed(format!("the job failed: {message}"));
    }
    match condition(object, "Complete") {
        Some(("True", _)) => Health::Ready,
        _ => Health::InProgress(format!(
            "{} of {} completions",
            count(object, "succeeded"),
            object["spec"]["completions"].as_i64().unwrap_or(1)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3}, "status": status})
    }

    #[test]
    fn a_deployment_is_ready_once_every_replica_is_updated_ready_and_available() {
        let ready = deploy(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(assess(&ready), Health::Ready);
        let stale = deploy(
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3}),
        );
        assert!(matches!(assess(&stale), Health::InProgress(r) if r.contains("generation 1 of 2")));
        let rolling = deploy(
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3}),
        );
        assert!(matches!(assess(&rolling), Health::InProgress(r) if r.contains("old replicas")));
        let unready = deploy(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 1, "availableReplicas": 1}),
        );
        assert!(
            matches!(assess(&unready), Health::InProgress(r) if r.contains("1 of 3 replicas ready"))
        );
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_has_failed() {
        let stuck = deploy(
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 0, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        assert!(matches!(assess(&stuck), Health::Failed(r) if r.contains("timed out")));
    }

    #[test]
    fn only_kinds_with_a_status_to_wait_for_are_read() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        let svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}});
        let lb = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        let custom = json!({"apiVersion": "example.com/v1", "kind": "ConfigMap"});
        assert!(!needs_status(&cm) && !needs_status(&svc));
        assert!(needs_status(&lb) && needs_status(&deploy) && needs_status(&custom));
    }

    #[test]
    fn jobs_pvcs_load_balancers_crds_and_ready_conditions() {
        let job = |c: Value| json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": [c]}});
        assert_eq!(
            assess(&job(json!({"type": "Complete", "status": "True"}))),
            Health::Ready
        );
        assert!(matches!(
            assess(&job(
                json!({"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"})
            )),
            Health::Failed(_)
        ));
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "d"}, "status": {"phase": "Pending"}});
        assert!(matches!(assess(&pvc), Health::InProgress(r) if r.contains("Pending")));
        let lb = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert!(!assess(&lb).is_ready());
        let cluster_ip = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}});
        assert!(assess(&cluster_ip).is_ready());
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}, "status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert!(assess(&crd).is_ready());
        let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"conditions": [{"type": "Ready", "status": "False", "message": "waiting for bucket"}]}});
        assert!(matches!(assess(&cr), Health::InProgress(r) if r.contains("waiting for bucket")));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(assess(&cm).is_ready());
    }
}
