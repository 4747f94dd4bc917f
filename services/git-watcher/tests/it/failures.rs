//! Bad sources: a path that is not a repository and an unreachable `git://` remote each give a
//! clear `source.failed` event, and the service keeps running and recovers.

use configsync_core::harness::{Bus, GitRepo, free_port};

use crate::support::{GitDaemon, Watcher, config, failures, simple_commit, wait_for_commits};

#[tokio::test]
async fn a_path_that_is_not_a_repository_is_reported_and_the_service_recovers() {
    let bus = Bus::start().await;
    let not_a_repo = tempfile::tempdir().expect("dir");
    std::fs::write(not_a_repo.path().join("notes.txt"), "just files\n").expect("file");
    let work = tempfile::tempdir().expect("work dir");
    let url = format!("file://{}", not_a_repo.path().display());

    let watcher = Watcher::start(config(&bus, &url, work.path()));
    let events = bus
        .wait_until("a source-failed event", |events| {
            !failures(events).is_empty()
        })
        .await;
    let failed = &failures(&events)[0];
    eprintln!("source.failed reason: {}", failed.reason);
    assert_eq!(failed.repository, url);
    assert_eq!(failed.branch.as_deref(), Some("main"));
    assert!(
        failed.reason.contains("is not a git repository")
            && failed
                .reason
                .contains(&not_a_repo.path().display().to_string()),
        "precise reason: {}",
        failed.reason
    );
    assert!(
        !failed.transient,
        "a directory does not become a repository by waiting"
    );
    assert!(
        watcher.is_running(),
        "a bad source does not stop the service"
    );

    // Someone fixes it: the service, still polling, picks it up.
    let fixed = GitRepo::init_at(not_a_repo.path());
    fixed.git(&["add", "-A"]);
    fixed.git(&[
        "-c",
        "user.name=A",
        "-c",
        "user.email=a@example.com",
        "commit",
        "-q",
        "-m",
        "now a repo",
    ]);
    wait_for_commits(&bus, 1).await;
    assert_eq!(
        failures(&bus.events().await).len(),
        1,
        "the failure is reported once, not once per poll"
    );
    watcher.stop().await;
}

#[tokio::test]
async fn a_missing_path_is_reported_as_such() {
    let bus = Bus::start().await;
    let work = tempfile::tempdir().expect("work dir");
    let url = "file:///nonexistent/configsync/repo".to_string();

    let watcher = Watcher::start(config(&bus, &url, work.path()));
    let events = bus
        .wait_until("a source-failed event", |events| {
            !failures(events).is_empty()
        })
        .await;
    let failed = &failures(&events)[0];
    eprintln!("source.failed reason: {}", failed.reason);
    assert!(
        failed
            .reason
            .contains("/nonexistent/configsync/repo does not exist"),
        "precise reason: {}",
        failed.reason
    );
    assert!(!failed.transient);
    assert!(watcher.is_running());
    watcher.stop().await;
}

/// A watcher on a `git://` remote where nothing listens yet: it reports the remote as
/// unreachable, transiently, with the transport's reason, and keeps running.
async fn watch_an_unreachable_remote(bus: &Bus, url: &str, work: &std::path::Path) -> Watcher {
    let watcher = Watcher::start(config(bus, url, work));
    let events = bus
        .wait_until("a source-failed event", |events| {
            !failures(events).is_empty()
        })
        .await;
    let failed = &failures(&events)[0];
    eprintln!("source.failed reason: {}", failed.reason);
    assert_eq!(failed.repository, url);
    assert!(
        failed.reason.contains("unreachable") && failed.reason.contains(url),
        "precise reason: {}",
        failed.reason
    );
    assert!(failed.transient, "a remote that is down may come back");
    assert!(
        failed.reason.to_lowercase().contains("connection refused"),
        "the transport's own reason is kept: {}",
        failed.reason
    );
    assert!(watcher.is_running());
    watcher
}

#[tokio::test]
async fn an_unreachable_git_remote_is_reported_as_transient() {
    let bus = Bus::start().await;
    let url = format!("git://127.0.0.1:{}/nobody-serves-this", free_port());
    let work = tempfile::tempdir().expect("work dir");
    let watcher = watch_an_unreachable_remote(&bus, &url, work.path()).await;
    watcher.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_git_daemon),
    ignore = "this machine's git has no `git daemon`: install a git that ships git-daemon"
)]
async fn an_unreachable_git_remote_is_reported_as_transient_and_the_service_recovers() {
    configsync_prereq::require_git_daemon();
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("later-repo");
    let c1 = simple_commit(&repo, 1);
    let port = free_port();
    let url = format!("git://127.0.0.1:{port}/later-repo");
    let work = tempfile::tempdir().expect("work dir");
    let watcher = watch_an_unreachable_remote(&bus, &url, work.path()).await;

    // The remote comes up on that port: the service, backing off but still polling, recovers.
    let _daemon = GitDaemon::start(repo.parent(), port).await;
    let seen = wait_for_commits(&bus, 1).await;
    assert_eq!(seen[0].sha, c1);
    assert_eq!(seen[0].repository, url);
    assert_eq!(failures(&bus.events().await).len(), 1);
    watcher.stop().await;
}
