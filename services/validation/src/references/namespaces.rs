//! `reference.namespace`: a namespaced object's namespace must be declared among the manifests,
//! built in, or assumed. Cluster-scoped kinds never need one; a custom resource's scope comes
//! from its CustomResourceDefinition when that is among the manifests.

use configsync_core::event::{Finding, Severity};

use super::{Index, at, finding, group, text};
use crate::manifests::Manifest;

/// Namespaces every cluster has.
const BUILT_IN: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Built-in cluster-scoped kinds (by kind: no custom resource reuses these names in practice).
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ComponentStatus",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "APIService",
    "CertificateSigningRequest",
    "ClusterTrustBundle",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "PodSecurityPolicy",
    "IPAddress",
    "ServiceCIDR",
    "DeviceClass",
    "TokenReview",
    "SelfSubjectReview",
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SubjectAccessReview",
];

/// A CustomResourceDefinition's (group, kind, cluster-scoped).
pub(super) fn crd_scope(m: &Manifest) -> Option<(&str, &str, bool)> {
    if m.reference.kind != "CustomResourceDefinition"
        || group(&m.reference.api_version) != "apiextensions.k8s.io"
    {
        return None;
    }
    let spec = m.object.get("spec")?;
    let group = text(spec.get("group"))?;
    let kind = text(at(spec, &["names", "kind"]))?;
    Some((group, kind, text(spec.get("scope")) == Some("Cluster")))
}

pub(super) fn is_cluster_scoped(index: &Index, group: &str, kind: &str) -> bool {
    match index.crd_scopes.get(&(group, kind)) {
        Some(cluster) => *cluster,
        None => CLUSTER_SCOPED.contains(&kind),
    }
}

pub(super) fn check(m: &Manifest, index: &Index, out: &mut Vec<Finding>) {
    // Cluster-scoped objects are indexed without a namespace whatever their metadata says.
    let Some(namespace) = index.namespace_of(m) else {
        return;
    };
    let exists = BUILT_IN.contains(&namespace)
        || index.find(Some(""), "Namespace", None, namespace).is_some()
        || index.external.has_namespace(namespace);
    if !exists {
        out.push(finding(
            m,
            Severity::Error,
            "reference.namespace",
            ".metadata.namespace".into(),
            format!(
                "{} {} is in namespace {namespace}, which is not among the manifests \
                 (if it exists outside them, pass --assume-exists Namespace/{namespace})",
                m.reference.kind, m.reference.name
            ),
        ));
    }
}
