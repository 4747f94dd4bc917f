//! The event model: CloudEvents 1.0 envelopes around typed, versioned payloads.

mod catalogue;
mod outgoing;
#[cfg(test)]
mod permissions_tests;
mod received;

use cloudevents::{AttributesReader, Event};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use catalogue::*;
pub use outgoing::{BuildError, EventId, Outgoing};
pub use received::Received;

/// The content type of every payload ConfigSync writes, and the only one it reads.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// Names of the CloudEvents extension attributes ConfigSync sets (lowercase alphanumeric, as
/// the CloudEvents spec requires of extension names).
pub mod ext {
    /// The environment (`dev`, `staging`, `prod`, ...) the event is about.
    pub const ENVIRONMENT: &str = "environment";
    /// The cluster within the environment.
    pub const CLUSTER: &str = "cluster";
    /// The Git commit SHA the event is about.
    pub const REVISION: &str = "revision";
    /// Ties together every event caused by one change.
    pub const CORRELATION_ID: &str = "correlationid";
    /// W3C trace context of the operation that emitted the event.
    pub const TRACEPARENT: &str = "traceparent";
    /// The person who acted, where a person did.
    pub const ACTOR: &str = "actor";
    /// The name of the Git source (`--source NAME=...`) a change came from: set on the
    /// git-watcher's events and carried over to every event they cause. Not `source`, which
    /// is a core CloudEvents attribute (the emitting service).
    pub const GIT_SOURCE: &str = "gitsource";
    /// Every extension, in a stable order.
    pub const ALL: [&str; 7] = [
        ENVIRONMENT,
        CLUSTER,
        REVISION,
        CORRELATION_ID,
        TRACEPARENT,
        ACTOR,
        GIT_SOURCE,
    ];
}

/// The routing facts of a payload: they become extensions and subject tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Routing<'a> {
    pub environment: Option<&'a str>,
    pub cluster: Option<&'a str>,
    pub revision: Option<&'a str>,
    /// The Git source's name, for the events that come straight from one.
    pub source: Option<&'a str>,
}

/// A typed event payload with its versioned CloudEvents type.
pub trait EventPayload: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The reverse-DNS, versioned CloudEvents type, e.g. `io.configsync.commit.detected.v1`.
    const TYPE: &'static str;
    /// One sentence for `schemas/README.md`.
    const DESCRIPTION: &'static str;
    /// The environment, cluster and revision this payload concerns.
    fn routing(&self) -> Routing<'_>;
}

/// Why an event's data could not be turned into its payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("data does not match the schema of its type at {path}: {message}")]
    Schema { path: String, message: String },
    #[error("event has no data")]
    Missing,
    #[error("wrong datacontenttype {0:?}: expected application/json")]
    ContentType(String),
}

/// Deserializes JSON and reports the path of the first mismatch.
pub(crate) fn decode_json<T: DeserializeOwned>(data: &[u8]) -> Result<T, DataError> {
    let de = &mut serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(de).map_err(|e| DataError::Schema {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// One event type's documentation and schema.
#[derive(Debug, Clone)]
pub struct TypeDoc {
    pub type_name: &'static str,
    pub description: &'static str,
    pub schema: serde_json::Value,
}

impl TypeDoc {
    fn of<T: EventPayload>() -> Self {
        let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
        if let Some(obj) = schema.as_object_mut() {
            obj.insert(
                "$id".into(),
                format!("https://configsync.dev/schemas/{}.json", T::TYPE).into(),
            );
            obj.insert("description".into(), T::DESCRIPTION.into());
        }
        Self {
            type_name: T::TYPE,
            description: T::DESCRIPTION,
            schema,
        }
    }
}

/// Reads a string extension attribute.
pub fn extension<'e>(event: &'e Event, name: &str) -> Option<&'e str> {
    match event.extension(name) {
        Some(cloudevents::event::ExtensionValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// Decodes the typed payload of an already-parsed CloudEvent.
pub fn payload_of(event: &Event) -> Result<EventData, DataError> {
    if let Some(ct) = event.datacontenttype()
        && !crate::binding::is_media_type(ct, DATA_CONTENT_TYPE)
    {
        return Err(DataError::ContentType(ct.to_string()));
    }
    let bytes = match event.data() {
        None => return Err(DataError::Missing),
        Some(cloudevents::Data::Binary(b)) => std::borrow::Cow::Borrowed(b.as_slice()),
        Some(cloudevents::Data::String(s)) => std::borrow::Cow::Borrowed(s.as_bytes()),
        Some(cloudevents::Data::Json(v)) => {
            std::borrow::Cow::Owned(serde_json::to_vec(v).unwrap_or_default())
        }
    };
    EventData::decode(event.ty(), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_unique_versioned_and_reverse_dns() {
        let mut seen = std::collections::HashSet::new();
        for ty in EventData::TYPES {
            assert!(seen.insert(*ty), "duplicate type {ty}");
            assert!(ty.starts_with("io.configsync."), "{ty}");
            let version = ty.rsplit('.').next().unwrap();
            assert!(
                version.starts_with('v') && version[1..].parse::<u32>().is_ok(),
                "{ty}"
            );
            assert_eq!(
                ty.split('.').count(),
                5,
                "io.configsync.<domain>.<action>.<version>: {ty}"
            );
        }
    }

    #[test]
    fn decode_reports_the_failing_path() {
        let err = EventData::decode(ApplyStarted::TYPE, br#"{"environment":"dev","cluster":"a","revision":"r","bundleDigest":"d","objects":"many"}"#)
            .unwrap_err();
        match err {
            DataError::Schema { path, .. } => assert_eq!(path, "objects"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            EventData::decode("io.example.nope.v1", b"{}"),
            Err(DataError::UnknownType(_))
        ));
    }

    #[test]
    fn every_type_has_a_schema_with_id() {
        for doc in catalogue() {
            assert_eq!(
                doc.schema["$id"],
                format!("https://configsync.dev/schemas/{}.json", doc.type_name)
            );
            assert!(doc.schema["properties"].is_object(), "{}", doc.type_name);
        }
    }
}
