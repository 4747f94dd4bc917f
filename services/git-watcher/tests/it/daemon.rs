//! Following a remote over the network: `git://` served by `git daemon`.

use configsync_core::harness::{Bus, GitRepo, free_port};

use crate::support::{GitDaemon, Watcher, config, failures, simple_commit, wait_for_commits};

#[tokio::test]
#[cfg_attr(
    not(has_git_daemon),
    ignore = "this machine's git has no `git daemon`: install a git that ships git-daemon"
)]
async fn follows_a_git_daemon_remote() {
    configsync_prereq::require_git_daemon();
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("served-repo");
    let daemon = GitDaemon::start(repo.parent(), free_port()).await;
    let url = format!("git://127.0.0.1:{}/served-repo", daemon.port);
    let work = tempfile::tempdir().expect("work dir");
    let c1 = simple_commit(&repo, 1);

    let watcher = Watcher::start(config(&bus, &url, work.path()));
    wait_for_commits(&bus, 1).await;
    let c2 = simple_commit(&repo, 2);
    let c3 = simple_commit(&repo, 3);
    let seen = wait_for_commits(&bus, 3).await;
    watcher.stop().await;

    let shas: Vec<&str> = seen.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(shas, [c1.as_str(), c2.as_str(), c3.as_str()]);
    assert!(seen.iter().all(|c| c.repository == url));
    assert_eq!(seen[2].parents, vec![c2.clone()]);
    assert!(failures(&bus.events().await).is_empty());
}
