//! ConfigSync's shared library: the event model, the CloudEvents NATS binding, the event log
//! (stream, publisher, consumer runner, dead letters, replay), the folds that rebuild state
//! from the log, what every service needs to run (config, telemetry, ops endpoint), and the
//! one masking of secret values (`redact`).

pub mod access;
pub mod binding;
#[cfg(feature = "kube")]
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod event;
pub mod fold;
pub mod ignore;
pub mod local_nats;
pub mod log;
pub mod metrics;
pub mod names;
pub mod nats_auth;
pub mod ops;
pub mod order;
pub mod redact;
pub mod retry;
pub mod schema;
pub mod service;
pub mod subject;
pub mod telemetry;

#[cfg(feature = "git")]
pub mod git;
#[cfg(feature = "test-harness")]
pub mod harness;

pub use cloudevents;
