//! nats-server stopped and restarted mid-stream: publishers and consumers recover, and
//! nothing that was acknowledged is lost.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use configsync_core::event::Received;
use configsync_core::log::{ConsumerSpec, Entry, Reader, Start};
use configsync_core::subject;
use tokio_util::sync::CancellationToken;

use crate::support::health;
use configsync_core::harness::{Bus, WAIT, eventually_true};

#[tokio::test]
async fn publishers_and_consumers_survive_a_server_restart() {
    let mut bus = Bus::start().await;
    const N: u64 = 120;

    let consumed: Arc<Mutex<HashSet<String>>> = Arc::default();
    let shutdown = CancellationToken::new();
    let runner = bus
        .log
        .runner(ConsumerSpec::new(
            "survivor",
            vec![subject::ALL_EVENTS.into()],
        ))
        .await
        .unwrap();
    let consumer = {
        let consumed = consumed.clone();
        tokio::spawn(runner.run(
            move |ev: Received| {
                let consumed = consumed.clone();
                async move {
                    consumed.lock().unwrap().insert(ev.id().to_string());
                    Ok(())
                }
            },
            shutdown.clone(),
        ))
    };

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    // The publisher pauses after a third, until the server is down: the restart is then
    // certainly mid-stream, and the next publishes meet a dead server and must retry.
    let (paused_tx, paused_rx) = tokio::sync::oneshot::channel::<()>();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
    let publisher = {
        let publisher = bus.publisher();
        let acked = acked.clone();
        tokio::spawn(async move {
            let mut pause = Some((paused_tx, resume_rx));
            for n in 0..N {
                if n == N / 3
                    && let Some((paused, resume)) = pause.take()
                {
                    let _ = paused.send(());
                    let _ = resume.await;
                }
                let event = health(n);
                publisher
                    .publish(&event)
                    .await
                    .expect("publish recovers within its retry window");
                acked.lock().unwrap().push(event.id().to_string());
                tokio::task::yield_now().await;
            }
        })
    };

    tokio::time::timeout(WAIT, paused_rx)
        .await
        .expect("a third published in time")
        .unwrap();
    bus.server.stop().await;
    let acked_before_stop = acked.lock().unwrap().len();
    resume_tx.send(()).unwrap();
    bus.server
        .restart()
        .await
        .expect("server restarts on the same store and port");

    tokio::time::timeout(WAIT * 2, publisher)
        .await
        .expect("publisher finishes")
        .unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, N);
    assert!(
        acked_before_stop < N as usize,
        "the restart happened mid-stream"
    );

    eventually_true("every acknowledged event consumed", || {
        let all = {
            let c = consumed.lock().unwrap();
            acked.iter().all(|id| c.contains(id))
        };
        async move { all }
    })
    .await;
    shutdown.cancel();
    consumer.await.unwrap().unwrap();

    // And every acknowledged event is in the stream, exactly once.
    let mut reader = Reader::open(bus.js(), "CONFIGSYNC_EVENTS", Start::Beginning, None)
        .await
        .unwrap();
    let mut stored = Vec::new();
    while let Ok(Some(Ok(Entry::Event(e)))) =
        tokio::time::timeout(Duration::from_secs(1), reader.next()).await
    {
        stored.push(e.id().to_string());
    }
    let unique: HashSet<_> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no duplicates stored");
    assert!(
        acked.iter().all(|id| unique.contains(id)),
        "every acknowledged event is stored"
    );
}
