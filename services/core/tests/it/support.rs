//! Shared setup: a nats-server, an initialized stream, publishers and sample events.

use std::time::Duration;

use async_nats::jetstream;
use configsync_core::config::NatsArgs;
use configsync_core::event::{HealthReady, Outgoing};
use configsync_core::harness::NatsServer;
use configsync_core::log::{EventLog, Publisher, stream};
use configsync_core::metrics::Metrics;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Bus {
    pub server: NatsServer,
    pub log: EventLog,
}

impl Bus {
    pub async fn start() -> Self {
        let server = NatsServer::start().await.expect("nats-server starts");
        let log = connect(&server).await;
        stream::ensure(&log.js, &log.spec)
            .await
            .expect("stream is created");
        Self { server, log }
    }

    pub fn js(&self) -> &jetstream::Context {
        &self.log.js
    }

    pub fn publisher(&self) -> Publisher {
        self.log.publisher(Duration::from_secs(20))
    }

    /// A second, independent connection (as another process would have).
    pub async fn another_client(&self) -> EventLog {
        connect(&self.server).await
    }
}

pub async fn connect(server: &NatsServer) -> EventLog {
    let mut args = NatsArgs::for_url(server.url());
    args.connect_deadline = Duration::from_secs(10);
    let client = args
        .connect("configsync-test")
        .await
        .expect("connects to nats");
    EventLog::new(client, "configsync://test/it", Metrics::new()).expect("stream definition parses")
}

/// A small event about target dev/c1, distinct per `n`.
pub fn health(n: u64) -> Outgoing {
    let payload = HealthReady {
        environment: "dev".into(),
        cluster: "c1".into(),
        revision: format!("rev-{n}"),
        objects: n as u32,
    };
    Outgoing::builder(&payload)
        .cause(n.to_be_bytes())
        .build("configsync://test/it")
        .expect("event builds")
}

/// Polls `check` until it returns true or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Reads every dead-letter record in the stream.
pub async fn dead_letters(
    js: &jetstream::Context,
) -> Vec<configsync_core::event::DeadLetterRecorded> {
    use configsync_core::event::EventData;
    use configsync_core::log::{Entry, Reader, Start};
    let last = configsync_core::log::replay::last_sequence(js, "CONFIGSYNC_EVENTS")
        .await
        .expect("stream info");
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let mut reader = Reader::open(
        js,
        "CONFIGSYNC_EVENTS",
        Start::Beginning,
        Some(configsync_core::subject::ALL_DEAD_LETTERS),
    )
    .await
    .expect("reader opens");
    while let Ok(Some(Ok(entry))) =
        tokio::time::timeout(Duration::from_millis(500), reader.next()).await
    {
        if let Entry::Event(e) = entry
            && let EventData::DeadLetterRecorded(d) = e.data
        {
            out.push(d);
        }
    }
    out
}
