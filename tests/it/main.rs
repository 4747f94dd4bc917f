//! End-to-end tests: the services as they run in production, against a real nats-server,
//! kubesim clusters over HTTP (enforcing the RBAC of `deploy/kubernetes` in `rbac`), the real
//! `kubectl`, and real Git repositories.

mod chain;
mod drift;
mod http;
mod pipeline;
mod rbac;
mod remediation;
mod services;
mod sources;
mod support;
