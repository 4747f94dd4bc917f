//! Event-log benchmark: ConfigSync's publisher, runner and replay against raw async-nats
//! JetStream doing the same work, in the same run, on a local nats-server.
//!
//! `cargo bench -p configsync-core --bench event_log -- [EVENTS] [ROUNDS]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer};
use bytes::Bytes;
use configsync_core::event::{
    ApplySucceeded, ObjectAction, ObjectRef, ObjectResult, Outgoing, Received,
};
use configsync_core::fold::LogState;
use configsync_core::harness::NatsServer;
use configsync_core::log::{ConsumerSpec, EventLog, Start, Until, replay, stream};
use configsync_core::metrics::Metrics;
use configsync_core::subject;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

// The allocator the binaries use (see the workspace Cargo.toml), for both sides alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Acknowledgements in flight for both publishers.
const WINDOW: usize = 256;

fn payload(n: u64) -> ApplySucceeded {
    let object = |i: u64| ObjectRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("shop".into()),
        name: format!("service-{i}"),
    };
    ApplySucceeded {
        environment: "prod".into(),
        cluster: format!("eu-{}", n % 3),
        revision: format!("{n:040x}"),
        bundle_digest: format!("sha256:{n:064x}"),
        results: (0..4)
            .map(|i| ObjectResult {
                object: object(i),
                action: ObjectAction::Configured,
                message: None,
            })
            .collect(),
        duration_ms: 12,
        counts: Default::default(),
        results_truncated: false,
    }
}

fn event(n: u64, round: u64) -> Outgoing {
    Outgoing::builder(&payload(n))
        .cause(n.to_be_bytes())
        .cause(round.to_be_bytes())
        .build("configsync://bench/1")
        .expect("builds")
}

async fn fresh(server: &NatsServer) -> EventLog {
    let client = async_nats::connect(server.url()).await.expect("connect");
    let log = EventLog::new(client, "configsync://bench/1", Metrics::new()).expect("definition");
    let _ = log.js.delete_stream(log.stream()).await;
    stream::ensure(&log.js, &log.spec).await.expect("stream");
    log
}

/// Raw JetStream from the typed payload: serialize it to JSON, set a message id, publish;
/// `WINDOW` acks in flight. What a hand-written publisher does at the least.
async fn raw_publish(js: &jetstream::Context, n: u64, round: u64) -> Duration {
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..n {
        let body = Bytes::from(serde_json::to_vec(&payload(i)).expect("json"));
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("raw-{round}-{i}").as_str());
        pending.push_back(
            js.publish_with_headers("configsync.evt.prod.eu-1.apply.succeeded.v1", headers, body)
                .await
                .expect("send"),
        );
        if pending.len() >= WINDOW {
            pending.pop_front().unwrap().await.expect("ack");
        }
    }
    for p in pending {
        p.await.expect("ack");
    }
    started.elapsed()
}

/// Raw JetStream with exactly the headers and payload ConfigSync sends (encoded beforehand):
/// the cost of the binary-mode message itself, without ConfigSync's code.
async fn raw_publish_same_message(js: &jetstream::Context, n: u64, round: u64) -> Duration {
    let encoded: Vec<(HeaderMap, Bytes)> = (0..n)
        .map(|i| configsync_core::binding::encode_binary(event(i, round + 1000).event()))
        .collect();
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for (headers, body) in encoded {
        pending.push_back(
            js.publish_with_headers("configsync.evt.prod.eu-1.apply.succeeded.v1", headers, body)
                .await
                .expect("send"),
        );
        if pending.len() >= WINDOW {
            pending.pop_front().unwrap().await.expect("ack");
        }
    }
    for p in pending {
        p.await.expect("ack");
    }
    started.elapsed()
}

/// ConfigSync's publisher with events built beforehand: the publisher's own overhead.
async fn configsync_publish_prebuilt(log: &EventLog, n: u64, round: u64) -> Duration {
    let events: Vec<Outgoing> = (0..n).map(|i| event(i, round + 2000)).collect();
    let publisher = log.publisher(Duration::from_secs(30));
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for e in &events {
        pending.push_back(publisher.send(e).await.expect("send"));
        if pending.len() >= WINDOW {
            pending.pop_front().unwrap().wait().await.expect("ack");
        }
    }
    for p in pending {
        p.wait().await.expect("ack");
    }
    started.elapsed()
}

/// Where the CPU of one publish goes, in nanoseconds per event: (payload + JSON, event build,
/// binary-mode encode).
fn cost_breakdown(n: u64) -> (f64, f64, f64) {
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    let started = Instant::now();
    for i in 0..n {
        std::hint::black_box(serde_json::to_vec(&payload(i)).expect("json"));
    }
    let json = per(started.elapsed());
    let started = Instant::now();
    let events: Vec<Outgoing> = (0..n).map(|i| event(i, 9)).collect();
    let build = per(started.elapsed());
    let started = Instant::now();
    for e in &events {
        std::hint::black_box(configsync_core::binding::encode_binary(e.event()));
    }
    (json, build, per(started.elapsed()))
}

/// Building and encoding alone, no I/O: ConfigSync's CPU cost per event.
fn build_and_encode(n: u64) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        let e = event(i, 7);
        std::hint::black_box(configsync_core::binding::encode_binary(e.event()));
    }
    started.elapsed()
}

/// ConfigSync: build each CloudEvent (deterministic id, binary-mode headers) and publish it.
async fn configsync_publish(log: &EventLog, n: u64, round: u64) -> Duration {
    let publisher = log.publisher(Duration::from_secs(30));
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..n {
        pending.push_back(publisher.send(&event(i, round)).await.expect("send"));
        if pending.len() >= WINDOW {
            pending.pop_front().unwrap().wait().await.expect("ack");
        }
    }
    for p in pending {
        p.wait().await.expect("ack");
    }
    started.elapsed()
}

async fn runner_consume(log: &EventLog, n: u64) -> Duration {
    let mut spec = ConsumerSpec::new("bench-runner", vec![subject::ALL_EVENTS.into()]);
    spec.max_in_flight = 64;
    let runner = log.runner(spec).await.expect("bind");
    let count = Arc::new(AtomicU64::new(0));
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let c = count.clone();
    let task = tokio::spawn(runner.run(
        move |_ev: Received| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        },
        shutdown.clone(),
    ));
    while count.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    shutdown.cancel();
    let stats = task.await.expect("join").expect("run");
    let elapsed = started.elapsed();
    assert!(stats.acked >= n);
    elapsed
}

async fn raw_consume(log: &EventLog, n: u64, double: bool) -> Duration {
    let stream = log.js.get_stream(log.stream()).await.expect("stream");
    let name = if double {
        "bench-raw-double"
    } else {
        "bench-raw"
    };
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: 256,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let started = Instant::now();
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(64)
        .messages()
        .await
        .expect("messages");
    let mut seen = 0;
    while seen < n {
        let m = messages.next().await.expect("open").expect("message");
        if double {
            m.double_ack_with(AckKind::Ack).await.expect("ack");
        } else {
            m.ack().await.expect("ack");
        }
        seen += 1;
    }
    started.elapsed()
}

async fn raw_ordered_read(log: &EventLog, n: u64) -> Duration {
    let stream = log.js.get_stream(log.stream()).await.expect("stream");
    let started = Instant::now();
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered");
    let mut messages = consumer.messages().await.expect("messages");
    let mut seen = 0;
    while seen < n {
        messages.next().await.expect("open").expect("message");
        seen += 1;
    }
    started.elapsed()
}

async fn fold_replay(log: &EventLog, n: u64) -> Duration {
    let started = Instant::now();
    let mut state = LogState::default();
    let stats = replay(
        &log.js,
        log.stream(),
        Start::Beginning,
        Until::End,
        &mut state,
    )
    .await
    .expect("replay");
    assert_eq!(stats.events, n);
    started.elapsed()
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let server = NatsServer::start().await.expect("nats-server");
    let version = std::process::Command::new(configsync_core::harness::nats_server_bin())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let sample = event(0, 0);
    let (headers, body) = configsync_core::binding::encode_binary(sample.event());
    println!("# event-log benchmark");
    println!(
        "conditions: {n} events x {rounds} rounds, {} cores, {version}, file storage, R1, payload {} B + {} headers, {WINDOW} acks in flight, profile {}",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(0),
        body.len(),
        headers.len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    let (mut raw_pub, mut cs_pub, mut runner, mut raw_ack, mut raw_dack, mut ordered, mut fold) =
        Default::default();
    let (mut raw_same, mut encode, mut prebuilt) = (Vec::new(), Vec::new(), Vec::new());
    let push = |v: &mut Vec<f64>, d: Duration| v.push(rate(n, d));
    for round in 0..rounds {
        // Alternate which goes first, so neither always gets the warmer machine.
        let log = fresh(&server).await;
        let (a, b) = if round % 2 == 0 {
            let a = raw_publish(&log.js, n, round).await;
            let log2 = fresh(&server).await;
            (a, configsync_publish(&log2, n, round).await)
        } else {
            let b = configsync_publish(&log, n, round).await;
            let log2 = fresh(&server).await;
            (raw_publish(&log2.js, n, round).await, b)
        };
        push(&mut raw_pub, a);
        push(&mut cs_pub, b);
        let log = fresh(&server).await;
        push(
            &mut raw_same,
            raw_publish_same_message(&log.js, n, round).await,
        );
        push(&mut encode, build_and_encode(n));
        let log = fresh(&server).await;
        push(
            &mut prebuilt,
            configsync_publish_prebuilt(&log, n, round).await,
        );

        // Consume and replay a stream of ConfigSync events.
        let log = fresh(&server).await;
        configsync_publish(&log, n, round).await;
        push(&mut runner, runner_consume(&log, n).await);
        push(&mut raw_ack, raw_consume(&log, n, false).await);
        push(&mut raw_dack, raw_consume(&log, n, true).await);
        push(&mut fold, fold_replay(&log, n).await);
        push(&mut ordered, raw_ordered_read(&log, n).await);
        eprintln!("round {} done", round + 1);
    }
    let (raw_pub, cs_pub, runner, raw_ack, raw_dack, ordered, fold) = (
        median(raw_pub),
        median(cs_pub),
        median(runner),
        median(raw_ack),
        median(raw_dack),
        median(ordered),
        median(fold),
    );
    let (raw_same, encode, prebuilt) = (median(raw_same), median(encode), median(prebuilt));
    println!("| measure | ConfigSync (events/s) | raw async-nats baseline (msgs/s) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| publish from the typed payload (build + send), acks in flight | {cs_pub:.0} | {raw_pub:.0} (serde_json + Nats-Msg-Id + publish_with_headers) | {:.2} |",
        cs_pub / raw_pub
    );
    println!(
        "| publish pre-built messages | {prebuilt:.0} | {raw_same:.0} (the same binary-mode headers and payload, pre-encoded) | {:.2} |",
        prebuilt / raw_same
    );
    println!("| build + encode only, no I/O (one core) | {encode:.0} | - | - |");
    println!(
        "| consume + ack (runner: decode, handler, confirmed ack) | {runner:.0} | {raw_dack:.0} (double_ack) / {raw_ack:.0} (ack) | {:.2} / {:.2} |",
        runner / raw_dack,
        runner / raw_ack
    );
    println!(
        "| replay into LogState fold | {fold:.0} | {ordered:.0} (ordered consumer, no decode) | {:.2} |",
        fold / ordered
    );
    let (json, build, encode_ns) = cost_breakdown(n);
    println!(
        "cpu per event: payload + serde_json {json:.0} ns; Outgoing::build (incl. payload, JSON, id) {build:.0} ns; encode_binary {encode_ns:.0} ns"
    );
    println!("medians of {rounds} rounds");
}
