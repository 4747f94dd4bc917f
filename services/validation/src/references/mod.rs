//! Cross-object reference checks: what one manifest names (a ConfigMap, a Service, a Role, a
//! namespace…) must be among the manifests or assumed to exist outside them (`--assume-exists`).
//!
//! Pure functions over loaded manifests. Every object is indexed once by (kind, namespace,
//! name), so a check is a hash lookup and the whole pass is linear in the number of objects.
//!
//! "Same namespace" compares `metadata.namespace` as written: an absent namespace equals an
//! absent namespace, since both go to the apply target's default namespace.

mod autoscaling;
mod external;
mod namespaces;
mod pods;
mod rbac;
mod services;

use std::collections::HashMap;

use configsync_core::event::{Finding, Severity};
use serde_json::{Map, Value};

use crate::manifests::Manifest;

pub use external::{External, ExternalRef, ExternalRefError};

/// Checks every reference between `manifests`; objects in `external` count as present.
/// Findings come in manifest order. Duplicates are `manifests::load`'s business, not repeated.
pub fn check(manifests: &[Manifest], external: &External) -> Vec<Finding> {
    let index = Index::new(manifests, external);
    let mut out = Vec::new();
    for m in manifests {
        namespaces::check(m, &index, &mut out);
        pods::check(m, &index, &mut out);
        services::check_selector(m, &index, &mut out);
        services::check_ingress(m, &index, &mut out);
        rbac::check(m, &index, &mut out);
        autoscaling::check(m, &index, &mut out);
    }
    out
}

/// (kind, namespace, name) of an object as the checks look it up.
type Key<'a> = (&'a str, Option<&'a str>, &'a str);

/// (namespace, label, value) of a pod label.
type Label<'a> = (Option<&'a str>, &'a str, &'a str);

/// Everything the checks look up, built in one pass over the manifests.
struct Index<'a> {
    objects: HashMap<Key<'a>, Vec<&'a Manifest>>,
    /// CustomResourceDefinition scopes by (group, kind): true when cluster-scoped.
    crd_scopes: HashMap<(&'a str, &'a str), bool>,
    /// Pod labels by (namespace, label, value), for Service selectors.
    pod_labels: HashMap<Label<'a>, Vec<&'a Map<String, Value>>>,
    external: &'a External,
}

impl<'a> Index<'a> {
    fn new(manifests: &'a [Manifest], external: &'a External) -> Self {
        let mut index = Index {
            objects: HashMap::with_capacity(manifests.len()),
            crd_scopes: HashMap::new(),
            pod_labels: HashMap::new(),
            external,
        };
        for m in manifests {
            if let Some((group, kind, cluster)) = namespaces::crd_scope(m) {
                index.crd_scopes.insert((group, kind), cluster);
            }
        }
        for m in manifests {
            let namespace = index.namespace_of(m);
            index
                .objects
                .entry((&m.reference.kind, namespace, &m.reference.name))
                .or_default()
                .push(m);
            if let Some(labels) = pods::pod_labels(m) {
                for (label, value) in labels {
                    if let Some(value) = value.as_str() {
                        index
                            .pod_labels
                            .entry((namespace, label, value))
                            .or_default()
                            .push(labels);
                    }
                }
            }
        }
        index
    }

    /// The namespace an object is looked up in: none for cluster-scoped kinds, whatever
    /// their metadata says (the API server ignores it).
    fn namespace_of(&self, m: &'a Manifest) -> Option<&'a str> {
        if namespaces::is_cluster_scoped(self, group(&m.reference.api_version), &m.reference.kind) {
            None
        } else {
            m.reference.namespace.as_deref()
        }
    }

    /// The object among the manifests, of `api_group` when one is given.
    fn find(
        &self,
        api_group: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&'a Manifest> {
        self.objects
            .get(&(kind, namespace, name))?
            .iter()
            .copied()
            .find(|m| api_group.is_none_or(|g| group(&m.reference.api_version) == g))
    }

    /// Whether the object is among the manifests or assumed to exist.
    fn exists(
        &self,
        api_group: Option<&str>,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        self.find(api_group, kind, namespace, name).is_some()
            || self.external.contains(kind, namespace, name)
    }
}

/// The API group of an `apiVersion`: `apps/v1` → `apps`; `v1` → `""`, the core group.
fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

/// Follows `path` from `value` through mappings.
fn at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// How a message names a namespace, absent ones included.
fn in_namespace(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "without a namespace (the target's default)".to_string(),
    }
}

/// A finding about the field at `path` of `m`.
fn finding(m: &Manifest, severity: Severity, rule: &str, path: String, message: String) -> Finding {
    Finding {
        path: Some(path),
        ..m.finding(severity, rule, message)
    }
}

/// The finding for a reference to an object that is neither among the manifests nor assumed.
fn missing(m: &Manifest, rule: &str, path: String, kind: &str, name: &str) -> Finding {
    let namespace = m.reference.namespace.as_deref();
    finding(
        m,
        Severity::Error,
        rule,
        path,
        format!(
            "{} {} refers to {kind} {name}, which is not among the manifests {} \
             (if it exists outside them, pass --assume-exists)",
            m.reference.kind,
            m.reference.name,
            in_namespace(namespace)
        ),
    )
}

#[cfg(test)]
mod tests;
