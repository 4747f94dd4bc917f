//! The `configsync` CLI as a library: its subcommands, and the local stack (NATS, kubesim
//! clusters, the six services) that `up`, `demo`, the end-to-end tests and the pipeline
//! benchmark run in one process.

pub mod commands;
