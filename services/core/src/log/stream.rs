//! The event stream's definition (kept in `nats/stream.json`, nowhere else) and the code that
//! creates it, updates it, or refuses an incompatible existing one.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// The stream definition, in the JetStream API's own JSON format (so `nats stream add
/// --config nats/stream.json` creates the same stream).
pub const DEFINITION_JSON: &str = include_str!("../../../../nats/stream.json");

/// Why the stream could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the stream definition in nats/stream.json is invalid: {0}")]
    Definition(#[from] serde_json::Error),
    #[error("existing stream {name} is incompatible and was left untouched: {problems}")]
    Incompatible { name: String, problems: String },
    #[error("stream {name} was updated but the server kept {problems}")]
    NotApplied { name: String, problems: String },
    #[error("jetstream request failed: {0}")]
    Request(String),
}

impl StreamError {
    /// Whether retrying can help (the server was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Request(_))
    }
}

/// The event stream's configuration.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub config: stream::Config,
}

impl StreamSpec {
    /// The definition from `nats/stream.json` with the given replica count.
    pub fn from_definition(replicas: usize) -> Result<Self, StreamError> {
        let mut config: stream::Config = serde_json::from_str(DEFINITION_JSON)?;
        config.num_replicas = replicas.max(1);
        Ok(Self { config })
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The largest message (headers and payload) the stream accepts.
    pub fn max_message_size(&self) -> usize {
        usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX)
    }

    /// The window in which a repeated `Nats-Msg-Id` is dropped as a duplicate.
    pub fn duplicate_window(&self) -> Duration {
        self.config.duplicate_window
    }
}

/// What `ensure` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Updated,
    Unchanged,
}

/// Creates the stream, or brings an existing one in line with `spec`. An existing stream
/// whose immutable properties differ (storage, retention) or that is a mirror or sealed is
/// refused with every difference named, because silently changing the system of record is
/// worse than failing.
pub async fn ensure(js: &jetstream::Context, spec: &StreamSpec) -> Result<Ensured, StreamError> {
    let existing = match js.get_stream(spec.name()).await {
        Ok(mut s) => Some(s.info().await.map_err(request)?.config.clone()),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(inner)
                if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                None
            }
            _ => return Err(request(e)),
        },
    };
    let Some(existing) = existing else {
        js.create_stream(spec.config.clone())
            .await
            .map_err(request)?;
        return Ok(Ensured::Created);
    };
    let problems = incompatibilities(&existing, &spec.config);
    if !problems.is_empty() {
        return Err(StreamError::Incompatible {
            name: spec.name().to_string(),
            problems: problems.join("; "),
        });
    }
    if drifted_fields(&existing, &spec.config).is_empty() {
        return Ok(Ensured::Unchanged);
    }
    let info = js
        .update_stream(spec.config.clone())
        .await
        .map_err(request)?;
    let left = drifted_fields(&info.config, &spec.config);
    if !left.is_empty() {
        return Err(StreamError::NotApplied {
            name: spec.name().to_string(),
            problems: left.join("; "),
        });
    }
    Ok(Ensured::Updated)
}

fn request(e: impl std::fmt::Display) -> StreamError {
    StreamError::Request(e.to_string())
}

/// Differences that an update cannot or must not fix.
pub fn incompatibilities(existing: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    let mut out = Vec::new();
    if existing.storage != wanted.storage {
        out.push(format!(
            "storage is {:?}, want {:?}",
            existing.storage, wanted.storage
        ));
    }
    if existing.retention != wanted.retention {
        out.push(format!(
            "retention is {:?}, want {:?}",
            existing.retention, wanted.retention
        ));
    }
    if existing.mirror.is_some() {
        out.push("it is a mirror of another stream".into());
    }
    if existing.sealed {
        out.push("it is sealed".into());
    }
    out
}

/// Differences in the properties ConfigSync relies on.
pub fn drifted_fields(actual: &stream::Config, wanted: &stream::Config) -> Vec<String> {
    let mut out = Vec::new();
    let sorted = |subjects: &[String]| {
        let mut v = subjects.to_vec();
        v.sort();
        v
    };
    let (have, want) = (sorted(&actual.subjects), sorted(&wanted.subjects));
    if have != want {
        out.push(format!("subjects is {have:?}, want {want:?}"));
    }
    macro_rules! compare {
        ($($field:ident),*) => {$(
            if actual.$field != wanted.$field {
                out.push(format!("{} is {:?}, want {:?}", stringify!($field), actual.$field, wanted.$field));
            }
        )*};
    }
    compare!(
        deny_delete,
        deny_purge,
        allow_rollup,
        duplicate_window,
        max_message_size,
        num_replicas,
        max_age,
        max_messages,
        max_bytes,
        discard
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_a_safe_system_of_record() {
        let spec = StreamSpec::from_definition(3).unwrap();
        let c = &spec.config;
        assert_eq!(c.storage, stream::StorageType::File);
        assert!(c.deny_delete && c.deny_purge && !c.allow_rollup);
        assert!(c.duplicate_window >= Duration::from_secs(60));
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.max_age, Duration::ZERO, "events must never expire");
        assert_eq!(
            c.discard,
            stream::DiscardPolicy::New,
            "a full log refuses writes, it never drops history"
        );
        let mut subjects = c.subjects.clone();
        subjects.sort();
        assert_eq!(subjects, crate::subject::STREAM_SUBJECTS);
    }

    #[test]
    fn immutable_differences_are_incompatible() {
        let want = StreamSpec::from_definition(1).unwrap().config;
        let mut have = want.clone();
        have.storage = stream::StorageType::Memory;
        have.sealed = true;
        let problems = incompatibilities(&have, &want);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(incompatibilities(&want, &want).is_empty());
    }
}
