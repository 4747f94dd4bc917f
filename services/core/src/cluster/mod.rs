//! Reaching clusters with `kube` (feature `kube`): which clusters serve each environment
//! (operator configuration, never the config repository), clients built from kubeconfig
//! contexts, and server-side apply of a bundle in dependency order.

mod apply;
mod desired;
pub mod health;
mod targets;

pub use apply::{
    ANNOTATION_ENVIRONMENT, ANNOTATION_PRUNE, ANNOTATION_REVISION, ApplyError, ClusterApplier,
    ClusterAppliers, FIELD_MANAGER, MANAGED_BY_LABEL, Parts, comparable, declared_match, mark,
    may_prune, object_ref, would_change,
};
pub use desired::{AppliedBundle, DesiredError, DesiredSource};
pub use targets::{ClusterArgs, ClusterError, ClusterTarget, Clusters};
