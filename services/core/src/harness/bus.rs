//! A bus for tests: a nats-server with the event stream and the bundle store, a connected
//! [`EventLog`], and reading events back, now or by waiting for one.

use std::time::Duration;

use async_nats::jetstream;

use super::{NatsServer, WAIT};
use crate::config::NatsArgs;
use crate::event::{Outgoing, Received};
use crate::log::bundles::{self, BundleStore};
use crate::log::{Entry, EventLog, Publisher, Reader, Start, StreamSpec, stream};
use crate::metrics::Metrics;
use crate::subject;

/// The CloudEvents source of the events tests publish.
pub const SOURCE: &str = "configsync://test/it";

/// A nats-server with the stream and the bundle store, and a connection to it.
pub struct Bus {
    pub server: NatsServer,
    pub log: EventLog,
}

impl Bus {
    /// Starts a server, creates the stream and the bundle store (as `configsync nats init`
    /// does) and connects.
    pub async fn start() -> Self {
        let server = NatsServer::start().await.expect("nats-server starts");
        let log = connect(&server).await;
        stream::ensure(&log.js, &log.spec)
            .await
            .expect("the stream is created");
        bundles::ensure(&log.js, 1)
            .await
            .expect("the bundle store is created");
        Self { server, log }
    }

    pub fn js(&self) -> &jetstream::Context {
        &self.log.js
    }

    /// The server's URL, for a service's `--nats-url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn publisher(&self) -> Publisher {
        self.log.publisher(Duration::from_secs(20))
    }

    /// Publishes `event` and returns its stream sequence.
    pub async fn publish(&self, event: &Outgoing) -> u64 {
        self.publisher()
            .publish(event)
            .await
            .expect("the event is stored")
            .sequence
    }

    /// The content-addressed bundle store.
    pub async fn bundles(&self) -> BundleStore {
        BundleStore::open(self.js())
            .await
            .expect("the bundle store opens")
    }

    /// A second, independent connection (as another process would have).
    pub async fn another_client(&self) -> EventLog {
        connect(&self.server).await
    }

    /// Every event (not dead letters) now in the log, in order.
    pub async fn events(&self) -> Vec<Received> {
        self.events_on(subject::ALL_EVENTS).await
    }

    /// Every event on `filter` now in the log, in order.
    pub async fn events_on(&self, filter: &str) -> Vec<Received> {
        events_so_far(self.js(), filter).await
    }

    /// The first event on `filter` (from the start of the log) that `pick` accepts, waiting
    /// for it up to [`WAIT`].
    pub async fn wait_for<T>(&self, filter: &str, pick: impl FnMut(&Received) -> Option<T>) -> T {
        wait_for_event(self.js(), filter, pick).await
    }

    /// Polls the events until `done` holds of them all, and returns them; fails after
    /// [`WAIT`] saying what the log holds (a failure event usually explains the wait).
    pub async fn wait_until(
        &self,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let events = self.events().await;
            if done(&events) {
                return events;
            }
            if tokio::time::Instant::now() >= deadline {
                let held: Vec<String> = events.iter().map(|e| format!("{:?}", e.data)).collect();
                panic!("timed out waiting for: {what}; the log holds {held:#?}")
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A connection to `server` as a test client.
pub async fn connect(server: &NatsServer) -> EventLog {
    let mut args = NatsArgs::for_url(server.url());
    args.connect_deadline = Duration::from_secs(10);
    let client = args
        .connect("configsync-test")
        .await
        .expect("connects to nats");
    EventLog::new(client, SOURCE, Metrics::new()).expect("the stream definition parses")
}

/// The stream's name, from its one definition.
fn stream_name() -> String {
    StreamSpec::from_definition(1)
        .expect("the stream definition parses")
        .name()
        .to_string()
}

async fn reader(js: &jetstream::Context, filter: &str) -> Reader {
    Reader::open(js, &stream_name(), Start::Beginning, Some(filter))
        .await
        .expect("a reader opens on the stream")
}

/// Every event on `filter` now in the log, in order: read until the reader has caught up
/// with what the server held when it was opened or since.
pub async fn events_so_far(js: &jetstream::Context, filter: &str) -> Vec<Received> {
    let mut reader = reader(js, filter).await;
    let mut found = Vec::new();
    while !reader.caught_up() {
        let entry = tokio::time::timeout(WAIT, reader.next())
            .await
            .expect("the log is read in time")
            .expect("the reader stays open")
            .expect("the log is readable");
        if let Entry::Event(e) = entry {
            found.push(*e);
        }
    }
    found
}

/// The first event on `filter` (from the start of the log) that `pick` accepts, waiting for
/// it up to [`WAIT`].
pub async fn wait_for_event<T>(
    js: &jetstream::Context,
    filter: &str,
    pick: impl FnMut(&Received) -> Option<T>,
) -> T {
    wait_for_event_named(js, filter, &format!("the event wanted on {filter}"), pick).await
}

/// [`wait_for_event`], whose failure says `what` it waited for.
pub async fn wait_for_event_named<T>(
    js: &jetstream::Context,
    filter: &str,
    what: &str,
    mut pick: impl FnMut(&Received) -> Option<T>,
) -> T {
    let mut reader = reader(js, filter).await;
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let entry = reader
                .next()
                .await
                .expect("the reader stays open")
                .expect("the log is readable");
            if let Entry::Event(e) = entry
                && let Some(found) = pick(&e)
            {
                return found;
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
