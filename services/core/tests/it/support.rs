//! Sample events and reading dead letters back; the bus, waiting and deadlines come from
//! `configsync_core::harness`.

use async_nats::jetstream;
use configsync_core::event::{DeadLetterRecorded, EventData, HealthReady, Outgoing};
use configsync_core::harness::{SOURCE, events_so_far};
use configsync_core::subject;

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
        .build(SOURCE)
        .expect("event builds")
}

/// Every dead-letter record in the stream.
pub async fn dead_letters(js: &jetstream::Context) -> Vec<DeadLetterRecorded> {
    events_so_far(js, subject::ALL_DEAD_LETTERS)
        .await
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::DeadLetterRecorded(d) => Some(d),
            _ => None,
        })
        .collect()
}
