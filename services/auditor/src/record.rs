//! What one log entry becomes in the index, built on the async side (plain data, no tantivy)
//! and turned into a tantivy document on the writer thread.

use chrono::{DateTime, Utc};
use configsync_core::cloudevents::AttributesReader;
use configsync_core::event::Received;
use configsync_core::log::Entry;
use serde_json::{Value, json};

use crate::redact;
use crate::schema::Fields;

/// The type recorded for a log entry that is not a readable event.
pub const UNREADABLE_TYPE: &str = "unreadable";

/// One entry of the log, redacted, ready to index.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub sequence: u64,
    pub id: Option<String>,
    /// The full type and its short form (without `io.configsync.`), when they differ.
    pub types: Vec<String>,
    pub environment: Option<String>,
    pub cluster: Option<String>,
    pub revision: Option<String>,
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    pub source: Option<String>,
    /// The CloudEvents subject (if any) and the NATS subject.
    pub subjects: Vec<String>,
    /// The event time (the store time when the event has none); none for unreadable entries.
    pub time: Option<DateTime<Utc>>,
    pub text: String,
    /// The event JSON line, redacted.
    pub event: String,
}

impl Record {
    /// The record of one log entry.
    pub fn of(entry: &Entry) -> Self {
        match entry {
            Entry::Event(received) => Self::of_event(received),
            // The reason is left out: decode errors may quote the payload they failed on.
            Entry::Unreadable {
                stream_sequence,
                subject,
                ..
            } => Self {
                sequence: *stream_sequence,
                id: None,
                types: vec![UNREADABLE_TYPE.into()],
                environment: None,
                cluster: None,
                revision: None,
                actor: None,
                correlation_id: None,
                source: None,
                subjects: vec![subject.clone()],
                time: None,
                text: String::new(),
                event: json!({
                    "type": UNREADABLE_TYPE,
                    "_stream": {"sequence": stream_sequence, "subject": subject},
                })
                .to_string(),
            },
        }
    }

    fn of_event(r: &Received) -> Self {
        let type_name = r.type_name().to_string();
        let mut types = vec![type_name.clone()];
        if let Some(short) = type_name.strip_prefix("io.configsync.") {
            types.push(short.to_string());
        }
        let mut data = serde_json::to_value(&r.data).unwrap_or(Value::Null);
        redact::redact(&type_name, &mut data);
        let mut text = redact::words(&data);
        if let Some(actor) = r.actor() {
            text.push(' ');
            text.push_str(actor);
        }
        // The stored line carries the redacted payload, whatever form (`data` or
        // `data_base64`) the original took.
        let mut line = r.to_json_line();
        if let Some(obj) = line.as_object_mut() {
            obj.remove("data_base64");
            obj.insert("data".into(), data);
        }
        let mut subjects: Vec<String> = r.event.subject().map(str::to_string).into_iter().collect();
        subjects.push(r.subject.clone());
        let owned = |s: Option<&str>| s.map(str::to_string);
        Self {
            sequence: r.stream_sequence,
            id: Some(r.id().to_string()),
            types,
            environment: owned(r.environment()),
            cluster: owned(r.cluster()),
            revision: owned(r.revision()),
            actor: owned(r.actor()),
            correlation_id: owned(r.correlation_id()),
            source: Some(r.event.source().to_string()),
            subjects,
            time: Some(r.event.time().copied().unwrap_or(r.stored_at)),
            text,
            event: line.to_string(),
        }
    }

    /// The tantivy document of this record.
    pub fn to_document(&self, f: &Fields) -> tantivy::TantivyDocument {
        let mut doc = tantivy::TantivyDocument::default();
        let keywords = [
            (f.id, &self.id),
            (f.environment, &self.environment),
            (f.cluster, &self.cluster),
            (f.revision, &self.revision),
            (f.actor, &self.actor),
            (f.correlation_id, &self.correlation_id),
            (f.source, &self.source),
        ];
        for (field, value) in keywords {
            if let Some(v) = value {
                doc.add_text(field, v);
            }
        }
        for t in &self.types {
            doc.add_text(f.type_name, t);
        }
        for s in &self.subjects {
            doc.add_text(f.subject, s);
        }
        if let Some(time) = self.time {
            doc.add_date(
                f.time,
                tantivy::DateTime::from_timestamp_micros(time.timestamp_micros()),
            );
        }
        doc.add_u64(f.sequence, self.sequence);
        doc.add_text(f.text, &self.text);
        doc.add_text(f.event, &self.event);
        doc
    }
}
