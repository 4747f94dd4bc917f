//! The guards on network remotes: loopback and metadata addresses refused unless allowed
//! (SSRF), hosts outside the allow-list refused, and a remote that accepts the connection and
//! never answers timing out with a clear error instead of blocking the watcher.

use std::time::{Duration, Instant};

use configsync_core::harness::{Bus, StalledListener, free_port};

use crate::support::{Watcher, config_with, failures};

/// Starts a watcher on `url` with `flags` and returns its first `source.failed` reason.
async fn first_failure(url: &str, flags: &[&str]) -> (String, bool) {
    let bus = Bus::start().await;
    let work = tempfile::tempdir().expect("work dir");
    let watcher = Watcher::start(config_with(&bus, url, work.path(), flags));
    let events = bus
        .wait_until("a source-failed event", |e| !failures(e).is_empty())
        .await;
    assert!(
        watcher.is_running(),
        "a refused source does not stop the service"
    );
    watcher.stop().await;
    let failed = &failures(&events)[0];
    eprintln!("{url}: {}", failed.reason);
    (failed.reason.clone(), failed.transient)
}

#[tokio::test]
async fn loopback_and_metadata_addresses_are_refused_without_the_allow_flag() {
    // Nothing listens on these: a refusal must come from the guard, before any connection.
    let loopback = format!("git://127.0.0.1:{}/r", free_port());
    let (reason, transient) = first_failure(&loopback, &[]).await;
    assert!(
        reason.contains("is not contacted") && reason.contains("loopback"),
        "{reason}"
    );
    assert!(!transient, "a refused address stays refused");

    for url in [
        "http://169.254.169.254/latest/meta-data/r.git",
        "https://[fd00:ec2::254]/r.git",
    ] {
        // Allowing private addresses does not allow the metadata endpoints.
        let (reason, _) = first_failure(url, &["--allow-private-hosts"]).await;
        assert!(reason.contains("cloud metadata"), "{url}: {reason}");
    }

    let (reason, _) = first_failure(
        "ssh://git@[::1]:1/r.git",
        &["--allow-host", "git.example.com"],
    )
    .await;
    assert!(reason.contains("allow-list"), "{reason}");
}

#[tokio::test]
async fn a_remote_that_accepts_and_never_answers_times_out() {
    let stalled = StalledListener::start();
    for url in [
        format!("git://{}/stalled", stalled.addr),
        format!("http://{}/stalled.git", stalled.addr),
    ] {
        let started = Instant::now();
        let (reason, transient) =
            first_failure(&url, &["--allow-private-hosts", "--fetch-timeout", "1s"]).await;
        assert!(
            reason.contains("timed out") && reason.contains(&url),
            "{url}: {reason}"
        );
        assert!(transient, "a stalled remote may recover");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url}: reported after the timeout, not the operating system's ({:?})",
            started.elapsed()
        );
    }
    assert!(
        stalled.accepted() >= 2,
        "the connections were made and held"
    );
}
