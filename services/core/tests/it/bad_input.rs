//! Hostile or broken messages on the bus: each becomes a dead-letter record with a precise
//! reason, without a crash or a retry loop, and the consumer goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use configsync_core::binding::{self, STRUCTURED_CONTENT_TYPE};
use configsync_core::config::NatsArgs;
use configsync_core::event::Received;
use configsync_core::log::ConsumerSpec;
use configsync_core::subject;
use tokio_util::sync::CancellationToken;

use crate::support::{dead_letters, health};
use configsync_core::harness::{Bus, eventually_true};

const SUBJECT: &str = "configsync.evt.dev.c1.health.ready.v1";

fn valid() -> (HeaderMap, Bytes) {
    binding::encode_binary(health(99).event())
}

fn with(name: &str, value: &str) -> (HeaderMap, Bytes) {
    let (mut h, p) = valid();
    h.insert(name, value);
    // A distinct message id, or JetStream would drop these as duplicates of each other.
    h.insert("Nats-Msg-Id", format!("bad-{name}-{value}").as_str());
    (h, p)
}

fn without(name: &str) -> (HeaderMap, Bytes) {
    let (h, p) = valid();
    let mut out = HeaderMap::new();
    for (k, vs) in h.iter() {
        let k: &str = k.as_ref();
        if k != name {
            out.insert(k, vs[0].as_str());
        }
    }
    out.insert("Nats-Msg-Id", format!("bad-without-{name}").as_str());
    (out, p)
}

#[tokio::test]
async fn each_bad_message_is_dead_lettered_with_a_precise_reason() {
    let bus = Bus::start().await;
    let mut structured = HeaderMap::new();
    structured.insert("content-type", STRUCTURED_CONTENT_TYPE);
    let cases: Vec<(&str, (HeaderMap, Bytes))> = vec![
        ("missing required attribute id", without("ce-id")),
        ("missing required attribute source", without("ce-source")),
        (
            "unsupported specversion \"0.3\"",
            with("ce-specversion", "0.3"),
        ),
        (
            "wrong datacontenttype \"text/plain\"",
            with("content-type", "text/plain"),
        ),
        (
            "has invalid percent-encoding",
            with("ce-subject", "broken%zzescape"),
        ),
        (
            "unknown event type",
            with("ce-type", "io.example.unknown.v1"),
        ),
        ("attribute time is invalid", with("ce-time", "yesterday")),
        (
            "does not match the schema of its type at objects",
            (
                {
                    let (mut h, _) = valid();
                    h.insert("Nats-Msg-Id", "bad-schema");
                    h
                },
                Bytes::from_static(
                    br#"{"environment":"dev","cluster":"c1","revision":"r","objects":"many"}"#,
                ),
            ),
        ),
        (
            "structured event is not valid cloudevents json",
            (structured.clone(), Bytes::from_static(b"{not json")),
        ),
        (
            "not a cloudevent",
            (HeaderMap::new(), Bytes::from_static(b"\x00\x01binary\xff")),
        ),
    ];
    for (_, (headers, payload)) in &cases {
        bus.js()
            .publish_with_headers(SUBJECT, headers.clone(), payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let good = health(1);
    bus.publisher().publish(&good).await.unwrap();

    let handled = Arc::new(Mutex::new(Vec::new()));
    let mut spec = ConsumerSpec::new("strict", vec![subject::ALL_EVENTS.into()]);
    spec.max_deliver = 2;
    let runner = bus.log.runner(spec).await.unwrap();
    let shutdown = CancellationToken::new();
    let task = {
        let handled = handled.clone();
        tokio::spawn(runner.run(
            move |ev: Received| {
                let handled = handled.clone();
                async move {
                    handled.lock().unwrap().push(ev.id().to_string());
                    Ok(())
                }
            },
            shutdown.clone(),
        ))
    };
    let js = bus.js().clone();
    let expected = cases.len();
    eventually_true("every bad message dead-lettered", || {
        let js = js.clone();
        async move { dead_letters(&js).await.len() >= expected }
    })
    .await;
    eventually_true("the good event handled", || {
        let n = handled.lock().unwrap().len();
        async move { n == 1 }
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let records = dead_letters(bus.js()).await;
    assert_eq!(records.len(), cases.len());
    for (i, (reason, _)) in cases.iter().enumerate() {
        let record = records
            .iter()
            .find(|r| r.stream_sequence == i as u64 + 1)
            .expect("a record per bad message");
        assert!(
            record.reason.contains(reason),
            "case {i}: reason {:?} should mention {reason:?}",
            record.reason
        );
        assert_eq!(record.delivery_count, 1, "case {i} must not be retried");
    }
    assert_eq!(*handled.lock().unwrap(), vec![good.id().to_string()]);
}

#[tokio::test]
async fn nats_unreachable_at_start_fails_only_after_the_deadline() {
    // A port that nothing listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = NatsArgs::for_url(format!("nats://127.0.0.1:{port}"));
    args.connect_deadline = Duration::from_millis(1500);
    let started = std::time::Instant::now();
    let err = args.connect("t").await.expect_err("nothing listens there");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "did not respect the deadline: {waited:?}"
    );
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[tokio::test]
async fn nats_that_comes_up_before_the_deadline_is_used() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = NatsArgs::for_url(format!("nats://127.0.0.1:{port}"));
    args.connect_deadline = Duration::from_secs(20);
    let connecting = tokio::spawn(async move { args.connect("t").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut server = std::process::Command::new(configsync_core::harness::nats_server_bin())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server runs");
    let client = tokio::time::timeout(Duration::from_secs(25), connecting)
        .await
        .expect("connects before the deadline")
        .unwrap();
    assert!(client.is_ok(), "{:?}", client.err());
    let _ = server.kill();
    let _ = server.wait();
}
