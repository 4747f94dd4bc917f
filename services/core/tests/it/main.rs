//! Integration tests of the shared crate against a real nats-server (one per test, random
//! port, temporary store).

mod bad_input;
mod concurrency;
mod consume;
mod log_immutability;
mod permissions;
mod replay;
mod restart;
mod roundtrip;
mod schemas;
mod stream_init;
mod support;
mod tls;
