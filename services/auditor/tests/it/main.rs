//! The auditor against a real nats-server (one per test, random port, temporary store):
//! search, redaction, dead letters, restart and resume, the API's tokens.

mod api;
mod restart;
mod search;
mod support;
