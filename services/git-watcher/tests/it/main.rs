//! Integration tests of the git-watcher against a real nats-server and real repositories made
//! with the `git` CLI (one server per test, random ports, temporary directories).

mod commits;
mod daemon;
mod failures;
mod guards;
mod recovery;
mod restart;
mod rewrite;
mod sources;
mod support;
mod transports;
mod tree;
mod webhooks;
