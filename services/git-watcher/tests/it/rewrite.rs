//! A force-push is reported as a rewrite, then the new tip is announced and followed.

use configsync_core::event::EventData;

use configsync_core::harness::{Bus, GitRepo};

use crate::support::{Watcher, config, simple_commit, wait_for_commits};

#[tokio::test]
async fn a_force_push_emits_source_rewritten_then_follows_the_new_tip() {
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("rewrite-repo");
    let work = tempfile::tempdir().expect("work dir");
    let c1 = simple_commit(&repo, 1);
    let c2 = simple_commit(&repo, 2);

    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    wait_for_commits(&bus, 1).await;

    // Rewrite history: drop c2, commit something else on c1.
    repo.git(&["reset", "-q", "--hard", &c1]);
    let c3 = simple_commit(&repo, 3);
    wait_for_commits(&bus, 2).await;
    let c4 = simple_commit(&repo, 4);
    wait_for_commits(&bus, 3).await;
    watcher.stop().await;

    let story: Vec<String> = bus
        .events()
        .await
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CommitDetected(c) => Some(format!("commit {}", c.sha)),
            EventData::SourceRewritten(r) => {
                assert_eq!(r.repository, repo.url());
                assert_eq!(r.branch, "main");
                Some(format!("rewritten {} -> {}", r.previous_sha, r.new_sha))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        story,
        [
            format!("commit {c2}"),
            format!("rewritten {c2} -> {c3}"),
            format!("commit {c3}"),
            format!("commit {c4}"),
        ]
    );
}
