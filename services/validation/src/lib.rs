//! ConfigSync's validation engine, shared by the validator service (on bundles read from Git)
//! and `configsync validate` (on files in a checkout, pre-merge in CI): loading manifests with
//! limits, checking them, and reporting findings in the formats CI systems read.
//!
//! Today: plain YAML/JSON manifests, syntax and object shape, duplicates, and Rego policies
//! (a built-in baseline plus the team's own). Kubernetes schemas, references and
//! Kustomize/Helm rendering are the next steps (docs/architecture.md).

pub mod manifests;
pub mod policy;
pub mod report;
pub mod sources;
