//! End-to-end tests: the services as they run in production, against a real nats-server.

mod http;
mod services;
