//! Rules of the API server's Go validation for workloads and Services that no OpenAPI
//! document states, and that are among the commonest reasons an apply fails: a pod with no
//! container or no image, two containers of one name, a mount of an undeclared volume, a
//! controller whose selector does not select its own template, a Job that would restart
//! forever, a port out of range.

use std::collections::HashSet;

use serde_json::Value;

use configsync_core::event::Severity;

use super::check::Problem;

/// Where each workload kind keeps its pod template (spec and labels).
fn pod_template(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some(".spec.template"),
        "CronJob" => Some(".spec.jobTemplate.spec.template"),
        _ => None,
    }
}

fn problem(rule: &'static str, path: String, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        rule,
        path,
        message,
    }
}

fn pointer<'v>(object: &'v Value, dotted: &str) -> Option<&'v Value> {
    if dotted.is_empty() {
        return Some(object);
    }
    object.pointer(&dotted.replace('.', "/"))
}

/// The problems of one built-in object.
pub(crate) fn problems(kind: &str, object: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(template) = pod_template(kind) {
        let spec_path = if kind == "Pod" {
            ".spec".to_string()
        } else {
            format!("{template}.spec")
        };
        // A StatefulSet's claim templates are volumes its pods mount too.
        let claims: Vec<&str> = items(object.pointer("/spec/volumeClaimTemplates"))
            .filter(|_| kind == "StatefulSet")
            .filter_map(|(_, c)| c.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        if let Some(spec) = pointer(object, &spec_path).filter(|s| s.is_object()) {
            pod_spec(spec, &spec_path, &claims, &mut out);
            if matches!(kind, "Job" | "CronJob") {
                job_restart_policy(spec, &spec_path, &mut out);
            }
        }
        if matches!(
            kind,
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        ) {
            selector_selects_template(object, &mut out);
        }
    }
    if kind == "Service" {
        for (i, port) in items(object.pointer("/spec/ports")) {
            for field in ["port", "targetPort", "nodePort"] {
                port_range(
                    port.get(field),
                    &format!(".spec.ports[{i}].{field}"),
                    field == "nodePort",
                    &mut out,
                );
            }
        }
    }
    out
}

fn items(value: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// A port number must lie in 1..=65535 (a named `targetPort` is fine; `nodePort` may be 0,
/// meaning "allocate one").
fn port_range(value: Option<&Value>, path: &str, zero_ok: bool, out: &mut Vec<Problem>) {
    let Some(n) = value.and_then(Value::as_i64) else {
        return;
    };
    let allowed = (1..=65535).contains(&n) || (zero_ok && n == 0);
    if !allowed {
        out.push(problem(
            "schema.port",
            path.into(),
            format!("port {n} is outside 1-65535"),
        ));
    }
}

fn pod_spec(spec: &Value, at: &str, claims: &[&str], out: &mut Vec<Problem>) {
    if items(spec.get("containers")).next().is_none() {
        out.push(problem(
            "schema.containers",
            format!("{at}.containers"),
            "a pod needs at least one container".into(),
        ));
    }
    let volumes: HashSet<&str> = items(spec.get("volumes"))
        .filter_map(|(_, v)| v.get("name").and_then(Value::as_str))
        .chain(claims.iter().copied())
        .collect();
    let mut names = HashSet::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in items(spec.get(list)) {
            let path = format!("{at}.{list}[{i}]");
            if let Some(name) = c.get("name").and_then(Value::as_str)
                && !names.insert(name)
            {
                out.push(problem(
                    "schema.containers",
                    format!("{path}.name"),
                    format!("container name {name:?} is used twice in the pod"),
                ));
            }
            if list != "ephemeralContainers"
                && c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                out.push(problem(
                    "schema.containers",
                    format!("{path}.image"),
                    "a container needs an image".into(),
                ));
            }
            for (j, port) in items(c.get("ports")) {
                port_range(
                    port.get("containerPort"),
                    &format!("{path}.ports[{j}].containerPort"),
                    false,
                    out,
                );
            }
            for (j, mount) in items(c.get("volumeMounts")) {
                if let Some(name) = mount.get("name").and_then(Value::as_str)
                    && !volumes.contains(name)
                {
                    out.push(problem(
                        "schema.volume-mount",
                        format!("{path}.volumeMounts[{j}].name"),
                        format!("volume {name:?} is mounted but not declared in the pod's volumes"),
                    ));
                }
            }
        }
    }
}

/// Jobs run to completion: `Always` (the default) is refused.
fn job_restart_policy(spec: &Value, at: &str, out: &mut Vec<Problem>) {
    let policy = spec.get("restartPolicy").and_then(Value::as_str);
    if !matches!(policy, Some("OnFailure" | "Never")) {
        out.push(problem(
            "schema.restart-policy",
            format!("{at}.restartPolicy"),
            format!(
                "a Job's pods need restartPolicy OnFailure or Never (got {})",
                policy.unwrap_or("none, which means Always")
            ),
        ));
    }
}

/// A controller's `matchLabels` must all be among its template's labels, or it would never
/// own the pods it creates. (`matchExpressions` are left to the API server.)
fn selector_selects_template(object: &Value, out: &mut Vec<Problem>) {
    let Some(match_labels) = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    else {
        return;
    };
    let labels = object.pointer("/spec/template/metadata/labels");
    for (key, value) in match_labels {
        if labels.and_then(|l| l.get(key)) != Some(value) {
            out.push(problem(
                "schema.selector",
                ".spec.selector.matchLabels".into(),
                format!(
                    "selector {key}={} does not match the template's labels: the controller would not own its own pods",
                    value.as_str().unwrap_or("?")
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(kind: &str, object: Value) -> Vec<(&'static str, String)> {
        problems(kind, &object)
            .into_iter()
            .map(|p| (p.rule, p.path))
            .collect()
    }

    #[test]
    fn a_valid_deployment_and_job_pass() {
        let template = json!({"metadata": {"labels": {"app": "w"}}, "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "data"}],
            "containers": [{"name": "w", "image": "w:1", "ports": [{"containerPort": 80}],
                            "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}});
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "w"}}, "template": template}});
        assert!(rules("Deployment", d).is_empty());
        let job = json!({"spec": {"template": template}});
        assert!(rules("Job", job).is_empty());
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": "http", "nodePort": 0}]}});
        assert!(rules("Service", svc).is_empty());
        let sts = json!({"spec": {"selector": {"matchLabels": {"app": "db"}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                {"name": "db", "image": "db:1", "volumeMounts": [{"name": "data"}]}]}}}});
        assert!(
            rules("StatefulSet", sts).is_empty(),
            "claim templates are volumes"
        );
    }

    #[test]
    fn each_rule_has_its_finding() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "w"}}, "template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "a", "image": "a:1", "volumeMounts": [{"name": "nope"}],
                                     "ports": [{"containerPort": 70000}]},
                                    {"name": "a"}]}}}});
        assert_eq!(
            rules("Deployment", d),
            [
                (
                    "schema.port",
                    ".spec.template.spec.containers[0].ports[0].containerPort".to_string()
                ),
                (
                    "schema.volume-mount",
                    ".spec.template.spec.containers[0].volumeMounts[0].name".to_string()
                ),
                (
                    "schema.containers",
                    ".spec.template.spec.containers[1].name".to_string()
                ),
                (
                    "schema.containers",
                    ".spec.template.spec.containers[1].image".to_string()
                ),
                ("schema.selector", ".spec.selector.matchLabels".to_string()),
            ]
        );
        let job =
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        assert_eq!(
            rules("CronJob", job),
            [
                (
                    "schema.containers",
                    ".spec.jobTemplate.spec.template.spec.containers".to_string()
                ),
                (
                    "schema.restart-policy",
                    ".spec.jobTemplate.spec.template.spec.restartPolicy".to_string()
                ),
            ]
        );
        let svc = json!({"spec": {"ports": [{"port": 0, "targetPort": 70000}]}});
        assert_eq!(rules("Service", svc).len(), 2);
    }
}
