//! Well-known deprecated and removed API versions, by hand, from the Kubernetes deprecation
//! guide (https://kubernetes.io/docs/reference/using-api/deprecation-guide/) and the release
//! notes. The bundled schemas start at 1.25, so they cannot tell when older APIs went away
//! (or what replaces them); this table can. Versions are Kubernetes minor versions (1.NN).

/// One deprecated group/version/kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deprecation {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub deprecated_in: u32,
    /// `None`: deprecated but still served.
    pub removed_in: Option<u32>,
    /// What to use instead: an apiVersion (serving the same kind), or a full description
    /// when it contains a space; `None` when nothing replaces it.
    pub replacement: Option<&'static str>,
}

const fn d(
    api_version: &'static str,
    kind: &'static str,
    deprecated_in: u32,
    removed_in: Option<u32>,
    replacement: Option<&'static str>,
) -> Deprecation {
    Deprecation {
        api_version,
        kind,
        deprecated_in,
        removed_in,
        replacement,
    }
}

const APPS: Option<&str> = Some("apps/v1");
const PSP: Option<&str> = Some("Pod Security Admission (no API object replaces it)");

pub(crate) const TABLE: &[Deprecation] = &[
    // 1.16: the workload APIs moved to apps/v1.
    d("extensions/v1beta1", "Deployment", 9, Some(16), APPS),
    d("extensions/v1beta1", "DaemonSet", 9, Some(16), APPS),
    d("extensions/v1beta1", "ReplicaSet", 9, Some(16), APPS),
    d(
        "extensions/v1beta1",
        "NetworkPolicy",
        9,
        Some(16),
        Some("networking.k8s.io/v1"),
    ),
    d("extensions/v1beta1", "PodSecurityPolicy", 11, Some(16), PSP),
    d("apps/v1beta1", "Deployment", 9, Some(16), APPS),
    d("apps/v1beta1", "StatefulSet", 9, Some(16), APPS),
    d("apps/v1beta1", "ControllerRevision", 9, Some(16), APPS),
    d("apps/v1beta2", "Deployment", 9, Some(16), APPS),
    d("apps/v1beta2", "StatefulSet", 9, Some(16), APPS),
    d("apps/v1beta2", "DaemonSet", 9, Some(16), APPS),
    d("apps/v1beta2", "ReplicaSet", 9, Some(16), APPS),
    d("apps/v1beta2", "ControllerRevision", 9, Some(16), APPS),
    // 1.22: the big v1beta1 removal.
    d(
        "admissionregistration.k8s.io/v1beta1",
        "MutatingWebhookConfiguration",
        16,
        Some(22),
        Some("admissionregistration.k8s.io/v1"),
    ),
    d(
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
        16,
        Some(22),
        Some("admissionregistration.k8s.io/v1"),
    ),
    d(
        "apiextensions.k8s.io/v1beta1",
        "CustomResourceDefinition",
        16,
        Some(22),
        Some("apiextensions.k8s.io/v1"),
    ),
    d(
        "apiregistration.k8s.io/v1beta1",
        "APIService",
        19,
        Some(22),
        Some("apiregistration.k8s.io/v1"),
    ),
    d(
        "authentication.k8s.io/v1beta1",
        "TokenReview",
        19,
        Some(22),
        Some("authentication.k8s.io/v1"),
    ),
    d(
        "authorization.k8s.io/v1beta1",
        "SubjectAccessReview",
        19,
        Some(22),
        Some("authorization.k8s.io/v1"),
    ),
    d(
        "authorization.k8s.io/v1beta1",
        "LocalSubjectAccessReview",
        19,
        Some(22),
        Some("authorization.k8s.io/v1"),
    ),
    d(
        "authorization.k8s.io/v1beta1",
        "SelfSubjectAccessReview",
        19,
        Some(22),
        Some("authorization.k8s.io/v1"),
    ),
    d(
        "authorization.k8s.io/v1beta1",
        "SelfSubjectRulesReview",
        19,
        Some(22),
        Some("authorization.k8s.io/v1"),
    ),
    d(
        "certificates.k8s.io/v1beta1",
        "CertificateSigningRequest",
        19,
        Some(22),
        Some("certificates.k8s.io/v1"),
    ),
    d(
        "coordination.k8s.io/v1beta1",
        "Lease",
        19,
        Some(22),
        Some("coordination.k8s.io/v1"),
    ),
    d(
        "extensions/v1beta1",
        "Ingress",
        14,
        Some(22),
        Some("networking.k8s.io/v1"),
    ),
    d(
        "networking.k8s.io/v1beta1",
        "Ingress",
        19,
        Some(22),
        Some("networking.k8s.io/v1"),
    ),
    d(
        "networking.k8s.io/v1beta1",
        "IngressClass",
        19,
        Some(22),
        Some("networking.k8s.io/v1"),
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "ClusterRole",
        17,
        Some(22),
        Some("rbac.authorization.k8s.io/v1"),
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "ClusterRoleBinding",
        17,
        Some(22),
        Some("rbac.authorization.k8s.io/v1"),
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "Role",
        17,
        Some(22),
        Some("rbac.authorization.k8s.io/v1"),
    ),
    d(
        "rbac.authorization.k8s.io/v1beta1",
        "RoleBinding",
        17,
        Some(22),
        Some("rbac.authorization.k8s.io/v1"),
    ),
    d(
        "scheduling.k8s.io/v1beta1",
        "PriorityClass",
        14,
        Some(22),
        Some("scheduling.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "CSIDriver",
        19,
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "CSINode",
        17,
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "StorageClass",
        19,
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    d(
        "storage.k8s.io/v1beta1",
        "VolumeAttachment",
        19,
        Some(22),
        Some("storage.k8s.io/v1"),
    ),
    // 1.25
    d("batch/v1beta1", "CronJob", 21, Some(25), Some("batch/v1")),
    d(
        "discovery.k8s.io/v1beta1",
        "EndpointSlice",
        21,
        Some(25),
        Some("discovery.k8s.io/v1"),
    ),
    d(
        "events.k8s.io/v1beta1",
        "Event",
        22,
        Some(25),
        Some("events.k8s.io/v1"),
    ),
    d(
        "autoscaling/v2beta1",
        "HorizontalPodAutoscaler",
        23,
        Some(25),
        Some("autoscaling/v2"),
    ),
    d(
        "policy/v1beta1",
        "PodDisruptionBudget",
        21,
        Some(25),
        Some("policy/v1"),
    ),
    d("policy/v1beta1", "PodSecurityPolicy", 21, Some(25), PSP),
    d(
        "node.k8s.io/v1beta1",
        "RuntimeClass",
        20,
        Some(25),
        Some("node.k8s.io/v1"),
    ),
    // 1.26
    d(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "FlowSchema",
        23,
        Some(26),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    d(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        "PriorityLevelConfiguration",
        23,
        Some(26),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    d(
        "autoscaling/v2beta2",
        "HorizontalPodAutoscaler",
        23,
        Some(26),
        Some("autoscaling/v2"),
    ),
    // 1.27
    d(
        "storage.k8s.io/v1beta1",
        "CSIStorageCapacity",
        24,
        Some(27),
        Some("storage.k8s.io/v1"),
    ),
    // 1.29
    d(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "FlowSchema",
        26,
        Some(29),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    d(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        "PriorityLevelConfiguration",
        26,
        Some(29),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    // 1.32
    d(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "FlowSchema",
        29,
        Some(32),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    d(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "PriorityLevelConfiguration",
        29,
        Some(32),
        Some("flowcontrol.apiserver.k8s.io/v1"),
    ),
    // Deprecated, still served.
    d("v1", "ComponentStatus", 19, None, None),
    d(
        "v1",
        "Endpoints",
        33,
        None,
        Some("discovery.k8s.io/v1 EndpointSlice"),
    ),
];

/// The table's entry for `api_version` and `kind`, if any.
pub(crate) fn find(api_version: &str, kind: &str) -> Option<&'static Deprecation> {
    TABLE
        .iter()
        .find(|d| d.api_version == api_version && d.kind == kind)
}

/// The API group of an apiVersion (`apps/v1` → `apps`, `v1` → the core group `""`).
pub(crate) fn group(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_unique_and_ordered_in_time() {
        for (i, a) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..]
                    .iter()
                    .all(|b| (a.api_version, a.kind) != (b.api_version, b.kind)),
                "{a:?} listed twice"
            );
            if let Some(removed) = a.removed_in {
                assert!(a.deprecated_in < removed, "{a:?}");
            }
        }
        assert_eq!(
            find("extensions/v1beta1", "Ingress").unwrap().removed_in,
            Some(22)
        );
        assert_eq!(group("apps/v1"), "apps");
        assert_eq!(group("v1"), "");
    }
}
