//! Replaying the log from a sequence or a time gives the same state as the live fold.

use std::sync::{Arc, Mutex};

use configsync_core::event::*;
use configsync_core::fold::LogState;
use configsync_core::log::{ConsumerSpec, Entry, Fold, Reader, Start, Until, replay};
use configsync_core::subject;
use tokio_util::sync::CancellationToken;

use configsync_core::harness::{Bus, WAIT, eventually_true};

fn obj(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("default".into()),
        name: name.into(),
    }
}

/// A plausible history: commits, validations, applies to two clusters, drift and repair.
fn history() -> Vec<Outgoing> {
    let src = "configsync://test/replay";
    let mut out = Vec::new();
    for (i, rev) in ["r1", "r2", "r3"].iter().enumerate() {
        let who = Person {
            name: "a".into(),
            email: "a@x".into(),
            time: chrono::Utc::now(),
        };
        let commit = CommitDetected {
            repository: "file:///repo".into(),
            branch: "main".into(),
            source: None,
            path: None,
            trailers: Vec::new(),
            sha: rev.to_string(),
            parents: vec![],
            author: who.clone(),
            committer: who,
            message: format!("change {i}"),
            signed: false,
            signature: None,
            environments: vec![],
            other_paths: vec![],
            whole_tree: false,
        };
        out.push(Outgoing::builder(&commit).cause(rev).build(src).unwrap());
        let passed = ValidationPassed {
            environment: "dev".into(),
            revision: rev.to_string(),
            bundle_digest: format!("sha256:{i}"),
            objects: vec![obj("a"), obj(&format!("b{i}"))],
            warnings: vec![],
            commit_sequence: 0,
            author: None,
        };
        out.push(Outgoing::builder(&passed).cause(rev).build(src).unwrap());
        for cluster in ["c1", "c2"] {
            let started = ApplyStarted {
                environment: "dev".into(),
                cluster: cluster.into(),
                revision: rev.to_string(),
                bundle_digest: format!("sha256:{i}"),
                objects: 2,
            };
            out.push(
                Outgoing::builder(&started)
                    .cause(rev)
                    .cause(cluster)
                    .build(src)
                    .unwrap(),
            );
            let results = passed
                .objects
                .iter()
                .map(|o| ObjectResult {
                    object: o.clone(),
                    action: ObjectAction::Configured,
                    message: None,
                })
                .collect();
            if i == 2 && cluster == "c2" {
                let failed = ApplyFailed {
                    environment: "dev".into(),
                    cluster: cluster.into(),
                    revision: rev.to_string(),
                    bundle_digest: format!("sha256:{i}"),
                    reason: "cluster down".into(),
                    transient: true,
                    results: vec![],
                };
                out.push(
                    Outgoing::builder(&failed)
                        .cause(rev)
                        .cause(cluster)
                        .build(src)
                        .unwrap(),
                );
            } else {
                let ok = ApplySucceeded {
                    environment: "dev".into(),
                    cluster: cluster.into(),
                    revision: rev.to_string(),
                    bundle_digest: format!("sha256:{i}"),
                    results,
                    duration_ms: 5,
                    counts: Default::default(),
                    results_truncated: false,
                };
                out.push(
                    Outgoing::builder(&ok)
                        .cause(rev)
                        .cause(cluster)
                        .build(src)
                        .unwrap(),
                );
            }
        }
        let drift = DriftDetected {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: rev.to_string(),
            object: obj("a"),
            kind: DriftKind::Modified,
            fields: vec![],
            changed_by: Some("kubectl-edit".into()),
            resource_version: None,
            ignored: vec![],
        };
        out.push(Outgoing::builder(&drift).cause(rev).build(src).unwrap());
        if i < 2 {
            let resolved = DriftResolved {
                environment: "dev".into(),
                cluster: "c1".into(),
                revision: rev.to_string(),
                object: obj("a"),
            };
            out.push(Outgoing::builder(&resolved).cause(rev).build(src).unwrap());
        }
    }
    out
}

#[tokio::test]
async fn replay_from_a_sequence_and_from_a_time_equals_the_live_fold() {
    let bus = Bus::start().await;
    // The live fold: a service folding events as they arrive (in order: one in flight).
    let live = Arc::new(Mutex::new(LogState::default()));
    let mut spec = ConsumerSpec::new("live-fold", vec![subject::ALL_EVENTS.into()]);
    spec.max_in_flight = 1;
    let runner = bus.log.runner(spec).await.unwrap();
    let shutdown = CancellationToken::new();
    let task = {
        let live = live.clone();
        tokio::spawn(runner.run(
            move |ev: Received| {
                let live = live.clone();
                async move {
                    live.lock().unwrap().apply(&ev);
                    Ok(())
                }
            },
            shutdown.clone(),
        ))
    };
    let events = history();
    let publisher = bus.publisher();
    for e in &events {
        assert!(
            !publisher.publish(e).await.unwrap().duplicate,
            "history events have distinct causes"
        );
    }
    let last = events.len() as u64;
    eventually_true("the live fold caught up", || {
        let seq = live.lock().unwrap().sequence;
        async move { seq == last }
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let live = live.lock().unwrap().clone();
    assert_eq!(
        live.target(&"dev/c1".parse().unwrap())
            .unwrap()
            .deployed_revision
            .as_deref(),
        Some("r3")
    );
    assert_eq!(
        live.target(&"dev/c2".parse().unwrap())
            .unwrap()
            .deployed_revision
            .as_deref(),
        Some("r2"),
        "r3 failed on c2"
    );
    assert_eq!(
        live.target(&"dev/c1".parse().unwrap())
            .unwrap()
            .drifted
            .len(),
        1
    );

    // From the beginning.
    let mut full = LogState::default();
    let stats = replay(
        bus.js(),
        "CONFIGSYNC_EVENTS",
        Start::Beginning,
        Until::End,
        &mut full,
    )
    .await
    .unwrap();
    assert_eq!(stats.events, last);
    assert_eq!(full, live);

    // From a sequence: a MessagePack snapshot at k, then the rest.
    let k = last / 2;
    let mut at_k = LogState::default();
    replay(
        bus.js(),
        "CONFIGSYNC_EVENTS",
        Start::Beginning,
        Until::Sequence(k),
        &mut at_k,
    )
    .await
    .unwrap();
    assert_eq!(at_k.sequence, k);
    assert_ne!(at_k, live, "the snapshot is a real intermediate state");
    let snapshot = at_k.to_snapshot().unwrap();
    let mut from_seq = LogState::from_snapshot(&snapshot).unwrap();
    replay(
        bus.js(),
        "CONFIGSYNC_EVENTS",
        Start::Sequence(k + 1),
        Until::End,
        &mut from_seq,
    )
    .await
    .unwrap();
    assert_eq!(from_seq, live);

    // From a time: the stored time of event k+1.
    let mut reader = Reader::open(bus.js(), "CONFIGSYNC_EVENTS", Start::Sequence(k + 1), None)
        .await
        .unwrap();
    let Some(Ok(Entry::Event(next))) = tokio::time::timeout(WAIT, reader.next())
        .await
        .expect("read in time")
    else {
        panic!("event k+1 readable")
    };
    let mut from_time = LogState::from_snapshot(&snapshot).unwrap();
    replay(
        bus.js(),
        "CONFIGSYNC_EVENTS",
        Start::Time(next.stored_at),
        Until::End,
        &mut from_time,
    )
    .await
    .unwrap();
    assert_eq!(from_time, live);

    // And the state at a past time equals the state at the matching sequence.
    let mut until_time = LogState::default();
    replay(
        bus.js(),
        "CONFIGSYNC_EVENTS",
        Start::Beginning,
        Until::Time(next.stored_at),
        &mut until_time,
    )
    .await
    .unwrap();
    let mut until_seq = LogState::default();
    replay(
        bus.js(),
        "CONFIGSYNC_EVENTS",
        Start::Beginning,
        Until::Sequence(k + 1),
        &mut until_seq,
    )
    .await
    .unwrap();
    assert_eq!(until_time, until_seq);
}
