//! The consumer runner: redelivery after a crash, replicas splitting work, dead letters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv;
use configsync_core::event::Received;
use configsync_core::log::{ConsumerSpec, HandlerError};
use configsync_core::subject;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{dead_letters, health};
use configsync_core::harness::{Bus, WAIT, eventually_true};

#[tokio::test]
async fn a_consumer_killed_between_effect_and_ack_gets_a_redelivery_and_the_effect_happens_once() {
    let bus = Bus::start().await;
    let effects = bus
        .js()
        .create_key_value(kv::Config {
            bucket: "effects".into(),
            history: 1,
            ..Default::default()
        })
        .await
        .expect("kv bucket");
    bus.publisher().publish(&health(1)).await.unwrap();

    let mut spec = ConsumerSpec::new("killable", vec![subject::ALL_EVENTS.into()]);
    spec.ack_wait = Duration::from_secs(2);
    let performed = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));

    // The idempotent effect: record the event id once (create fails if it exists).
    let handler = |effects: kv::Store,
                   performed: Arc<Mutex<Vec<(String, u64)>>>,
                   crash: Option<mpsc::UnboundedSender<()>>| {
        move |ev: Received| {
            let effects = effects.clone();
            let performed = performed.clone();
            let crash = crash.clone();
            async move {
                match effects.create(ev.id(), "applied".into()).await {
                    Ok(_) => performed
                        .lock()
                        .unwrap()
                        .push((ev.id().to_string(), ev.delivered)),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                    Err(e) => return Err(HandlerError::Transient(e.to_string())),
                }
                if let Some(crash) = crash {
                    // Effect done, ack not sent: the process "dies" here.
                    let _ = crash.send(());
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        }
    };

    let (crashed_tx, mut crashed_rx) = mpsc::unbounded_channel();
    let first = bus.log.runner(spec.clone()).await.unwrap();
    let doomed = tokio::spawn(first.run(
        handler(effects.clone(), performed.clone(), Some(crashed_tx)),
        CancellationToken::new(),
    ));
    tokio::time::timeout(WAIT, crashed_rx.recv())
        .await
        .expect("first delivery reaches the handler");
    doomed.abort();

    let survivor_log = bus.another_client().await;
    let second = survivor_log.runner(spec).await.unwrap();
    let shutdown = CancellationToken::new();
    let survivor = tokio::spawn(second.run(
        handler(effects.clone(), performed.clone(), None),
        shutdown.clone(),
    ));
    let js = bus.js().clone();
    eventually_true("the redelivered message is acknowledged", || {
        let js = js.clone();
        async move {
            let mut c: async_nats::jetstream::consumer::PullConsumer = js
                .get_consumer_from_stream("killable", "CONFIGSYNC_EVENTS")
                .await
                .unwrap();
            let info = c.info().await.unwrap();
            info.num_ack_pending == 0
                && info.num_pending == 0
                && info.ack_floor.stream_sequence == 1
        }
    })
    .await;
    shutdown.cancel();
    let stats = survivor.await.unwrap().unwrap();
    assert_eq!(stats.acked, 1, "the survivor acknowledged the redelivery");
    assert_eq!(
        performed.lock().unwrap().len(),
        1,
        "the effect happened exactly once: {:?}",
        performed.lock().unwrap()
    );
    let keys: Vec<String> = futures::TryStreamExt::try_collect(effects.keys().await.unwrap())
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
}

#[tokio::test]
async fn two_replicas_split_the_work_with_none_lost_and_none_twice() {
    let bus = Bus::start().await;
    const N: u64 = 300;
    let publisher = bus.publisher();
    let mut acks = Vec::new();
    for n in 0..N {
        acks.push(publisher.send(&health(n)).await.unwrap());
    }
    for ack in acks {
        ack.wait().await.unwrap();
    }

    let seen: Arc<Mutex<HashMap<String, Vec<&'static str>>>> = Arc::default();
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    for replica in ["replica-a", "replica-b"] {
        let log = bus.another_client().await;
        let mut spec = ConsumerSpec::new("splitter", vec![subject::ALL_EVENTS.into()]);
        spec.max_in_flight = 4;
        let runner = log.runner(spec).await.unwrap();
        let seen = seen.clone();
        tasks.push(tokio::spawn(runner.run(
            move |ev: Received| {
                let seen = seen.clone();
                async move {
                    // Slow enough that both replicas get a share.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    seen.lock()
                        .unwrap()
                        .entry(ev.id().to_string())
                        .or_default()
                        .push(replica);
                    Ok(())
                }
            },
            shutdown.clone(),
        )));
    }
    eventually_true("every message handled", || {
        let n = seen.lock().unwrap().len() as u64;
        async move { n >= N }
    })
    .await;
    shutdown.cancel();
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap().unwrap().acked;
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, N, "none lost");
    let twice: Vec<_> = seen.iter().filter(|(_, r)| r.len() > 1).collect();
    assert!(twice.is_empty(), "processed twice: {twice:?}");
    assert_eq!(acked, N);
    let per_replica = |name| seen.values().filter(|r| r[0] == name).count();
    assert!(
        per_replica("replica-a") > 0 && per_replica("replica-b") > 0,
        "both replicas took work: a={} b={}",
        per_replica("replica-a"),
        per_replica("replica-b")
    );
}

#[tokio::test]
async fn poison_ends_in_the_dead_letter_record_and_the_consumer_goes_on() {
    let bus = Bus::start().await;
    // 1: garbage, 2: an event whose handler always fails, 3: a terminal failure, 4: a good one.
    bus.js()
        .publish(
            "configsync.evt.dev.c1.health.ready.v1",
            "not a cloudevent".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let publisher = bus.publisher();
    let always_fails = health(2);
    let terminal = health(3);
    let good = health(4);
    for e in [&always_fails, &terminal, &good] {
        publisher.publish(e).await.unwrap();
    }

    let mut spec = ConsumerSpec::new("poisoned", vec![subject::ALL_EVENTS.into()]);
    spec.max_deliver = 3;
    spec.retry_initial = Duration::from_millis(20);
    spec.retry_max = Duration::from_millis(50);
    let attempts: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let handled_good = Arc::new(Mutex::new(false));
    let (fail_id, term_id, good_id) = (
        always_fails.id().to_string(),
        terminal.id().to_string(),
        good.id().to_string(),
    );
    let runner = bus.log.runner(spec).await.unwrap();
    let shutdown = CancellationToken::new();
    let task = {
        let attempts = attempts.clone();
        let handled_good = handled_good.clone();
        tokio::spawn(runner.run(
            move |ev: Received| {
                let attempts = attempts.clone();
                let handled_good = handled_good.clone();
                let (fail_id, term_id, good_id) =
                    (fail_id.clone(), term_id.clone(), good_id.clone());
                async move {
                    *attempts
                        .lock()
                        .unwrap()
                        .entry(ev.id().to_string())
                        .or_default() += 1;
                    if ev.id() == fail_id {
                        Err(HandlerError::Transient("cluster unreachable".into()))
                    } else if ev.id() == term_id {
                        Err(HandlerError::Terminal(
                            "manifest refers to a missing bundle".into(),
                        ))
                    } else {
                        assert_eq!(ev.id(), good_id);
                        *handled_good.lock().unwrap() = true;
                        Ok(())
                    }
                }
            },
            shutdown.clone(),
        ))
    };
    let js = bus.js().clone();
    eventually_true("three dead letters", || {
        let js = js.clone();
        async move { dead_letters(&js).await.len() >= 3 }
    })
    .await;
    eventually_true("the good event is handled", || {
        let done = *handled_good.lock().unwrap();
        async move { done }
    })
    .await;
    shutdown.cancel();
    let stats = task.await.unwrap().unwrap();
    assert_eq!(stats.dead_lettered, 3);

    let records = dead_letters(bus.js()).await;
    assert_eq!(records.len(), 3, "{records:?}");
    let by_seq = |seq: u64| {
        records
            .iter()
            .find(|r| r.stream_sequence == seq)
            .unwrap_or_else(|| panic!("no record for {seq}: {records:?}"))
    };
    assert!(
        by_seq(1).reason.contains("undecodable event")
            && by_seq(1).reason.contains("not a cloudevent"),
        "{}",
        by_seq(1).reason
    );
    assert_eq!(
        by_seq(1).delivery_count,
        1,
        "undecodable messages are not retried"
    );
    assert!(
        by_seq(2)
            .reason
            .contains("still failing after 3 deliveries: cluster unreachable"),
        "{}",
        by_seq(2).reason
    );
    assert_eq!(by_seq(2).delivery_count, 3);
    assert!(
        by_seq(3)
            .reason
            .contains("manifest refers to a missing bundle")
    );
    assert_eq!(by_seq(3).delivery_count, 1);
    assert!(records.iter().all(|r| r.consumer == "poisoned"));
    assert_eq!(
        by_seq(2).headers.get("ce-type").map(String::as_str),
        Some("io.configsync.health.ready.v1")
    );
    assert_eq!(
        attempts.lock().unwrap()[always_fails.id()],
        3,
        "retried up to max_deliver, then given up"
    );
}
