//! Publish → consume round trips keep every attribute, extension and byte of data.

use configsync_core::cloudevents::AttributesReader;
use configsync_core::event::{
    AppChange, CommitDetected, EnvironmentChange, EventData, Outgoing, Person, Received, ext,
    extension,
};
use configsync_core::log::{ConsumerSpec, HandlerError, PublishError};
use configsync_core::subject;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::health;
use configsync_core::harness::{Bus, WAIT};

fn commit(message: String) -> CommitDetected {
    let who = Person {
        name: "Zoë \"Z\" O'Brien".into(),
        email: "zoe@example.com".into(),
        time: "2026-11-26T06:00:00Z".parse().unwrap(),
    };
    CommitDetected {
        repository: "file:///srv/configs.git".into(),
        branch: "main".into(),
        source: None,
        path: None,
        trailers: Vec::new(),
        sha: "3f2a".repeat(10),
        parents: vec!["aa".repeat(20)],
        author: who.clone(),
        committer: who,
        message,
        signed: false,
        signature: None,
        environments: vec![EnvironmentChange {
            environment: "dev".into(),
            apps: vec![AppChange {
                app: "web".into(),
                paths: vec!["configs/dev/web/ü 100%.yaml".into()],
            }],
        }],
        other_paths: vec![],
        whole_tree: false,
    }
}

/// Consumes everything on `filter` into a channel until the token is cancelled.
fn collect(
    bus: &Bus,
    durable: &str,
    filter: &str,
) -> (
    mpsc::UnboundedReceiver<Received>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let log = bus.log.clone();
    let spec = ConsumerSpec::new(durable, vec![filter.to_string()]);
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let runner = log.runner(spec).await.expect("consumer binds");
        runner
            .run(
                move |ev: Received| {
                    let tx = tx.clone();
                    async move {
                        tx.send(ev)
                            .map_err(|e| HandlerError::Terminal(e.to_string()))
                    }
                },
                token,
            )
            .await
            .expect("runner ends cleanly");
    });
    (rx, shutdown, task)
}

#[tokio::test]
async fn every_attribute_and_extension_survives_the_round_trip() {
    let bus = Bus::start().await;
    let payload = commit("fix: quote \"this\" → 100% ✓\nsecond line".into());
    let sent = Outgoing::builder(&payload)
        .cause(&payload.sha)
        .subject("branch main ✓ \"quoted\" 50%")
        .correlation_id("corr-ü-%-\"q\"")
        .traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .actor("José \"Pepe\" 100%")
        .build("configsync://git-watcher/host ü")
        .expect("builds");
    let published = bus.publisher().publish(&sent).await.expect("published");
    assert!(!published.duplicate);

    let (mut rx, shutdown, task) = collect(&bus, "roundtrip", subject::ALL_EVENTS);
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("event delivered in time")
        .expect("channel open");
    shutdown.cancel();
    task.await.unwrap();

    let (a, b) = (sent.event(), &got.event);
    assert_eq!(b.id(), a.id());
    assert_eq!(b.source(), a.source());
    assert_eq!(b.ty(), a.ty());
    assert_eq!(b.subject(), a.subject());
    assert_eq!(b.time(), a.time());
    assert_eq!(b.datacontenttype(), Some("application/json"));
    for name in ext::ALL {
        assert_eq!(extension(b, name), extension(a, name), "extension {name}");
    }
    assert_eq!(got.revision(), Some(payload.sha.as_str()));
    assert_eq!(
        got.environment(),
        None,
        "a commit concerns no single environment"
    );
    assert_eq!(got.data, EventData::CommitDetected(payload));
    assert_eq!(got.stream_sequence, published.sequence);
    assert_eq!(got.subject, "configsync.evt._._.commit.detected.v1");
}

#[tokio::test]
async fn a_payload_near_the_size_limit_round_trips_and_one_over_is_refused() {
    let bus = Bus::start().await;
    let max = bus.log.spec.max_message_size();
    // Leave room for the headers (about 1 KiB with every attribute).
    let near = commit("x".repeat(max - 4096));
    let event = Outgoing::builder(&near)
        .build("configsync://test/it")
        .unwrap();
    bus.publisher()
        .publish(&event)
        .await
        .expect("an event just under the limit is stored");

    let (mut rx, shutdown, task) = collect(&bus, "big", subject::ALL_EVENTS);
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("delivered")
        .expect("open");
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(got.data, EventData::CommitDetected(near));

    let over = commit("x".repeat(max));
    let event = Outgoing::builder(&over)
        .build("configsync://test/it")
        .unwrap();
    match bus.publisher().publish(&event).await {
        Err(PublishError::TooLarge {
            size, max: limit, ..
        }) => assert!(size > limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn the_same_event_published_twice_is_stored_once() {
    let bus = Bus::start().await;
    let publisher = bus.publisher();
    let first = publisher.publish(&health(1)).await.unwrap();
    // Rebuilt from the same causes, as a retrying replica would: same id.
    let second = publisher.publish(&health(1)).await.unwrap();
    assert!(second.duplicate, "JetStream must report the duplicate");
    assert_eq!(second.sequence, first.sequence);
    let last = configsync_core::log::replay::last_sequence(bus.js(), "CONFIGSYNC_EVENTS")
        .await
        .unwrap();
    assert_eq!(last, 1, "only one message stored");
}
