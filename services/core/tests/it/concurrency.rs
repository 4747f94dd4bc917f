//! Per-target optimistic concurrency, graceful drain and the lag metric.

use std::time::Duration;

use configsync_core::event::Received;
use configsync_core::log::{ConsumerSpec, PublishError};
use configsync_core::subject;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::support::health;
use configsync_core::harness::{Bus, WAIT, eventually_true};

#[tokio::test]
async fn expected_last_subject_sequence_guards_a_target() {
    let bus = Bus::start().await;
    let publisher = bus.publisher();
    // Empty subject: expecting 0 holds.
    let first = publisher
        .publish_expecting(&health(1), 0)
        .await
        .expect("first write on an empty subject");
    // A second writer that still believes the subject is empty loses.
    match publisher.publish_expecting(&health(2), 0).await {
        Err(PublishError::SequenceMismatch { expected, subject }) => {
            assert_eq!(expected, 0);
            assert_eq!(subject, "configsync.evt.dev.c1.health.ready.v1");
        }
        other => panic!("expected a sequence mismatch, got {other:?}"),
    }
    // One that read the latest sequence wins.
    let second = publisher
        .publish_expecting(&health(2), first.sequence)
        .await
        .expect("up-to-date writer");
    assert_eq!(second.sequence, first.sequence + 1);
    assert!(
        !PublishError::SequenceMismatch {
            subject: String::new(),
            expected: 0
        }
        .is_transient()
    );
}

#[tokio::test]
async fn shutdown_drains_in_flight_work_before_returning() {
    let bus = Bus::start().await;
    bus.publisher().publish(&health(1)).await.unwrap();
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let runner = bus
        .log
        .runner(ConsumerSpec::new(
            "drainer",
            vec![subject::ALL_EVENTS.into()],
        ))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runner.run(
        move |_ev: Received| {
            let started_tx = started_tx.clone();
            let release_rx = release_rx.clone();
            async move {
                let _ = started_tx.send(());
                if let Some(rx) = release_rx.lock().await.take() {
                    let _ = rx.await;
                }
                Ok(())
            }
        },
        shutdown.clone(),
    ));
    tokio::time::timeout(WAIT, started_rx.recv())
        .await
        .expect("handler started");
    shutdown.cancel();
    // The runner must wait for the handler instead of abandoning it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !task.is_finished(),
        "run returned while a handler was still working"
    );
    release_tx.send(()).unwrap();
    let stats = tokio::time::timeout(WAIT, task)
        .await
        .expect("drains in time")
        .unwrap()
        .unwrap();
    assert_eq!(
        stats.acked, 1,
        "the in-flight message was acknowledged during the drain"
    );
}

#[tokio::test]
async fn consumer_lag_is_exported_as_a_metric() {
    let bus = Bus::start().await;
    for n in 0..3 {
        bus.publisher().publish(&health(n)).await.unwrap();
    }
    let mut spec = ConsumerSpec::new("lagging", vec![subject::ALL_EVENTS.into()]);
    spec.max_in_flight = 1;
    let runner = bus.log.runner(spec).await.unwrap();
    let shutdown = CancellationToken::new();
    // A handler stuck on the first event: the other two wait in the stream.
    let task = tokio::spawn(runner.run(
        |_ev: Received| std::future::pending::<Result<(), _>>(),
        shutdown.clone(),
    ));
    let metrics = bus.log.metrics.clone();
    eventually_true("lag of 2 reported", || {
        let text = metrics.encode();
        async move {
            text.contains("configsync_consumer_pending{consumer=\"lagging\"} 2")
                && text.contains("configsync_consumer_ack_pending{consumer=\"lagging\"} 1")
        }
    })
    .await;
    task.abort();
}
