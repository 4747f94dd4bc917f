//! A restart rebuilds the last seen commit from the log: nothing is emitted twice, and commits
//! made while the service was down are emitted after it comes back.

use configsync_core::names::SourceId;
use configsync_git_watcher::last_seen;

use configsync_core::harness::{Bus, GitRepo};

use crate::support::{Watcher, commits, config, simple_commit, wait_for_commits};

#[tokio::test]
async fn a_restart_emits_nothing_twice_and_skips_nothing() {
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("restart-repo");
    let work = tempfile::tempdir().expect("work dir");
    let c1 = simple_commit(&repo, 1);

    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    wait_for_commits(&bus, 1).await;
    let c2 = simple_commit(&repo, 2);
    wait_for_commits(&bus, 2).await;
    watcher.stop().await;

    // What the next run starts from, rebuilt from the log alone.
    let remembered = last_seen(&bus.log, &SourceId::new(repo.url(), "main"))
        .await
        .expect("log replays");
    assert_eq!(remembered.sha.as_deref(), Some(c2.as_str()));
    assert!(remembered.rewritten_from.is_none());

    // Commits made while the service is down.
    let c3 = simple_commit(&repo, 3);
    let c4 = simple_commit(&repo, 4);
    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    wait_for_commits(&bus, 4).await;
    let c5 = simple_commit(&repo, 5);
    wait_for_commits(&bus, 5).await;
    watcher.stop().await;

    // And once more with the mirror lost: a fresh work dir costs a full fetch, nothing more.
    let c6 = simple_commit(&repo, 6);
    let fresh = tempfile::tempdir().expect("work dir");
    let watcher = Watcher::start(config(&bus, &repo.url(), fresh.path()));
    let seen = wait_for_commits(&bus, 6).await;
    watcher.stop().await;

    let shas: Vec<String> = seen.iter().map(|c| c.sha.clone()).collect();
    assert_eq!(shas, [c1, c2, c3, c4, c5, c6.clone()]);
    // Nothing after c6 either (a duplicate would show up as a seventh event only outside
    // JetStream's duplicate window, so the remembered tip is checked too).
    assert_eq!(commits(&bus.events().await).len(), 6);
    let remembered = last_seen(&bus.log, &SourceId::new(repo.url(), "main"))
        .await
        .expect("log replays");
    assert_eq!(remembered.sha.as_deref(), Some(c6.as_str()));
}
