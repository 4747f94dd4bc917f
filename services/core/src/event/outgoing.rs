//! Building an event to publish: deterministic ids, routing extensions, causation.

use chrono::{DateTime, Utc};
use cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use sha2::{Digest, Sha256};

use super::{DATA_CONTENT_TYPE, EventPayload, Received, ext};
use crate::subject;

/// A deterministic event id: the same causes always give the same id, so a retried publish
/// (from this process or another replica) is deduplicated by JetStream's `Nats-Msg-Id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    /// Derives an id from the event type and the facts that caused it (for example the
    /// commit SHA, or the id of the event being handled plus the target).
    pub fn derive<I, S>(type_name: &str, causes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut hasher = Sha256::new();
        hasher.update(type_name.as_bytes());
        for cause in causes {
            // Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
            let cause = cause.as_ref();
            hasher.update((cause.len() as u64).to_be_bytes());
            hasher.update(cause);
        }
        // 128 bits are plenty against accidental collisions and keep headers short.
        Self(hex::encode(&hasher.finalize()[..16]))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event ready to publish: its CloudEvent and its NATS subject.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub(crate) event: Event,
    pub(crate) subject: String,
}

/// Why an event could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("payload routing is not a valid subject token: {0}")]
    Routing(#[from] crate::names::InvalidName),
    #[error("cloudevent attributes are invalid: {0}")]
    Attributes(String),
    #[error("payload could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Builder for [`Outgoing`].
#[derive(Debug, Clone)]
pub struct OutgoingBuilder<'p, P: EventPayload> {
    payload: &'p P,
    causes: Vec<Vec<u8>>,
    subject: Option<String>,
    correlation_id: Option<String>,
    traceparent: Option<String>,
    actor: Option<String>,
    /// The Git source inherited from the event handled (`caused_by`).
    git_source: Option<String>,
    time: Option<DateTime<Utc>>,
}

impl Outgoing {
    /// Starts an event carrying `payload`.
    ///
    /// Causes given with [`OutgoingBuilder::cause`] decide the id; with none, the payload's
    /// JSON is the cause (so identical payloads are deduplicated).
    pub fn builder<P: EventPayload>(payload: &P) -> OutgoingBuilder<'_, P> {
        OutgoingBuilder {
            payload,
            causes: Vec::new(),
            subject: None,
            correlation_id: None,
            traceparent: None,
            actor: None,
            git_source: None,
            time: None,
        }
    }

    /// The CloudEvent.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event id (also the `Nats-Msg-Id`).
    pub fn id(&self) -> &str {
        self.event.id()
    }

    /// The NATS subject it is published on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Replaces the subject (used for dead-letter records, which live outside the event space).
    pub(crate) fn with_subject(mut self, subject: String) -> Self {
        self.subject = subject;
        self
    }
}

impl<P: EventPayload> OutgoingBuilder<'_, P> {
    /// Adds a fact that caused this event; the id is derived from the type and all causes.
    pub fn cause(mut self, cause: impl AsRef<[u8]>) -> Self {
        self.causes.push(cause.as_ref().to_vec());
        self
    }

    /// Marks this event as caused by `incoming`: its id becomes a cause, and the correlation
    /// id, trace context and Git source carry over (so a subscriber can follow one source's
    /// changes through validation and apply by the `gitsource` attribute).
    pub fn caused_by(mut self, incoming: &Received) -> Self {
        self.causes.push(incoming.id().as_bytes().to_vec());
        if self.correlation_id.is_none() {
            self.correlation_id = incoming.correlation_id().map(str::to_string);
        }
        if self.traceparent.is_none() {
            self.traceparent = incoming.traceparent().map(str::to_string);
        }
        if self.git_source.is_none() {
            self.git_source = incoming.git_source().map(str::to_string);
        }
        self
    }

    /// What the event is about, e.g. `dev/default/ConfigMap/settings`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The correlation id shared by every event of one change.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The W3C `traceparent` of the emitting operation.
    pub fn traceparent(mut self, tp: impl Into<String>) -> Self {
        self.traceparent = Some(tp.into());
        self
    }

    /// The person who acted.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Overrides the event time (defaults to now).
    pub fn time(mut self, time: DateTime<Utc>) -> Self {
        self.time = Some(time);
        self
    }

    /// Builds the event; `source` names the emitting service instance.
    pub fn build(self, source: &str) -> Result<Outgoing, BuildError> {
        let data = serde_json::to_vec(self.payload)?;
        let id = if self.causes.is_empty() {
            EventId::derive(P::TYPE, [&data])
        } else {
            EventId::derive(P::TYPE, &self.causes)
        };
        let routing = self.payload.routing();
        let subject = subject::for_event(P::TYPE, routing.environment, routing.cluster)?;
        let mut builder = EventBuilderV10::new()
            .id(id.as_str())
            .source(source)
            .ty(P::TYPE)
            .time(self.time.unwrap_or_else(Utc::now))
            .data(DATA_CONTENT_TYPE, data);
        if let Some(s) = self.subject {
            builder = builder.subject(s);
        }
        let pairs = [
            (ext::ENVIRONMENT, routing.environment.map(str::to_string)),
            (ext::CLUSTER, routing.cluster.map(str::to_string)),
            (ext::REVISION, routing.revision.map(str::to_string)),
            // A change's first event starts its correlation: its own id.
            (
                ext::CORRELATION_ID,
                Some(self.correlation_id.unwrap_or_else(|| id.to_string())),
            ),
            (ext::TRACEPARENT, self.traceparent),
            (ext::ACTOR, self.actor),
            (
                ext::GIT_SOURCE,
                routing.source.map(str::to_string).or(self.git_source),
            ),
        ];
        for (name, value) in pairs {
            if let Some(value) = value {
                builder = builder.extension(name, value);
            }
        }
        let event = builder
            .build()
            .map_err(|e| BuildError::Attributes(e.to_string()))?;
        Ok(Outgoing { event, subject })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{HealthReady, extension};

    fn payload() -> HealthReady {
        HealthReady {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: "abc".into(),
            objects: 2,
        }
    }

    #[test]
    fn ids_are_deterministic_and_cause_sensitive() {
        let a = EventId::derive("t", ["ab", "c"]);
        assert_eq!(a, EventId::derive("t", ["ab", "c"]));
        assert_ne!(a, EventId::derive("t", ["a", "bc"]));
        assert_ne!(a, EventId::derive("u", ["ab", "c"]));
        assert_eq!(a.as_str().len(), 32);
    }

    #[test]
    fn build_sets_routing_extensions_and_subject() {
        let p = payload();
        let out = Outgoing::builder(&p)
            .cause("x")
            .actor("alice")
            .build("configsync://applier/a")
            .unwrap();
        assert_eq!(out.subject(), "configsync.evt.dev.c1.health.ready.v1");
        assert_eq!(extension(out.event(), ext::ENVIRONMENT), Some("dev"));
        assert_eq!(extension(out.event(), ext::REVISION), Some("abc"));
        assert_eq!(extension(out.event(), ext::ACTOR), Some("alice"));
        assert_eq!(extension(out.event(), ext::CORRELATION_ID), Some(out.id()));
        let again = Outgoing::builder(&p)
            .cause("x")
            .build("configsync://applier/b")
            .unwrap();
        assert_eq!(
            again.id(),
            out.id(),
            "the source instance must not change the id"
        );
    }

    #[test]
    fn invalid_routing_is_refused() {
        let p = HealthReady {
            environment: "dev.>".into(),
            ..payload()
        };
        assert!(matches!(
            Outgoing::builder(&p).build("s"),
            Err(BuildError::Routing(_))
        ));
    }
}
