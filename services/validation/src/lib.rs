//! ConfigSync's validation engine, shared by the validator service (on bundles read from Git)
//! and `configsync validate` (on files in a checkout, pre-merge in CI): loading manifests with
//! limits, rendering Kustomize and Helm sources in a sandbox, checking objects against the
//! Kubernetes schemas of a chosen version and the CRDs among them, Rego policies and the
//! references between objects, and reporting findings in the formats CI systems read.
//! `engine` puts the steps together (docs/architecture.md, "validation engine").

pub mod apps;
pub mod decode;
pub mod engine;
pub mod manifests;
pub mod nesting;
pub mod policy;
pub mod positions;
pub mod references;
pub mod render;
pub mod report;
pub mod schema;
pub mod sources;
pub mod yaml11;
mod yaml_events;
