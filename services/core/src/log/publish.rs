//! Publishing events: binary content mode, `Nats-Msg-Id` = event id, every publish awaits its
//! acknowledgement, transient failures are retried (safe, because ids are deterministic).

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use tokio::time::Instant;

use crate::binding;
use crate::event::Outgoing;
use crate::retry::Backoff;

/// Where a published event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The event's sequence in the stream (the original one when it was a duplicate).
    pub sequence: u64,
    /// True when JetStream had already stored an event with this id.
    pub duplicate: bool,
}

/// Why a publish failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    #[error("event {id} is {size} bytes with headers, over the stream's limit of {max}")]
    TooLarge { id: String, size: usize, max: usize },
    #[error(
        "expected last sequence {expected} on subject {subject} did not hold: another writer got there first"
    )]
    SequenceMismatch { subject: String, expected: u64 },
    #[error("publish of event {id} was rejected: {reason}")]
    Rejected { id: String, reason: String },
    #[error("publish of event {id} was not acknowledged before the deadline: {reason}")]
    Unacknowledged { id: String, reason: String },
}

impl PublishError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unacknowledged { .. })
    }
}

/// Publishes events to the event log.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    max_message_size: usize,
    retry_for: Duration,
}

/// An acknowledgement still in flight (see [`Publisher::send`]).
pub struct PendingAck {
    id: String,
    subject: String,
    expected: Option<u64>,
    future: jetstream::context::PublishAckFuture,
}

impl Publisher {
    /// A publisher for a stream whose messages may be at most `max_message_size` bytes.
    /// Transient failures are retried for up to `retry_for`.
    pub fn new(js: jetstream::Context, max_message_size: usize, retry_for: Duration) -> Self {
        Self {
            js,
            max_message_size,
            retry_for,
        }
    }

    /// Publishes one event and waits for JetStream to acknowledge it, retrying transient
    /// failures (the server restarting, a lost connection) until the retry deadline.
    pub async fn publish(&self, event: &Outgoing) -> Result<Published, PublishError> {
        self.publish_with(event, None).await
    }

    /// Publishes only if the last event on `event`'s subject has sequence `expected` (0: the
    /// subject must be empty): per-target optimistic concurrency.
    pub async fn publish_expecting(
        &self,
        event: &Outgoing,
        expected: u64,
    ) -> Result<Published, PublishError> {
        self.publish_with(event, Some(expected)).await
    }

    async fn publish_with(
        &self,
        event: &Outgoing,
        expected: Option<u64>,
    ) -> Result<Published, PublishError> {
        let deadline = Instant::now() + self.retry_for;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            let result = match self.send_with(event, expected).await {
                Ok(pending) => pending.wait().await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    let delay = backoff.next_delay();
                    tracing::warn!(event.id = event.id(), error = %e, retry_in = ?delay, "publish failed, retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Sends one event without waiting for its acknowledgement, so that many can be in
    /// flight; every [`PendingAck`] must still be awaited (with [`PendingAck::wait`]).
    pub async fn send(&self, event: &Outgoing) -> Result<PendingAck, PublishError> {
        self.send_with(event, None).await
    }

    async fn send_with(
        &self,
        event: &Outgoing,
        expected: Option<u64>,
    ) -> Result<PendingAck, PublishError> {
        let id = event.id().to_string();
        let (headers, payload) = binding::encode_binary(event.event());
        let size = payload.len() + header_size(&headers);
        if size > self.max_message_size {
            return Err(PublishError::TooLarge {
                id,
                size,
                max: self.max_message_size,
            });
        }
        let mut message = PublishMessage::build().headers(headers).payload(payload);
        if let Some(seq) = expected {
            message = message.expected_last_subject_sequence(seq);
        }
        match self
            .js
            .send_publish(event.subject().to_string(), message)
            .await
        {
            Ok(future) => Ok(PendingAck {
                id,
                subject: event.subject().to_string(),
                expected,
                future,
            }),
            Err(e) => Err(classify(
                id,
                event.subject(),
                expected,
                e.kind(),
                e.to_string(),
            )),
        }
    }
}

impl PendingAck {
    /// Waits for JetStream's acknowledgement.
    pub async fn wait(self) -> Result<Published, PublishError> {
        match self.future.await {
            Ok(ack) => Ok(Published {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            }),
            Err(e) => Err(classify(
                self.id,
                &self.subject,
                self.expected,
                e.kind(),
                e.to_string(),
            )),
        }
    }
}

fn classify(
    id: String,
    subject: &str,
    expected: Option<u64>,
    kind: PublishErrorKind,
    reason: String,
) -> PublishError {
    match kind {
        PublishErrorKind::WrongLastSequence => PublishError::SequenceMismatch {
            subject: subject.to_string(),
            expected: expected.unwrap_or_default(),
        },
        PublishErrorKind::MaxPayloadExceeded => PublishError::Rejected { id, reason },
        // "No stream" is what a publish sees while the server restarts (no responders), so it
        // is retried; the message says what to do if it persists.
        PublishErrorKind::StreamNotFound => PublishError::Unacknowledged {
            id,
            reason: format!("{reason} (is the stream created? run `configsync nats init`)"),
        },
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending => PublishError::Unacknowledged { id, reason },
        PublishErrorKind::WrongLastMessageId | PublishErrorKind::Other => {
            // The server's own refusals (e.g. the stream's size limit) arrive as Other with a
            // JetStream error text; connection trouble arrives as Other too.
            if reason.contains("maximum") || reason.contains("exceeds") {
                PublishError::Rejected { id, reason }
            } else {
                PublishError::Unacknowledged { id, reason }
            }
        }
    }
}

/// The size of the headers on the wire (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`).
fn header_size(headers: &async_nats::HeaderMap) -> usize {
    let mut size = 12;
    for (name, values) in headers.iter() {
        for value in values {
            size += AsRef::<str>::as_ref(name).len() + value.as_str().len() + 4;
        }
    }
    size
}
