//! `reference.configmap`, `reference.secret`, `reference.serviceaccount`, `reference.pvc`: what
//! a pod template uses (volumes, projected sources, env, envFrom, imagePullSecrets, its service
//! account) must exist in the workload's namespace. `optional: true` references may be absent;
//! the `default` ServiceAccount always exists; a StatefulSet's volumeClaimTemplates provide
//! their claims.

use std::collections::HashSet;

use configsync_core::event::Finding;
use serde_json::{Map, Value};

use super::{Index, at, group, missing, text};
use crate::manifests::Manifest;

/// Where a workload keeps its pod template (an object with `metadata` and `spec`).
fn template_path(m: &Manifest) -> Option<&'static [&'static str]> {
    let group = group(&m.reference.api_version);
    match (group, m.reference.kind.as_str()) {
        ("", "Pod") => Some(&[]),
        ("", "ReplicationController")
        | ("apps" | "extensions", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => Some(&["spec", "template"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template"]),
        _ => None,
    }
}

/// The labels a workload gives its pods. Custom resources that run pods through an operator
/// count too when they state the labels: `spec.template` (Argo Rollouts and the like) or
/// `spec.podMetadata` (Prometheus operator).
pub(super) fn pod_labels(m: &Manifest) -> Option<&Map<String, Value>> {
    let labels = match template_path(m) {
        Some(path) => at(&m.object, path).and_then(|t| at(t, &["metadata", "labels"])),
        None => at(&m.object, &["spec", "template", "metadata", "labels"])
            .or_else(|| at(&m.object, &["spec", "podMetadata", "labels"])),
    };
    labels.and_then(Value::as_object)
}

/// One reference from a pod spec: the kind it names, the name, and the JSON path of the field.
struct Use<'v> {
    kind: &'static str,
    name: &'v str,
    path: String,
}

fn optional(source: &Value) -> bool {
    source.get("optional").and_then(Value::as_bool) == Some(true)
}

fn items(value: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// The ConfigMap Kubernetes publishes in every namespace (the cluster's CA bundle), like the
/// `default` ServiceAccount: always there.
const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// A required reference at `source.field`, unless the source is optional.
fn push<'v>(
    uses: &mut Vec<Use<'v>>,
    kind: &'static str,
    source: &'v Value,
    field: &str,
    path: String,
) {
    if optional(source) {
        return;
    }
    if let Some(name) = text(source.get(field)) {
        if kind == "ConfigMap" && name == ROOT_CA_CONFIGMAP {
            return;
        }
        uses.push(Use {
            kind,
            name,
            path: format!("{path}.{field}"),
        });
    }
}

/// Volume sources that name another object: (field, kind, the field holding the name).
const VOLUME_SOURCES: &[(&str, &str, &str)] = &[
    ("configMap", "ConfigMap", "name"),
    ("secret", "Secret", "secretName"),
    (
        "persistentVolumeClaim",
        "PersistentVolumeClaim",
        "claimName",
    ),
];

/// The same for the sources of a projected volume.
const PROJECTED_SOURCES: &[(&str, &str, &str)] = &[
    ("configMap", "ConfigMap", "name"),
    ("secret", "Secret", "name"),
];

fn volume_sources<'v>(
    uses: &mut Vec<Use<'v>>,
    volume: &'v Value,
    path: &str,
    sources: &[(&str, &'static str, &str)],
) {
    for (field, kind, name_key) in sources {
        if let Some(source) = volume.get(*field) {
            push(uses, kind, source, name_key, format!("{path}.{field}"));
        }
    }
}

fn uses<'v>(spec: &'v Value, prefix: &str) -> Vec<Use<'v>> {
    let mut uses = Vec::new();
    for (i, volume) in items(spec.get("volumes")) {
        let path = format!("{prefix}.volumes[{i}]");
        volume_sources(&mut uses, volume, &path, VOLUME_SOURCES);
        for (j, projection) in items(at(volume, &["projected", "sources"])) {
            let path = format!("{path}.projected.sources[{j}]");
            volume_sources(&mut uses, projection, &path, PROJECTED_SOURCES);
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, container) in items(spec.get(list)) {
            let path = format!("{prefix}.{list}[{i}]");
            for (j, env) in items(container.get("env")) {
                let path = format!("{path}.env[{j}].valueFrom");
                if let Some(source) = at(env, &["valueFrom", "configMapKeyRef"]) {
                    push(
                        &mut uses,
                        "ConfigMap",
                        source,
                        "name",
                        format!("{path}.configMapKeyRef"),
                    );
                }
                if let Some(source) = at(env, &["valueFrom", "secretKeyRef"]) {
                    push(
                        &mut uses,
                        "Secret",
                        source,
                        "name",
                        format!("{path}.secretKeyRef"),
                    );
                }
            }
            for (j, from) in items(container.get("envFrom")) {
                let path = format!("{path}.envFrom[{j}]");
                if let Some(source) = from.get("configMapRef") {
                    push(
                        &mut uses,
                        "ConfigMap",
                        source,
                        "name",
                        format!("{path}.configMapRef"),
                    );
                }
                if let Some(source) = from.get("secretRef") {
                    push(
                        &mut uses,
                        "Secret",
                        source,
                        "name",
                        format!("{path}.secretRef"),
                    );
                }
            }
        }
    }
    for (i, secret) in items(spec.get("imagePullSecrets")) {
        push(
            &mut uses,
            "Secret",
            secret,
            "name",
            format!("{prefix}.imagePullSecrets[{i}]"),
        );
    }
    // `serviceAccount` is the deprecated spelling, read only when the current one is absent.
    let account_field = if spec.get("serviceAccountName").is_some() {
        "serviceAccountName"
    } else {
        "serviceAccount"
    };
    if text(spec.get(account_field)).is_some_and(|name| name != "default") {
        push(
            &mut uses,
            "ServiceAccount",
            spec,
            account_field,
            prefix.to_string(),
        );
    }
    uses
}

fn rule(kind: &str) -> &'static str {
    match kind {
        "ConfigMap" => "reference.configmap",
        "Secret" => "reference.secret",
        "ServiceAccount" => "reference.serviceaccount",
        _ => "reference.pvc",
    }
}

pub(super) fn check(m: &Manifest, index: &Index, out: &mut Vec<Finding>) {
    let Some(template) = template_path(m) else {
        return;
    };
    let Some(spec) = at(&m.object, template).and_then(|t| t.get("spec")) else {
        return;
    };
    let prefix: String = template
        .iter()
        .map(|key| format!(".{key}"))
        .collect::<String>()
        + ".spec";
    // A StatefulSet's claim templates become claims of its pods.
    let claim_templates: HashSet<&str> = items(at(&m.object, &["spec", "volumeClaimTemplates"]))
        .filter(|_| m.reference.kind == "StatefulSet")
        .filter_map(|(_, t)| text(at(t, &["metadata", "name"])))
        .collect();
    let namespace = index.namespace_of(m);
    for used in uses(spec, &prefix) {
        if used.kind == "PersistentVolumeClaim" && claim_templates.contains(used.name) {
            continue;
        }
        if !index.exists(Some(""), used.kind, namespace, used.name) {
            out.push(missing(m, rule(used.kind), used.path, used.kind, used.name));
        }
    }
}
