//! An event read from the log: the CloudEvent, its typed payload and where it sits in the stream.

use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event};

use super::{EventData, ext, extension};

/// An event as delivered from the stream.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: Event,
    pub data: EventData,
    /// The NATS subject it was stored under.
    pub subject: String,
    /// Its sequence in the stream: the log position.
    pub stream_sequence: u64,
    /// When JetStream stored it.
    pub stored_at: DateTime<Utc>,
    /// How many times it has been delivered to this consumer (1 on first delivery).
    pub delivered: u64,
}

impl Received {
    pub fn id(&self) -> &str {
        self.event.id()
    }
    pub fn type_name(&self) -> &str {
        self.event.ty()
    }
    pub fn environment(&self) -> Option<&str> {
        extension(&self.event, ext::ENVIRONMENT)
    }
    pub fn cluster(&self) -> Option<&str> {
        extension(&self.event, ext::CLUSTER)
    }
    pub fn revision(&self) -> Option<&str> {
        extension(&self.event, ext::REVISION)
    }
    pub fn correlation_id(&self) -> Option<&str> {
        extension(&self.event, ext::CORRELATION_ID)
    }
    pub fn traceparent(&self) -> Option<&str> {
        extension(&self.event, ext::TRACEPARENT)
    }
    pub fn actor(&self) -> Option<&str> {
        extension(&self.event, ext::ACTOR)
    }
    /// The name of the Git source the change came from.
    pub fn git_source(&self) -> Option<&str> {
        extension(&self.event, ext::GIT_SOURCE)
    }

    /// The event as one JSON line in the CloudEvents structured format, with the stream
    /// position added under `_stream` (used by `configsync events tail`).
    pub fn to_json_line(&self) -> serde_json::Value {
        let mut event = self.event.clone();
        crate::binding::normalise_json_data(&mut event);
        let mut value = serde_json::to_value(&event).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "_stream".into(),
                serde_json::json!({
                    "sequence": self.stream_sequence,
                    "subject": self.subject,
                    "storedAt": self.stored_at.to_rfc3339(),
                }),
            );
        }
        value
    }
}
