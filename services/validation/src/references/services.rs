//! Service wiring: `reference.service-selector` (warning), a Service whose selector matches no
//! workload's pod labels in its namespace; `reference.ingress-backend`, an Ingress backend that
//! names a Service, or a port of it, that does not exist.

use configsync_core::event::{Finding, Severity};
use serde_json::Value;

use super::{Index, at, finding, group, in_namespace, missing, text};
use crate::manifests::Manifest;

pub(super) fn check_selector(m: &Manifest, index: &Index, out: &mut Vec<Finding>) {
    if m.reference.kind != "Service" || !group(&m.reference.api_version).is_empty() {
        return;
    }
    let Some(spec) = m.object.get("spec") else {
        return;
    };
    // An ExternalName Service selects nothing; a Service without a selector has its endpoints
    // managed by someone else.
    if text(spec.get("type")) == Some("ExternalName") {
        return;
    }
    let Some(selector) = spec.get("selector").and_then(Value::as_object) else {
        return;
    };
    if selector.is_empty() {
        return;
    }
    let namespace = index.namespace_of(m);
    if index.external.has_workloads_in(namespace) {
        return;
    }
    // Candidates: the pods carrying the selector's rarest label; then each is checked whole.
    let candidates = selector
        .iter()
        .map(|(label, value)| {
            value
                .as_str()
                .and_then(|value| index.pod_labels.get(&(namespace, label.as_str(), value)))
                .map_or(&[][..], Vec::as_slice)
        })
        .min_by_key(|pods| pods.len())
        .unwrap_or_default();
    let matched = candidates.iter().any(|labels| {
        selector
            .iter()
            .all(|(label, value)| labels.get(label) == Some(value))
    });
    if !matched {
        out.push(finding(
            m,
            Severity::Warning,
            "reference.service-selector",
            ".spec.selector".into(),
            format!(
                "Service {} selects no pods: no workload among the manifests {} has all the \
                 labels of its selector",
                m.reference.name,
                in_namespace(namespace)
            ),
        ));
    }
}

pub(super) fn check_ingress(m: &Manifest, index: &Index, out: &mut Vec<Finding>) {
    if m.reference.kind != "Ingress" || m.reference.api_version != "networking.k8s.io/v1" {
        return;
    }
    let Some(spec) = m.object.get("spec") else {
        return;
    };
    if let Some(backend) = spec.get("defaultBackend") {
        check_backend(m, index, backend, ".spec.defaultBackend", out);
    }
    let rules = spec
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for (i, rule) in rules.enumerate() {
        let paths = at(rule, &["http", "paths"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (j, path) in paths.enumerate() {
            if let Some(backend) = path.get("backend") {
                let at = format!(".spec.rules[{i}].http.paths[{j}].backend");
                check_backend(m, index, backend, &at, out);
            }
        }
    }
}

fn check_backend(m: &Manifest, index: &Index, backend: &Value, path: &str, out: &mut Vec<Finding>) {
    // A `resource` backend names a custom object, which this check leaves alone.
    let Some(service) = backend.get("service") else {
        return;
    };
    let Some(name) = text(service.get("name")) else {
        return;
    };
    let namespace = index.namespace_of(m);
    let rule = "reference.ingress-backend";
    let Some(target) = index.find(Some(""), "Service", namespace, name) else {
        if !index.external.contains("Service", namespace, name) {
            out.push(missing(
                m,
                rule,
                format!("{path}.service.name"),
                "Service",
                name,
            ));
        }
        // An assumed Service's ports are unknown.
        return;
    };
    let Some(spec) = target.object.get("spec") else {
        return;
    };
    if text(spec.get("type")) == Some("ExternalName") {
        return;
    }
    // The port by number (matching the Service's `port`) or by name.
    let port = service.get("port");
    let wanted = [("number", "port"), ("name", "name")]
        .into_iter()
        .find_map(|(field, key)| {
            let value = port?.get(field).filter(|v| !v.is_null())?;
            Some((field, key, value))
        });
    let Some((field, key, value)) = wanted else {
        return;
    };
    let ports: Vec<&Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if !ports.iter().any(|p| p.get(key) == Some(value)) {
        out.push(finding(
            m,
            Severity::Error,
            rule,
            format!("{path}.service.port.{field}"),
            format!(
                "Ingress {} sends traffic to port {} of Service {name}, which has no such port \
                 (its ports: {})",
                m.reference.name,
                show(value),
                ports
                    .iter()
                    .map(|p| show_port(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_port(port: &Value) -> String {
    match (port.get("name").and_then(Value::as_str), port.get("port")) {
        (Some(name), Some(number)) => format!("{name}={}", show(number)),
        (None, Some(number)) => show(number),
        (Some(name), None) => name.to_string(),
        (None, None) => "?".to_string(),
    }
}
