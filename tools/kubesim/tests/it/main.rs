//! Integration tests: kubesim driven over HTTP by kube::Client, the real kubectl, and raw requests;
//! RBAC with per-token users.

mod bad_input;
mod binary;
mod client;
mod common;
mod immutable;
mod kubectl;
mod rbac;
mod requests;
mod semantics;
mod tls;
