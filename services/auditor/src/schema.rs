//! The search index's schema: one tantivy document per log entry.
//!
//! | field | options | what |
//! |---|---|---|
//! | `id` | STRING, STORED | the CloudEvents id |
//! | `type` | STRING, STORED | the full type (`io.configsync.apply.succeeded.v1`) and its short form (`apply.succeeded.v1`); `unreadable` for an entry that is not a readable event |
//! | `environment`, `cluster`, `revision`, `actor`, `correlationid` | STRING, STORED | the CloudEvents extensions, when set |
//! | `source` | STRING, STORED | the emitting service instance (`configsync://applier/host-1`) |
//! | `subject` | TEXT, STORED | the CloudEvents `subject` (what the event is about) and the NATS subject it is stored under |
//! | `time` | date, INDEXED, STORED, FAST | the event time (the store time when the event has none) |
//! | `sequence` | u64, INDEXED, STORED, FAST | the stream sequence: the log position, unique per document; results sort on it |
//! | `text` | TEXT | the words of the payload (every string value of the data, recursively, after redaction) and the actor |
//! | `event` | STORED | the event as one JSON line (`configsync events tail` form, with `_stream`), after redaction |
//!
//! STRING fields are indexed as one raw token (exact match: `environment:prod`); TEXT fields are
//! tokenized by tantivy's default tokenizer (split on non-alphanumerics, lowercased), with
//! positions, so phrases work. Secret values are removed before anything reaches a field (see
//! `redact`). The last indexed stream sequence is the payload of each commit, not a field, so
//! that it moves atomically with the documents it covers.

use tantivy::schema::{DateOptions, Field, INDEXED, NumericOptions, STORED, STRING, Schema, TEXT};

/// Field names (also the names used in queries, e.g. `environment:prod`).
pub mod name {
    pub const ID: &str = "id";
    pub const TYPE: &str = "type";
    use configsync_core::event::ext;

    // The fields of the CloudEvents extensions are named after them.
    pub const ENVIRONMENT: &str = ext::ENVIRONMENT;
    pub const CLUSTER: &str = ext::CLUSTER;
    pub const REVISION: &str = ext::REVISION;
    pub const ACTOR: &str = ext::ACTOR;
    pub const CORRELATION_ID: &str = ext::CORRELATION_ID;
    pub const SOURCE: &str = "source";
    pub const SUBJECT: &str = "subject";
    pub const TIME: &str = "time";
    pub const SEQUENCE: &str = "sequence";
    pub const TEXT: &str = "text";
    pub const EVENT: &str = "event";
}

/// Handles on every field of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub id: Field,
    pub type_name: Field,
    pub environment: Field,
    pub cluster: Field,
    pub revision: Field,
    pub actor: Field,
    pub correlation_id: Field,
    pub source: Field,
    pub subject: Field,
    pub time: Field,
    pub sequence: Field,
    pub text: Field,
    pub event: Field,
}

/// Builds the schema and the handles on its fields.
pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let keyword = STRING | STORED;
    let fields = Fields {
        id: b.add_text_field(name::ID, keyword.clone()),
        type_name: b.add_text_field(name::TYPE, keyword.clone()),
        environment: b.add_text_field(name::ENVIRONMENT, keyword.clone()),
        cluster: b.add_text_field(name::CLUSTER, keyword.clone()),
        revision: b.add_text_field(name::REVISION, keyword.clone()),
        actor: b.add_text_field(name::ACTOR, keyword.clone()),
        correlation_id: b.add_text_field(name::CORRELATION_ID, keyword.clone()),
        source: b.add_text_field(name::SOURCE, keyword),
        subject: b.add_text_field(name::SUBJECT, TEXT | STORED),
        time: b.add_date_field(
            name::TIME,
            DateOptions::default().set_indexed().set_stored().set_fast(),
        ),
        sequence: b.add_u64_field(
            name::SEQUENCE,
            NumericOptions::default() | INDEXED | STORED | tantivy::schema::FAST,
        ),
        text: b.add_text_field(name::TEXT, TEXT),
        event: b.add_text_field(name::EVENT, STORED),
    };
    (b.build(), fields)
}
