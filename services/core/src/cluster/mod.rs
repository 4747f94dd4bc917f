//! Reaching clusters with `kube` (feature `kube`): which clusters serve each environment
//! (operator configuration, never the config repository), clients built from kubeconfig
//! contexts, and server-side apply of a bundle in dependency order.

mod apply;
mod desired;
mod targets;

pub use apply::{
    ANNOTATION_ENVIRONMENT, ANNOTATION_REVISION, ApplyError, ClusterApplier, ClusterAppliers,
    FIELD_MANAGER, MANAGED_BY_LABEL, mark, object_ref, order,
};
pub use desired::{AppliedBundle, DesiredError, DesiredSource};
pub use targets::{ClusterArgs, ClusterError, ClusterTarget, Clusters};
