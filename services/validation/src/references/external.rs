//! `--assume-exists`: objects that live outside the manifests (created by another tool, another
//! repository or the cluster's installer) and that references may name.
//!
//! One entry per object, `/`-separated:
//!
//! | entry | means |
//! |---|---|
//! | `Kind/name` | a cluster-scoped object, or a namespaced one without a namespace (in the apply target's default namespace) |
//! | `Kind/namespace/name` | a namespaced object |
//! | `Kind/namespace/*` | every object of that kind in the namespace |
//! | `Namespace/name` | a namespace (`Namespace/*`: every namespace) |
//!
//! Kind is case-insensitive and takes kubectl's short names: `cm`, `secret`, `sa`, `pvc`,
//! `svc`, `ns`, `deploy`, `sts`, `ds`, `rs`, `rc`, `cj`, `po` (and plurals). An entry in a
//! namespace also says that namespace exists. Examples: `Secret/web/tls`, `cm/web/*`,
//! `ClusterRole/ingress-reader`, `ns/cert-manager`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// Kinds by their canonical spelling and the other spellings accepted for them.
const KINDS: &[(&str, &[&str])] = &[
    ("ConfigMap", &["cm", "configmaps"]),
    ("Secret", &["secrets"]),
    ("ServiceAccount", &["sa", "serviceaccounts"]),
    ("PersistentVolumeClaim", &["pvc", "persistentvolumeclaims"]),
    ("Service", &["svc", "services"]),
    ("Namespace", &["ns", "namespaces"]),
    ("Role", &["roles"]),
    ("ClusterRole", &["clusterroles"]),
    ("Pod", &["po", "pods"]),
    ("Deployment", &["deploy", "deployments"]),
    ("StatefulSet", &["sts", "statefulsets"]),
    ("DaemonSet", &["ds", "daemonsets"]),
    ("ReplicaSet", &["rs", "replicasets"]),
    ("ReplicationController", &["rc", "replicationcontrollers"]),
    ("Job", &["jobs"]),
    ("CronJob", &["cj", "cronjobs"]),
];

/// Kinds whose objects run pods, so a Service selector may select them.
const WORKLOAD_KINDS: &[&str] = &[
    "pod",
    "deployment",
    "statefulset",
    "daemonset",
    "replicaset",
    "replicationcontroller",
    "job",
    "cronjob",
];

/// Why an `--assume-exists` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalRefError {
    #[error(
        "--assume-exists `{0}`: expected Kind/name, Kind/namespace/name, Kind/namespace/* \
         or Namespace/name (e.g. Secret/web/tls)"
    )]
    Shape(String),
    #[error("--assume-exists `{entry}`: the {part} is empty")]
    Empty { entry: String, part: &'static str },
    #[error("--assume-exists `{entry}`: `{kind}` is not a kind (letters and digits only)")]
    Kind { entry: String, kind: String },
    #[error("--assume-exists `{entry}`: `{value}` is not a valid {part} (no spaces or `*` in it)")]
    Name {
        entry: String,
        part: &'static str,
        value: String,
    },
    #[error(
        "--assume-exists `{0}`: the namespace cannot be `*`; list each namespace \
         (Kind/namespace/*)"
    )]
    WildcardNamespace(String),
    #[error("--assume-exists `{0}`: a Namespace is cluster-scoped; write Namespace/name")]
    NamespacedNamespace(String),
}

/// One `--assume-exists` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalRef {
    /// Canonical spelling for known kinds (`cm` → `ConfigMap`), else as written.
    kind: String,
    namespace: Option<String>,
    /// `None` for `*`.
    name: Option<String>,
}

impl ExternalRef {
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The name, `None` when the entry is `*` (every name).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl fmt::Display for ExternalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(self.name.as_deref().unwrap_or("*"))
    }
}

impl FromStr for ExternalRef {
    type Err = ExternalRefError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = entry.trim().split('/').collect();
        let (kind, namespace, name) = match parts[..] {
            [kind, name] => (kind, None, name),
            [kind, namespace, name] => (kind, Some(namespace), name),
            _ => return Err(ExternalRefError::Shape(entry.into())),
        };
        let empty = |part| ExternalRefError::Empty {
            entry: entry.into(),
            part,
        };
        if kind.is_empty() {
            return Err(empty("kind"));
        }
        if !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ExternalRefError::Kind {
                entry: entry.into(),
                kind: kind.into(),
            });
        }
        let kind = canonical_kind(kind);
        if let Some(namespace) = namespace {
            if namespace == "*" {
                return Err(ExternalRefError::WildcardNamespace(entry.into()));
            }
            check_name(entry, "namespace", namespace)?;
            if kind == "Namespace" {
                return Err(ExternalRefError::NamespacedNamespace(entry.into()));
            }
        }
        let name = match name {
            "*" => None,
            name => {
                check_name(entry, "name", name)?;
                Some(name.to_string())
            }
        };
        Ok(ExternalRef {
            kind,
            namespace: namespace.map(str::to_string),
            name,
        })
    }
}

fn check_name(entry: &str, part: &'static str, value: &str) -> Result<(), ExternalRefError> {
    if value.is_empty() {
        return Err(ExternalRefError::Empty {
            entry: entry.into(),
            part,
        });
    }
    // Names are otherwise checked by the API server; RBAC names may hold `:` and more.
    if value.chars().any(|c| c.is_whitespace() || c == '*') {
        return Err(ExternalRefError::Name {
            entry: entry.into(),
            part,
            value: value.into(),
        });
    }
    Ok(())
}

fn canonical_kind(kind: &str) -> String {
    KINDS
        .iter()
        .find(|(canonical, aliases)| {
            canonical.eq_ignore_ascii_case(kind)
                || aliases.iter().any(|a| a.eq_ignore_ascii_case(kind))
        })
        .map_or_else(|| kind.to_string(), |(canonical, _)| canonical.to_string())
}

/// The names assumed in one (kind, namespace).
#[derive(Debug, Clone, Default)]
struct Names {
    every: bool,
    names: HashSet<String>,
}

/// Every `--assume-exists` entry, indexed for lookups.
#[derive(Debug, Clone, Default)]
pub struct External {
    /// Lowercase kind → namespace (`""` for none) → names.
    objects: HashMap<String, HashMap<String, Names>>,
    /// Namespaces that exist: named by `Namespace/…` or holding an entry.
    namespaces: HashSet<String>,
    every_namespace: bool,
}

impl External {
    /// Parses entries such as `Secret/web/tls`; the first bad one is the error.
    pub fn parse<'s>(entries: impl IntoIterator<Item = &'s str>) -> Result<Self, ExternalRefError> {
        entries.into_iter().map(str::parse).collect()
    }

    /// Whether `kind`/`namespace`/`name` is assumed to exist.
    pub fn contains(&self, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        if self.objects.is_empty() {
            return false;
        }
        self.objects
            .get(&kind.to_ascii_lowercase())
            .and_then(|by_ns| by_ns.get(namespace.unwrap_or("")))
            .is_some_and(|n| n.every || n.names.contains(name))
    }

    /// Whether the namespace is assumed to exist.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.every_namespace || self.namespaces.contains(namespace)
    }

    /// Whether a workload (whose pods a Service might select) is assumed in `namespace`.
    pub(super) fn has_workloads_in(&self, namespace: Option<&str>) -> bool {
        WORKLOAD_KINDS.iter().any(|kind| {
            self.objects
                .get(*kind)
                .is_some_and(|by_ns| by_ns.contains_key(namespace.unwrap_or("")))
        })
    }
}

impl FromIterator<ExternalRef> for External {
    fn from_iter<I: IntoIterator<Item = ExternalRef>>(entries: I) -> Self {
        let mut external = External::default();
        for entry in entries {
            if entry.kind == "Namespace" {
                match &entry.name {
                    Some(name) => {
                        external.namespaces.insert(name.clone());
                    }
                    None => external.every_namespace = true,
                }
            }
            if let Some(ns) = &entry.namespace {
                external.namespaces.insert(ns.clone());
            }
            let names = external
                .objects
                .entry(entry.kind.to_ascii_lowercase())
                .or_default()
                .entry(entry.namespace.unwrap_or_default())
                .or_default();
            match entry.name {
                Some(name) => {
                    names.names.insert(name);
                }
                None => names.every = true,
            }
        }
        external
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entry: &str) -> ExternalRef {
        entry.parse().unwrap_or_else(|e| panic!("{entry}: {e}"))
    }

    #[test]
    fn every_syntax_parses_and_short_kinds_are_canonical() {
        let r = parse("cm/web/settings");
        assert_eq!(
            (r.kind(), r.namespace(), r.name()),
            ("ConfigMap", Some("web"), Some("settings"))
        );
        let r = parse("SECRET/web/*");
        assert_eq!(
            (r.kind(), r.namespace(), r.name()),
            ("Secret", Some("web"), None)
        );
        let r = parse("ClusterRole/system:aggregate");
        assert_eq!(
            (r.kind(), r.namespace(), r.name()),
            ("ClusterRole", None, Some("system:aggregate"))
        );
        let r = parse("ns/cert-manager");
        assert_eq!((r.kind(), r.name()), ("Namespace", Some("cert-manager")));
        assert_eq!(
            parse("Certificate/web/tls").kind(),
            "Certificate",
            "unknown kinds kept"
        );
        assert_eq!(parse("svc/web/*").to_string(), "Service/web/*");
    }

    #[test]
    fn bad_entries_are_typed_errors() {
        let err = |e: &str| e.parse::<ExternalRef>().unwrap_err();
        assert_eq!(err("Secret"), ExternalRefError::Shape("Secret".into()));
        assert_eq!(err("a/b/c/d"), ExternalRefError::Shape("a/b/c/d".into()));
        assert!(matches!(
            err("/web/x"),
            ExternalRefError::Empty { part: "kind", .. }
        ));
        assert!(matches!(
            err("Secret/web/"),
            ExternalRefError::Empty { part: "name", .. }
        ));
        assert!(matches!(
            err("Secret//x"),
            ExternalRefError::Empty {
                part: "namespace",
                ..
            }
        ));
        assert!(matches!(err("Sec-ret/x"), ExternalRefError::Kind { .. }));
        assert!(matches!(
            err("Secret/we b/x"),
            ExternalRefError::Name {
                part: "namespace",
                ..
            }
        ));
        assert!(matches!(
            err("Secret/web/x*"),
            ExternalRefError::Name { part: "name", .. }
        ));
        assert_eq!(
            err("Secret/*/x"),
            ExternalRefError::WildcardNamespace("Secret/*/x".into())
        );
        assert_eq!(
            err("ns/a/b"),
            ExternalRefError::NamespacedNamespace("ns/a/b".into())
        );
        let message = err("Secret").to_string();
        assert!(message.contains("Kind/namespace/name"), "{message}");
    }

    #[test]
    fn lookups_honour_namespaces_and_wildcards() {
        let external = External::parse([
            "secret/web/tls",
            "cm/web/*",
            "ClusterRole/reader",
            "sa/builder",
            "ns/ops",
        ])
        .unwrap();
        assert!(external.contains("Secret", Some("web"), "tls"));
        assert!(!external.contains("Secret", Some("web"), "other"));
        assert!(
            !external.contains("Secret", None, "tls"),
            "namespaced entry is not namespace-less"
        );
        assert!(external.contains("ConfigMap", Some("web"), "anything"));
        assert!(!external.contains("ConfigMap", Some("api"), "anything"));
        assert!(external.contains("ClusterRole", None, "reader"));
        assert!(external.contains("ServiceAccount", None, "builder"));
        assert!(external.has_namespace("ops"));
        assert!(
            external.has_namespace("web"),
            "an entry in a namespace implies it"
        );
        assert!(!external.has_namespace("api"));
        assert!(!external.has_workloads_in(Some("web")));
        assert!(
            External::parse(["deploy/web/*"])
                .unwrap()
                .has_workloads_in(Some("web"))
        );
        assert!(External::parse(["ns/*"]).unwrap().has_namespace("anything"));
        assert!(External::parse(["Secret/web/tls", "bad"]).is_err());
    }
}
