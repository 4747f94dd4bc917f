//! ConfigSync's validation engine, shared by the validator service (on bundles read from Git)
//! and `configsync validate` (on files in a checkout, pre-merge in CI): loading manifests with
//! limits, checking them, and reporting findings in the formats CI systems read.
//!
//! Today: plain YAML/JSON manifests, syntax and object shape, duplicates, and references between
//! objects. Kubernetes schemas, policies and Kustomize/Helm rendering are the next steps
//! Today: plain YAML/JSON manifests, syntax and object shape, duplicates, and Kustomize/Helm
//! rendering in a sandbox. Kubernetes schemas, policies and references are the next steps
//! (docs/architecture.md).

pub mod decode;
pub mod manifests;
pub mod positions;
pub mod references;
pub mod render;
pub mod report;
pub mod sources;
