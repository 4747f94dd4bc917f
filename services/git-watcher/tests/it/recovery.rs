//! A rewrite whose new tip was never announced (the process stopped between the two events)
//! is completed at the next start: the tip gets its commit-detected event.

use configsync_core::event::{EventData, Outgoing, SourceRewritten};

use configsync_core::harness::{Bus, GitRepo};

use crate::support::{Watcher, config, simple_commit, wait_for_commits};

#[tokio::test]
async fn an_unannounced_rewrite_tip_is_announced_after_a_restart() {
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("recovery-repo");
    let work = tempfile::tempdir().expect("work dir");
    let c1 = simple_commit(&repo, 1);
    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    wait_for_commits(&bus, 1).await;
    watcher.stop().await;

    // The branch is rewritten; the previous run published the rewrite and then died.
    repo.git(&["checkout", "-q", "--orphan", "fresh"]);
    let c2 = simple_commit(&repo, 2);
    repo.git(&["branch", "-q", "-M", "fresh", "main"]);
    let rewritten = SourceRewritten {
        repository: repo.url(),
        branch: "main".into(),
        source: None,
        path: None,
        previous_sha: c1.clone(),
        new_sha: c2.clone(),
    };
    let event = Outgoing::builder(&rewritten)
        .cause("test")
        .build("configsync://git-watcher/crashed")
        .expect("event builds");
    bus.log
        .publisher(std::time::Duration::from_secs(10))
        .publish(&event)
        .await
        .expect("published");

    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    let seen = wait_for_commits(&bus, 2).await;
    watcher.stop().await;
    assert_eq!(seen[1].sha, c2);
    assert!(seen[1].parents.is_empty(), "an orphan commit");
    let rewrites = bus
        .events()
        .await
        .iter()
        .filter(|e| matches!(e.data, EventData::SourceRewritten(_)))
        .count();
    assert_eq!(rewrites, 1, "the rewrite is not reported again");
}
