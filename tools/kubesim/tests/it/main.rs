//! Integration tests: kubesim driven over HTTP by kube::Client, the real kubectl, and raw requests.

mod bad_input;
mod binary;
mod client;
mod common;
mod immutable;
mod kubectl;
mod requests;
mod semantics;
mod tls;
