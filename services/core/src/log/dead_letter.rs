//! Dead-letter records: a message a consumer gives up on is recorded, with the reason, under
//! `configsync.dlq.<consumer>` in the same stream, and then terminated instead of retried.

use std::collections::BTreeMap;

use async_nats::HeaderMap;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::publish::{PublishError, Publisher};
use crate::event::{DeadLetterRecorded, EventPayload, Outgoing};
use crate::subject;

/// How much of the original payload a record keeps (the original stays in the stream).
const EXCERPT_BYTES: usize = 4096;
/// Header values longer than this are cut in the record.
const HEADER_VALUE_BYTES: usize = 1024;

/// The facts of a message being dead-lettered.
#[derive(Debug, Clone)]
pub struct Poison<'a> {
    pub subject: &'a str,
    pub headers: Option<&'a HeaderMap>,
    pub payload: &'a [u8],
    pub stream_sequence: u64,
    pub delivery_count: u64,
    pub reason: String,
}

/// Writes dead-letter records for one consumer.
#[derive(Clone)]
pub struct DeadLetters {
    publisher: Publisher,
    consumer: String,
    source: String,
}

impl DeadLetters {
    pub fn new(
        publisher: Publisher,
        consumer: impl Into<String>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            publisher,
            consumer: consumer.into(),
            source: source.into(),
        }
    }

    /// Records `poison`. The record's id derives from the consumer and the stream sequence, so
    /// recording the same message twice (after a crash) stores one record.
    pub async fn record(&self, poison: Poison<'_>) -> Result<u64, PublishError> {
        let payload = record_for(&self.consumer, &poison);
        let subject = subject::dead_letter(&self.consumer).map_err(|e| PublishError::Rejected {
            id: String::new(),
            reason: format!("consumer name is not a subject token: {e}"),
        })?;
        let event = Outgoing::builder(&payload)
            .cause(self.consumer.as_bytes())
            .cause(poison.stream_sequence.to_be_bytes())
            .subject(format!("{}#{}", poison.subject, poison.stream_sequence))
            .build(&self.source)
            .map_err(|e| PublishError::Rejected {
                id: String::new(),
                reason: e.to_string(),
            })?
            .with_subject(subject);
        tracing::warn!(
            consumer = %self.consumer,
            stream.sequence = poison.stream_sequence,
            deliveries = poison.delivery_count,
            reason = %poison.reason,
            "message dead-lettered"
        );
        Ok(self.publisher.publish(&event).await?.sequence)
    }
}

fn record_for(consumer: &str, poison: &Poison<'_>) -> DeadLetterRecorded {
    let mut headers = BTreeMap::new();
    if let Some(map) = poison.headers {
        for (name, values) in map.iter() {
            let joined = values
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            headers.insert(
                AsRef::<str>::as_ref(name).to_string(),
                cut(&joined, HEADER_VALUE_BYTES),
            );
        }
    }
    let excerpt = &poison.payload[..poison.payload.len().min(EXCERPT_BYTES)];
    DeadLetterRecorded {
        consumer: consumer.to_string(),
        reason: poison.reason.clone(),
        original_subject: poison.subject.to_string(),
        stream_sequence: poison.stream_sequence,
        delivery_count: poison.delivery_count,
        headers,
        payload_size: poison.payload.len() as u64,
        payload_digest: format!("sha256:{}", hex::encode(Sha256::digest(poison.payload))),
        payload_excerpt: base64::engine::general_purpose::STANDARD.encode(excerpt),
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The type of dead-letter records, for filters.
pub const DEAD_LETTER_TYPE: &str = DeadLetterRecorded::TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_an_excerpt_and_a_digest_not_the_whole_payload() {
        let big = vec![b'x'; 100_000];
        let mut headers = HeaderMap::new();
        headers.insert("ce-subject", "ü".repeat(2000).as_str());
        let record = record_for(
            "applier",
            &Poison {
                subject: "configsync.evt.x",
                headers: Some(&headers),
                payload: &big,
                stream_sequence: 7,
                delivery_count: 3,
                reason: "bad".into(),
            },
        );
        assert_eq!(record.payload_size, 100_000);
        assert!(record.payload_excerpt.len() < 6000);
        assert!(record.headers["ce-subject"].len() <= HEADER_VALUE_BYTES + "…".len());
        assert!(record.payload_digest.starts_with("sha256:"));
    }
}
