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

/// A crash while a push of many commits is being announced: the next run announces the rest,
/// in order, and none again. Deliveries are counted on a plain NATS subscription, which sees
/// every publish (JetStream's duplicate window would hide a re-announced commit from the
/// stream, not from it).
#[tokio::test]
async fn a_crash_mid_push_loses_no_commit_and_announces_none_twice() {
    use configsync_core::event::EventPayload;
    use futures::StreamExt;
    const PUSHED: usize = 300;

    let bus = Bus::start().await;
    let repo = GitRepo::init_named("mid-push-repo");
    let work = tempfile::tempdir().expect("work dir");
    let first = simple_commit(&repo, 0);
    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    wait_for_commits(&bus, 1).await;
    watcher.stop().await;

    // One push of many commits, announced one by one by the next run.
    let pushed: Vec<String> = (1..=PUSHED as u32)
        .map(|n| simple_commit(&repo, n))
        .collect();
    let client = bus.js().client();
    let filter =
        configsync_core::subject::type_filter(configsync_core::event::CommitDetected::TYPE);
    let mut announced = client.subscribe(filter.clone()).await.expect("subscribes");
    client.flush().await.expect("flush");
    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    for _ in 0..10 {
        tokio::time::timeout(configsync_core::harness::WAIT, announced.next())
            .await
            .expect("the push is being announced")
            .expect("subscription open");
    }
    watcher.kill().await;
    let before = commits(&bus.events().await).len() - 1;
    assert!(
        (10..PUSHED).contains(&before),
        "the crash came mid-push: {before} of {PUSHED} announced"
    );
    drop(announced);

    let mut again = client.subscribe(filter).await.expect("subscribes");
    client.flush().await.expect("flush");
    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    let seen = wait_for_commits(&bus, PUSHED + 1).await;
    watcher.stop().await;
    let mut deliveries = 0;
    while let Ok(Some(_)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), again.next()).await
    {
        deliveries += 1;
    }

    let shas: Vec<String> = seen.iter().map(|c| c.sha.clone()).collect();
    let expected: Vec<String> = std::iter::once(first).chain(pushed).collect();
    assert_eq!(shas, expected, "every commit once, oldest first");
    // The second run resumed from the log: it published what was missing and nothing else.
    // One either way at most: an event the crashed run had sent may reach the stream after
    // it was counted, or be stored while its acknowledgement was cut off (and be sent again).
    let missing = PUSHED - before;
    assert!(
        (missing - 1..=missing + 1).contains(&deliveries),
        "{deliveries} announcements after the restart for {missing} missing commits"
    );
}
