//! RBAC authorization of resource requests, as the Kubernetes API server's RBAC authorizer
//! decides it, and a record of what each user was allowed and refused: so that a test can run
//! real clients under real roles and prove both that a role is enough (nothing refused) and
//! that it is no more than needed (every verb granted was used).
//!
//! - **Who**: kubesim authenticates nobody; a request's bearer token *is* its user name (give
//!   each client a kubeconfig whose token is, say,
//!   `system:serviceaccount:configsync:configsync-applier`). A ServiceAccount user is also in
//!   the groups `system:serviceaccounts`, `system:serviceaccounts:<namespace>` and
//!   `system:authenticated`; no token is `system:anonymous` (group `system:unauthenticated`).
//!   [`Rbac::superuser`] names users allowed everything (as `system:masters` is).
//! - **What**: ClusterRoles (with `aggregationRule` by `matchLabels`), Roles, ClusterRoleBindings
//!   and RoleBindings, read from YAML documents (other kinds are ignored). A rule matches on
//!   verbs, API groups, resources (`plural` or `plural/subresource`, `*`) and resource names.
//! - **Where**: resource requests only; discovery, OpenAPI and `/version` are open, as
//!   `system:discovery` makes them. A server-side apply that creates its object also needs
//!   `create` (as in Kubernetes); a delete of a collection is `deletecollection`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::Value;

use crate::status::ApiError;

/// The user of a request without a token.
pub const ANONYMOUS: &str = "system:anonymous";

/// Why roles could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("not YAML: {0}")]
    Yaml(String),
    #[error("{kind} {name}: {reason}")]
    Invalid {
        kind: String,
        name: String,
        reason: String,
    },
}

/// One rule of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Role {
    labels: BTreeMap<String, String>,
    rules: Vec<Rule>,
    /// `aggregationRule.clusterRoleSelectors[].matchLabels`.
    aggregate: Option<Vec<BTreeMap<String, String>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    User(String),
    Group(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Binding {
    /// The namespace of a RoleBinding; none for a ClusterRoleBinding.
    namespace: Option<String>,
    /// `ClusterRole` or `Role`, and its name.
    role_kind: String,
    role: String,
    subjects: Vec<Subject>,
}

/// Roles and bindings, and who may do anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rbac {
    cluster_roles: BTreeMap<String, Role>,
    roles: BTreeMap<(String, String), Role>,
    bindings: Vec<Binding>,
    superusers: BTreeSet<String>,
}

/// One resource request, as the authorizer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub user: &'a str,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: &'a str,
    pub group: &'a str,
    /// The plural, with `/subresource` when there is one.
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// What a user asked for, and whether it was allowed (the record's key).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    pub user: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub allowed: bool,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Rbac {
    /// Reads the roles and bindings among multi-document YAML.
    pub fn from_yaml(text: &str) -> Result<Self, RbacError> {
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let value = <Value as serde::Deserialize>::deserialize(doc)
                .map_err(|e| RbacError::Yaml(e.to_string()))?;
            docs.push(value);
        }
        Self::from_documents(docs)
    }

    /// Reads the roles and bindings among `documents` (other kinds are ignored).
    pub fn from_documents(documents: impl IntoIterator<Item = Value>) -> Result<Self, RbacError> {
        let mut rbac = Rbac::default();
        for doc in documents {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let namespace = doc["metadata"]["namespace"].as_str().map(str::to_string);
            let invalid = |reason: &str| RbacError::Invalid {
                kind: kind.to_string(),
                name: name.clone(),
                reason: reason.to_string(),
            };
            match kind {
                "ClusterRole" | "Role" => {
                    let rules = doc["rules"]
                        .as_array()
                        .map(|rules| {
                            rules
                                .iter()
                                .map(|r| Rule {
                                    verbs: strings(&r["verbs"]),
                                    api_groups: strings(&r["apiGroups"]),
                                    resources: strings(&r["resources"]),
                                    resource_names: strings(&r["resourceNames"]),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let aggregate = match doc["aggregationRule"]["clusterRoleSelectors"].as_array()
                    {
                        None => None,
                        Some(selectors) => {
                            if selectors
                                .iter()
                                .any(|s| s.get("matchExpressions").is_some())
                            {
                                return Err(invalid("matchExpressions are not supported"));
                            }
                            Some(
                                selectors
                                    .iter()
                                    .map(|s| labels(&s["matchLabels"]))
                                    .collect(),
                            )
                        }
                    };
                    let role = Role {
                        labels: labels(&doc["metadata"]["labels"]),
                        rules,
                        aggregate,
                    };
                    if kind == "ClusterRole" {
                        rbac.cluster_roles.insert(name, role);
                    } else {
                        let ns = namespace.ok_or_else(|| invalid("a Role needs a namespace"))?;
                        rbac.roles.insert((ns, name), role);
                    }
                }
                "ClusterRoleBinding" | "RoleBinding" => {
                    let role_kind = doc["roleRef"]["kind"].as_str().unwrap_or_default();
                    let role = doc["roleRef"]["name"].as_str().unwrap_or_default();
                    if role.is_empty() || !matches!(role_kind, "ClusterRole" | "Role") {
                        return Err(invalid("roleRef names no ClusterRole or Role"));
                    }
                    let mut subjects = Vec::new();
                    for s in doc["subjects"].as_array().into_iter().flatten() {
                        let subject_name = s["name"].as_str().unwrap_or_default();
                        subjects.push(match s["kind"].as_str() {
                            Some("User") => Subject::User(subject_name.into()),
                            Some("Group") => Subject::Group(subject_name.into()),
                            Some("ServiceAccount") => {
                                let ns = s["namespace"]
                                    .as_str()
                                    .or(namespace.as_deref())
                                    .ok_or_else(|| {
                                        invalid("a ServiceAccount subject needs a namespace")
                                    })?;
                                Subject::User(format!("system:serviceaccount:{ns}:{subject_name}"))
                            }
                            _ => {
                                return Err(invalid(
                                    "a subject is not a User, Group or ServiceAccount",
                                ));
                            }
                        });
                    }
                    let binding_ns = if kind == "RoleBinding" {
                        Some(namespace.ok_or_else(|| invalid("a RoleBinding needs a namespace"))?)
                    } else {
                        None
                    };
                    rbac.bindings.push(Binding {
                        namespace: binding_ns,
                        role_kind: role_kind.to_string(),
                        role: role.to_string(),
                        subjects,
                    });
                }
                _ => {}
            }
        }
        Ok(rbac)
    }

    /// Allows `user` everything.
    pub fn superuser(mut self, user: &str) -> Self {
        self.superusers.insert(user.to_string());
        self
    }

    /// The rules of a ClusterRole, aggregated ones included.
    fn cluster_role_rules(&self, name: &str) -> Vec<Rule> {
        let Some(role) = self.cluster_roles.get(name) else {
            return Vec::new();
        };
        match &role.aggregate {
            None => role.rules.clone(),
            // The aggregation controller replaces an aggregated role's rules with those of
            // every ClusterRole its selectors match.
            Some(selectors) => self
                .cluster_roles
                .iter()
                .filter(|(other, _)| other.as_str() != name)
                .filter(|(_, r)| {
                    selectors
                        .iter()
                        .any(|s| !s.is_empty() && s.iter().all(|(k, v)| r.labels.get(k) == Some(v)))
                })
                .flat_map(|(_, r)| r.rules.clone())
                .collect(),
        }
    }

    fn groups_of(user: &str) -> Vec<String> {
        if user == ANONYMOUS {
            return vec!["system:unauthenticated".into()];
        }
        let mut groups = vec!["system:authenticated".to_string()];
        if let Some(rest) = user.strip_prefix("system:serviceaccount:")
            && let Some((ns, _)) = rest.split_once(':')
        {
            groups.push("system:serviceaccounts".into());
            groups.push(format!("system:serviceaccounts:{ns}"));
        }
        groups
    }

    /// Every rule that applies to `user`, with the namespace it is limited to (none: the
    /// whole cluster).
    pub fn rules_of(&self, user: &str) -> Vec<(Option<String>, Rule)> {
        let groups = Self::groups_of(user);
        let mut out = Vec::new();
        for b in &self.bindings {
            let bound = b.subjects.iter().any(|s| match s {
                Subject::User(u) => u == user,
                Subject::Group(g) => groups.contains(g),
            });
            if !bound {
                continue;
            }
            let rules = match (b.role_kind.as_str(), &b.namespace) {
                ("ClusterRole", _) => self.cluster_role_rules(&b.role),
                ("Role", Some(ns)) => self
                    .roles
                    .get(&(ns.clone(), b.role.clone()))
                    .map(|r| r.rules.clone())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            out.extend(rules.into_iter().map(|r| (b.namespace.clone(), r)));
        }
        out
    }

    /// Whether the request is allowed.
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        if self.superusers.contains(a.user) {
            return true;
        }
        let any = |list: &[String], value: &str| list.iter().any(|x| x == "*" || x == value);
        self.rules_of(a.user).iter().any(|(scope, rule)| {
            let in_scope = match scope {
                None => true,
                Some(ns) => a.namespace == Some(ns.as_str()),
            };
            in_scope
                && any(&rule.verbs, a.verb)
                && any(&rule.api_groups, a.group)
                && (any(&rule.resources, a.resource)
                    || a.resource.split_once('/').is_some_and(|(plural, sub)| {
                        rule.resources
                            .iter()
                            .any(|r| r == &format!("{plural}/*") || r == &format!("*/{sub}"))
                    }))
                && (rule.resource_names.is_empty()
                    || a.name
                        .is_some_and(|n| rule.resource_names.iter().any(|x| x == n)))
        })
    }
}

/// What was asked and decided, while RBAC is on.
#[derive(Debug, Default)]
pub struct AccessLog(Mutex<BTreeMap<Access, u64>>);

impl AccessLog {
    pub fn record(&self, a: &Attributes<'_>, allowed: bool) {
        let key = Access {
            user: a.user.to_string(),
            verb: a.verb.to_string(),
            group: a.group.to_string(),
            resource: a.resource.to_string(),
            allowed,
        };
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *log.entry(key).or_default() += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<Access, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The user named by a request's bearer token.
pub fn user_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| ANONYMOUS.to_string())
}

/// Decides the request, records the decision, and refuses it as Kubernetes does.
pub fn authorize(rbac: &Rbac, log: &AccessLog, a: &Attributes<'_>) -> Result<(), ApiError> {
    let allowed = rbac.allows(a);
    log.record(a, allowed);
    if allowed {
        return Ok(());
    }
    let what = match a.group {
        "" => a.resource.to_string(),
        g => format!("{}.{g}", a.resource),
    };
    let object = a.name.map(|n| format!(" {n:?}")).unwrap_or_default();
    let place = match a.namespace {
        Some(ns) => format!(" in the namespace {ns:?}"),
        None => " at the cluster scope".to_string(),
    };
    let (plural, sub) = a.resource.split_once('/').unwrap_or((a.resource, ""));
    let resource = if sub.is_empty() {
        format!("resource {plural:?}")
    } else {
        format!("resource {plural:?}, subresource {sub:?}")
    };
    let message = format!(
        "{what}{object} is forbidden: User {:?} cannot {} {resource} in API group {:?}{place}",
        a.user, a.verb, a.group
    );
    Err(
        ApiError::new(403, "Forbidden", message).with_details(serde_json::json!({
            "name": a.name.unwrap_or_default(),
            "group": a.group,
            "kind": plural,
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: extra, labels: {example.com/aggregate-to-writer: "true"}}
rules:
  - apiGroups: [apps]
    resources: [deployments, deployments/scale]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: writer}
aggregationRule:
  clusterRoleSelectors:
    - matchLabels: {example.com/aggregate-to-writer: "true"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: secrets, namespace: team}
rules:
  - apiGroups: [""]
    resources: [secrets]
    resourceNames: [db]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
  - {kind: ServiceAccount, name: app, namespace: ops}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: writer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: writer}
subjects:
  - {kind: Group, name: "system:serviceaccounts:ops"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: secrets, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: secrets}
subjects:
  - {kind: User, name: alice}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"#;

    fn req<'a>(
        user: &'a str,
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Attributes<'a> {
        Attributes {
            user,
            verb,
            group,
            resource,
            namespace,
            name,
        }
    }

    #[test]
    fn rules_bindings_groups_and_aggregation_decide() {
        let rbac = Rbac::from_yaml(ROLES).unwrap();
        let app = "system:serviceaccount:ops:app";
        assert!(rbac.allows(&req(app, "get", "", "configmaps", Some("x"), Some("a"))));
        assert!(rbac.allows(&req(app, "list", "", "configmaps", None, None)));
        assert!(!rbac.allows(&req(app, "watch", "", "configmaps", None, None)));
        assert!(!rbac.allows(&req(app, "get", "", "secrets", Some("x"), Some("a"))));
        // Through the group of its namespace and the aggregated role.
        assert!(rbac.allows(&req(
            app,
            "patch",
            "apps",
            "deployments",
            Some("x"),
            Some("w")
        )));
        assert!(rbac.allows(&req(
            app,
            "patch",
            "apps",
            "deployments/scale",
            Some("x"),
            Some("w")
        )));
        assert!(!rbac.allows(&req(
            app,
            "patch",
            "apps",
            "deployments/status",
            Some("x"),
            Some("w")
        )));
        assert!(!rbac.allows(&req(app, "patch", "", "deployments", Some("x"), Some("w"))));
        // A Role binds in its namespace, to the names it lists.
        assert!(rbac.allows(&req(
            "alice",
            "get",
            "",
            "secrets",
            Some("team"),
            Some("db")
        )));
        assert!(!rbac.allows(&req(
            "alice",
            "get",
            "",
            "secrets",
            Some("team"),
            Some("other")
        )));
        assert!(!rbac.allows(&req(
            "alice",
            "get",
            "",
            "secrets",
            Some("prod"),
            Some("db")
        )));
        assert!(!rbac.allows(&req(
            ANONYMOUS,
            "get",
            "",
            "configmaps",
            Some("x"),
            Some("a")
        )));
        let root = rbac.clone().superuser("root");
        assert!(root.allows(&req("root", "delete", "x", "y", None, None)));
        assert!(!rbac.allows(&req("root", "delete", "x", "y", None, None)));
    }

    #[test]
    fn a_refusal_reads_like_kubernetes_and_is_recorded() {
        let rbac = Rbac::from_yaml(ROLES).unwrap();
        let log = AccessLog::default();
        let app = "system:serviceaccount:ops:app";
        let e = authorize(
            &rbac,
            &log,
            &req(app, "delete", "", "configmaps", Some("x"), Some("a")),
        )
        .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "configmaps \"a\" is forbidden: User \"system:serviceaccount:ops:app\" cannot delete resource \"configmaps\" in API group \"\" in the namespace \"x\""
        );
        authorize(
            &rbac,
            &log,
            &req(app, "get", "", "configmaps", Some("x"), Some("a")),
        )
        .unwrap();
        let seen: Vec<(String, bool)> = log
            .snapshot()
            .into_keys()
            .map(|a| (a.verb, a.allowed))
            .collect();
        assert_eq!(
            seen,
            [("delete".to_string(), false), ("get".to_string(), true)]
        );
    }

    #[test]
    fn bad_roles_are_refused_with_their_name() {
        let bad = "kind: RoleBinding\nmetadata: {name: b}\nroleRef: {kind: Role, name: r}\n";
        let e = Rbac::from_yaml(bad).unwrap_err().to_string();
        assert!(e.contains("RoleBinding b"), "{e}");
        let expressions = "kind: ClusterRole\nmetadata: {name: c}\naggregationRule:\n  clusterRoleSelectors:\n  - matchExpressions: []\n";
        assert!(Rbac::from_yaml(expressions).is_err());
    }

    #[test]
    fn the_user_is_the_bearer_token() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(user_of(&h), ANONYMOUS);
        h.insert(
            axum::http::header::AUTHORIZATION,
            "Bearer system:serviceaccount:a:b".parse().unwrap(),
        );
        assert_eq!(user_of(&h), "system:serviceaccount:a:b");
    }
}
