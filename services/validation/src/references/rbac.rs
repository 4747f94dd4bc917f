//! `reference.role`: a RoleBinding's roleRef names a Role in its namespace or a ClusterRole; a
//! ClusterRoleBinding's a ClusterRole. Roles every cluster bootstraps count as existing.

use configsync_core::event::Finding;

use super::{Index, at, group, missing, text};
use crate::manifests::Manifest;

const RBAC: &str = "rbac.authorization.k8s.io";

/// ClusterRoles the API server creates: the user-facing ones and every `system:` one.
fn built_in_cluster_role(name: &str) -> bool {
    matches!(name, "cluster-admin" | "admin" | "edit" | "view") || name.starts_with("system:")
}

/// Roles the API server creates in its own namespaces (kube-system's
/// `extension-apiserver-authentication-reader`, which aggregated API servers bind to, and the
/// `system:` controller roles).
fn built_in_role(namespace: Option<&str>, name: &str) -> bool {
    match namespace {
        Some("kube-system") => {
            name == "extension-apiserver-authentication-reader" || name.starts_with("system:")
        }
        Some("kube-public") => name.starts_with("system:"),
        _ => false,
    }
}

pub(super) fn check(m: &Manifest, index: &Index, out: &mut Vec<Finding>) {
    let kind = m.reference.kind.as_str();
    if !matches!(kind, "RoleBinding" | "ClusterRoleBinding")
        || group(&m.reference.api_version) != RBAC
    {
        return;
    }
    let Some(name) = text(at(&m.object, &["roleRef", "name"])) else {
        return;
    };
    let namespace = index.namespace_of(m);
    // A RoleBinding may grant a ClusterRole within its namespace; an unknown roleRef kind is
    // the schema's business.
    let (role_kind, role_namespace, built_in) =
        match (kind, text(at(&m.object, &["roleRef", "kind"]))) {
            ("RoleBinding", Some("Role")) => ("Role", namespace, built_in_role(namespace, name)),
            (_, Some("ClusterRole")) => ("ClusterRole", None, built_in_cluster_role(name)),
            _ => return,
        };
    if !built_in && !index.exists(Some(RBAC), role_kind, role_namespace, name) {
        out.push(missing(
            m,
            "reference.role",
            ".roleRef.name".into(),
            role_kind,
            name,
        ));
    }
}
