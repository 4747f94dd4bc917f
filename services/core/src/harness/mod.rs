//! Test harness, the one place tests get their real parts from: a nats-server
//! ([`NatsServer`]), a bus on it with the stream and the bundle store ([`Bus`]), waiting for
//! events ([`Bus::wait_for`], [`wait_for_event`], [`eventually`]), Git repositories made with the `git` CLI
//! ([`GitRepo`]), Git servers over smart HTTP ([`GitHttpServer`]) and SSH
//! ([`Sshd`]), a remote that stalls and a raw HTTP POST ([`StalledListener`], [`http_post`]),
//! free ports and one deadline for every wait ([`WAIT`]).

mod bus;
mod git;
mod git_http;
mod nats;
mod net;
mod sshd;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

pub use bus::{Bus, SOURCE, connect, events_so_far, wait_for_event, wait_for_event_named};
pub use git::{ALICE, GitRepo, Who};
pub use git_http::GitHttpServer;
pub use nats::{NatsServer, nats_server_bin};
pub use net::{StalledListener, http_post, http_request};
pub use sshd::{Sshd, ssh_keygen};

/// The longest any single wait in a test may take before it fails: generous, because the
/// machines that run the tests are shared and small, and a wait that succeeds returns at once.
pub const WAIT: Duration = Duration::from_secs(90);

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    free_addr().port()
}

/// A free loopback address (nothing listens on it once this returns).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Polls `check` until it returns `Some`, and returns that; fails the test after [`WAIT`],
/// naming `what` it waited for.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// [`eventually`] for a check that says only yes or no.
pub async fn eventually_true<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await
}
