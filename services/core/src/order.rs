//! The order in which a revision's objects are applied: levels, each applied (concurrently)
//! only once the one before it is done. Kinds give the base order (Namespaces, CRDs, then
//! ServiceAccounts and RBAC, ConfigMaps and Secrets, Services, workloads, the rest), and the
//! annotation `configsync.io/depends-on: Kind/namespace/name,Kind/name,...` adds edges. A
//! cycle, or a dependency on nothing in the revision, is an error the validator reports as a
//! finding, so the applier never meets one at run time.
//!
//! Pruning goes the other way: the last level first.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// The annotation that names an object's dependencies.
pub const ANNOTATION_DEPENDS_ON: &str = "configsync.io/depends-on";

/// Why a revision has no apply order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("{object}: depends-on {dependency:?} names no object of this revision")]
    UnknownDependency { object: String, dependency: String },
    #[error("{object}: depends-on {dependency:?} is not Kind/name or Kind/namespace/name")]
    BadDependency { object: String, dependency: String },
    #[error("dependency cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
}

/// The base level of a kind.
pub fn kind_rank(kind: &str) -> usize {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => 2,
        "ConfigMap" | "Secret" => 3,
        "Service" => 4,
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "CronJob" | "Pod" => 5,
        _ => 6,
    }
}

/// `Kind/namespace/name` (or `Kind/name` for objects without a namespace): how objects are
/// named in `depends-on` and in errors.
pub fn key_of(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => format!("{kind}/{ns}/{name}"),
        _ => format!("{kind}/{name}"),
    }
}

/// The dependencies an object declares, as keys (a `Kind/name` of a namespaced kind is looked
/// up in the object's own namespace too).
fn declared(object: &Value) -> Vec<&str> {
    object["metadata"]["annotations"][ANNOTATION_DEPENDS_ON]
        .as_str()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl OrderError {
    /// The object the error is about (`Kind/namespace/name`).
    pub fn object(&self) -> &str {
        match self {
            Self::UnknownDependency { object, .. } | Self::BadDependency { object, .. } => object,
            Self::Cycle { cycle } => cycle.first().map(String::as_str).unwrap_or_default(),
        }
    }

    /// A stable rule id for findings.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::UnknownDependency { .. } => "order.unknown-dependency",
            Self::BadDependency { .. } => "order.invalid-dependency",
            Self::Cycle { .. } => "order.cycle",
        }
    }
}

/// Whether any object declares dependencies (only then can [`levels`] fail).
pub fn declares_dependencies<V: Borrow<Value>>(objects: &[V]) -> bool {
    objects.iter().any(|o| !declared(o.borrow()).is_empty())
}

/// The indices of `objects` grouped in levels, in the order they are applied.
pub fn levels<V: Borrow<Value>>(objects: &[V]) -> Result<Vec<Vec<usize>>, OrderError> {
    let objects: Vec<&Value> = objects.iter().map(Borrow::borrow).collect();
    let objects = objects.as_slice();
    let index: HashMap<String, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (key_of(o), i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); objects.len()];
    for (i, object) in objects.iter().enumerate() {
        for dependency in declared(object) {
            let parts = dependency.split('/').count();
            if !(2..=3).contains(&parts) || dependency.split('/').any(str::is_empty) {
                return Err(OrderError::BadDependency {
                    object: key_of(object),
                    dependency: dependency.into(),
                });
            }
            let in_own_namespace = object["metadata"]["namespace"].as_str().and_then(|ns| {
                let (kind, name) = dependency.split_once('/')?;
                (parts == 2).then(|| format!("{kind}/{ns}/{name}"))
            });
            let found = index
                .get(dependency)
                .or_else(|| in_own_namespace.and_then(|k| index.get(&k)));
            match found {
                Some(&j) => edges[i].push(j),
                None => {
                    return Err(OrderError::UnknownDependency {
                        object: key_of(object),
                        dependency: dependency.into(),
                    });
                }
            }
        }
    }
    // Depth-first, so each object's level is known once its dependencies' are; the grey
    // marks find cycles.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done(usize),
    }
    fn visit(
        i: usize,
        objects: &[&Value],
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Result<usize, OrderError> {
        match marks[i] {
            Mark::Done(level) => return Ok(level),
            Mark::Visiting => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle: Vec<String> =
                    path[start..].iter().map(|&p| key_of(objects[p])).collect();
                cycle.push(key_of(objects[i]));
                return Err(OrderError::Cycle { cycle });
            }
            Mark::New => {}
        }
        marks[i] = Mark::Visiting;
        path.push(i);
        let mut level = kind_rank(objects[i]["kind"].as_str().unwrap_or_default());
        for &j in &edges[i] {
            level = level.max(visit(j, objects, edges, marks, path)? + 1);
        }
        path.pop();
        marks[i] = Mark::Done(level);
        Ok(level)
    }
    let mut marks = vec![Mark::New; objects.len()];
    let mut by_level: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..objects.len() {
        let level = visit(i, objects, &edges, &mut marks, &mut Vec::new())?;
        by_level.entry(level).or_default().push(i);
    }
    Ok(by_level.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, ns: Option<&str>, name: &str, depends: Option<&str>) -> Value {
        let mut o = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}});
        if let Some(ns) = ns {
            o["metadata"]["namespace"] = ns.into();
        }
        if let Some(d) = depends {
            o["metadata"]["annotations"] = json!({ANNOTATION_DEPENDS_ON: d});
        }
        o
    }

    fn kinds(objects: &[Value]) -> Vec<Vec<String>> {
        levels(objects)
            .unwrap()
            .into_iter()
            .map(|l| l.into_iter().map(|i| key_of(&objects[i])).collect())
            .collect()
    }

    #[test]
    fn kinds_give_the_base_order_and_keep_bundle_order_within_a_level() {
        let objects = vec![
            obj("Widget", Some("a"), "w", None),
            obj("Deployment", Some("a"), "web", None),
            obj("ConfigMap", Some("a"), "c1", None),
            obj(
                "CustomResourceDefinition",
                None,
                "widgets.example.com",
                None,
            ),
            obj("Service", Some("a"), "web", None),
            obj("ServiceAccount", Some("a"), "sa", None),
            obj("ConfigMap", Some("a"), "c2", None),
            obj("Namespace", None, "a", None),
        ];
        assert_eq!(
            kinds(&objects),
            [
                vec!["Namespace/a"],
                vec!["CustomResourceDefinition/widgets.example.com"],
                vec!["ServiceAccount/a/sa"],
                vec!["ConfigMap/a/c1", "ConfigMap/a/c2"],
                vec!["Service/a/web"],
                vec!["Deployment/a/web"],
                vec!["Widget/a/w"],
            ]
        );
    }

    #[test]
    fn depends_on_adds_edges_in_the_objects_namespace_or_by_full_key() {
        let objects = vec![
            obj("Deployment", Some("a"), "api", None),
            obj("Deployment", Some("a"), "web", Some("Deployment/api")),
            obj("ConfigMap", Some("b"), "late", Some("Deployment/a/web")),
        ];
        assert_eq!(
            kinds(&objects),
            [
                vec!["Deployment/a/api"],
                vec!["Deployment/a/web"],
                vec!["ConfigMap/b/late"]
            ]
        );
    }

    #[test]
    fn cycles_and_unknown_or_malformed_dependencies_are_errors() {
        let cycle = vec![
            obj("ConfigMap", Some("a"), "x", Some("ConfigMap/y")),
            obj("ConfigMap", Some("a"), "y", Some("ConfigMap/a/x")),
        ];
        let err = levels(&cycle).unwrap_err();
        assert!(
            matches!(&err, OrderError::Cycle { cycle } if cycle.len() == 3),
            "{err}"
        );
        let unknown = vec![obj("ConfigMap", Some("a"), "x", Some("Secret/nope"))];
        assert!(matches!(
            levels(&unknown),
            Err(OrderError::UnknownDependency { .. })
        ));
        let bad = vec![obj("ConfigMap", Some("a"), "x", Some("just-a-name"))];
        assert!(matches!(
            levels(&bad),
            Err(OrderError::BadDependency { .. })
        ));
    }
}
