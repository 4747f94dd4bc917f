//! The CloudEvents NATS protocol binding, written here because cloudevents-sdk's own `nats`
//! feature pins an old async-nats and only does structured mode.
//!
//! ConfigSync publishes in binary content mode: every attribute is a `ce-<name>` header whose
//! value is percent-encoded as the binding (after the HTTP binding) says: space, `"`, `%` and
//! every character outside printable ASCII are encoded as `%XX` of their UTF-8 bytes;
//! `datacontenttype` is the `content-type` header; the payload is the data. On input it also
//! accepts structured mode (`content-type: application/cloudevents+json`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::{AttributesReader, AttributesWriter, Data, Event, EventBuilder, EventBuilderV10};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::event::ext;

/// The header JetStream deduplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// The content type of structured mode.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
const PREFIX: &str = "ce-";
const CONTENT_TYPE: &str = "content-type";

/// Why a NATS message is not a readable CloudEvent. Always terminal: redelivery cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error(
        "not a cloudevent: no ce-specversion header and content-type is not {STRUCTURED_CONTENT_TYPE}"
    )]
    NotACloudEvent,
    #[error("unsupported specversion {0:?}: only 1.0 is accepted")]
    SpecVersion(String),
    #[error("missing required attribute {0}")]
    MissingAttribute(&'static str),
    #[error("header {header} has invalid percent-encoding: {reason}")]
    PercentEncoding {
        header: String,
        reason: &'static str,
    },
    #[error("attribute {attribute} is invalid: {reason}")]
    InvalidAttribute { attribute: String, reason: String },
    #[error("structured event is not valid cloudevents json: {0}")]
    Structured(String),
}

/// Encodes `event` in binary content mode: (headers, payload). The event id is also set as
/// `Nats-Msg-Id` so that JetStream deduplicates retried publishes.
pub fn encode_binary(event: &Event) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static(MSG_ID_HEADER),
        HeaderValue::from(event.id()),
    );
    for (name, value) in event.iter_attributes() {
        let value = match value {
            // Most attributes are strings: encode them without an intermediate copy.
            cloudevents::event::AttributeValue::String(s) => percent_encode(s).into_owned(),
            other => percent_encode(&other.to_string()).into_owned(),
        };
        let name = match name {
            "datacontenttype" => Some(HeaderName::from_static(CONTENT_TYPE)),
            _ => header_name(name),
        };
        if let Some(name) = name {
            headers.insert(name, HeaderValue::from(value));
        }
    }
    for (name, value) in event.iter_extensions() {
        let text = match value {
            ExtensionValue::String(s) => percent_encode(s).into_owned(),
            other => percent_encode(&other.to_string()).into_owned(),
        };
        match header_name(name) {
            Some(name) => headers.insert(name, HeaderValue::from(text)),
            None => tracing::warn!(
                extension = name,
                "extension name is not a valid cloudevents attribute name; not sent"
            ),
        }
    }
    let payload = match event.data() {
        None => Bytes::new(),
        Some(Data::Binary(b)) => Bytes::copy_from_slice(b),
        Some(Data::String(s)) => Bytes::copy_from_slice(s.as_bytes()),
        Some(Data::Json(v)) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
    };
    (headers, payload)
}

/// The context attributes of CloudEvents 1.0 that every binding carries as `ce-` headers
/// (`datacontenttype` travels as `content-type`).
const CORE_ATTRIBUTES: [&str; 7] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "dataschema",
];

/// The headers of the attributes every ConfigSync event may have — the core attributes and
/// the extensions of `event::ext` — parsed once, so encoding an event allocates no names.
static KNOWN_HEADERS: LazyLock<Vec<(&'static str, HeaderName)>> = LazyLock::new(|| {
    CORE_ATTRIBUTES
        .iter()
        .chain(ext::ALL.iter())
        .filter_map(|a| Some((*a, format!("{PREFIX}{a}").parse().ok()?)))
        .collect()
});

/// `ce-<attribute>`; `None` for a name CloudEvents does not allow (lowercase ASCII letters
/// and digits only), which could not be a valid header either.
fn header_name(attribute: &str) -> Option<HeaderName> {
    if let Some((_, known)) = KNOWN_HEADERS.iter().find(|(a, _)| *a == attribute) {
        return Some(known.clone());
    }
    let valid = !attribute.is_empty()
        && attribute
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid {
        return None;
    }
    format!("{PREFIX}{attribute}").parse().ok()
}

/// Whether a `content-type` (or `datacontenttype`) names `media_type`: its essence, before
/// any parameters (`; charset=utf-8`), compared without regard to case as media types are.
pub fn is_media_type(content_type: &str, media_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .eq_ignore_ascii_case(media_type)
}

/// Decodes a NATS message in binary or structured content mode.
///
/// Binary-mode data is kept as bytes (the payload decoder reads them, and rejects what is not
/// valid JSON with a precise reason); structured-mode data arrives as JSON.
pub fn decode(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Event, BindingError> {
    let fields = header_fields(headers);
    let structured = fields
        .get(CONTENT_TYPE)
        .is_some_and(|ct| is_media_type(ct, STRUCTURED_CONTENT_TYPE));
    if structured {
        return decode_structured(payload);
    }
    if !fields.contains_key("ce-specversion") {
        return Err(BindingError::NotACloudEvent);
    }
    decode_binary(&fields, payload)
}

/// Header names lowercased (NATS header names are case-sensitive on the wire, but the binding
/// names are lowercase and some clients capitalise them); the first value of each.
fn header_fields(headers: Option<&HeaderMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(headers) = headers {
        for (name, values) in headers.iter() {
            if let Some(first) = values.first() {
                out.entry(AsRef::<str>::as_ref(name).to_ascii_lowercase())
                    .or_insert_with(|| first.as_str().to_string());
            }
        }
    }
    out
}

fn decode_structured(payload: &[u8]) -> Result<Event, BindingError> {
    // Check specversion first so that the error names it, not a serde detail.
    let raw: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| BindingError::Structured(e.to_string()))?;
    match raw.get("specversion").and_then(|v| v.as_str()) {
        Some("1.0") => {}
        Some(other) => return Err(BindingError::SpecVersion(other.to_string())),
        None => return Err(BindingError::MissingAttribute("specversion")),
    }
    for required in ["id", "source", "type"] {
        if raw
            .get(required)
            .and_then(|v| v.as_str())
            .is_none_or(str::is_empty)
        {
            return Err(BindingError::MissingAttribute(match required {
                "id" => "id",
                "source" => "source",
                _ => "type",
            }));
        }
    }
    let mut event: Event =
        serde_json::from_value(raw).map_err(|e| BindingError::Structured(e.to_string()))?;
    normalise_json_data(&mut event);
    Ok(event)
}

fn decode_binary(fields: &BTreeMap<String, String>, payload: &[u8]) -> Result<Event, BindingError> {
    let mut decoded = BTreeMap::new();
    for (name, raw) in fields {
        let Some(attr) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let value = percent_decode(raw).map_err(|reason| BindingError::PercentEncoding {
            header: name.clone(),
            reason,
        })?;
        decoded.insert(attr.to_string(), value);
    }
    match decoded.get("specversion").map(String::as_str) {
        Some("1.0") => {}
        Some(other) => return Err(BindingError::SpecVersion(other.to_string())),
        None => return Err(BindingError::MissingAttribute("specversion")),
    }
    let required = |name: &'static str| -> Result<&String, BindingError> {
        decoded
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or(BindingError::MissingAttribute(name))
    };
    let mut builder = EventBuilderV10::new()
        .id(required("id")?)
        .source(required("source")?.as_str())
        .ty(required("type")?);
    let mut dataschema = None;
    for (name, value) in &decoded {
        builder = match name.as_str() {
            "specversion" | "id" | "source" | "type" => builder,
            "subject" => builder.subject(value),
            "time" => {
                let time = DateTime::parse_from_rfc3339(value).map_err(|e| {
                    BindingError::InvalidAttribute {
                        attribute: "time".into(),
                        reason: e.to_string(),
                    }
                })?;
                builder.time(time.with_timezone(&Utc))
            }
            "dataschema" => {
                let url = url::Url::parse(value).map_err(|e| BindingError::InvalidAttribute {
                    attribute: "dataschema".into(),
                    reason: e.to_string(),
                })?;
                dataschema = Some(url);
                builder
            }
            ext => builder.extension(ext, ExtensionValue::String(value.clone())),
        };
    }
    if let Some(ct) = fields.get(CONTENT_TYPE) {
        let ct = percent_decode(ct).map_err(|reason| BindingError::PercentEncoding {
            header: CONTENT_TYPE.into(),
            reason,
        })?;
        builder = builder.data(ct, payload.to_vec());
    } else if !payload.is_empty() {
        builder = builder.data("application/octet-stream", payload.to_vec());
    }
    let mut event = builder.build().map_err(invalid)?;
    event.set_dataschema(dataschema);
    debug_assert_eq!(event.specversion(), SpecVersion::V10);
    // The data stays bytes: the payload decoder reads them once into the typed event.
    // Parsed here into a JSON value, a 1 MiB event would take ten times that in memory and
    // be parsed twice; it is turned into JSON only to be shown (`json_data`).
    Ok(event)
}

fn invalid(e: cloudevents::event::EventBuilderError) -> BindingError {
    BindingError::InvalidAttribute {
        attribute: "event".into(),
        reason: e.to_string(),
    }
}

/// Turns JSON-typed byte or string data into `Data::Json` when it parses, so that the
/// serialized event shows its data as JSON rather than base64.
pub fn normalise_json_data(event: &mut Event) {
    let is_json = event
        .datacontenttype()
        .is_some_and(|ct| is_media_type(ct, crate::event::DATA_CONTENT_TYPE));
    if !is_json {
        return;
    }
    let parsed = match event.data() {
        Some(Data::Binary(b)) => serde_json::from_slice(b).ok(),
        Some(Data::String(s)) => serde_json::from_str(s).ok(),
        _ => None,
    };
    if let Some(value) = parsed {
        event.set_data_unchecked(Data::Json(value));
    }
}

/// What the binding percent-encodes in a header value (the CloudEvents HTTP binding's rule,
/// which the NATS binding follows): space, `"`, `%`, and everything outside printable ASCII —
/// the controls and DEL here, non-ASCII characters by `utf8_percent_encode` itself.
const HEADER_ENCODE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Percent-encodes a header value as the binding requires (borrowing when nothing needs it).
pub fn percent_encode(value: &str) -> std::borrow::Cow<'_, str> {
    utf8_percent_encode(value, HEADER_ENCODE).into()
}

/// Decodes a percent-encoded header value strictly: every `%` must start a two-digit hex
/// escape and the result must be UTF-8 (lenient decoders pass broken input through).
pub fn percent_decode(value: &str) -> Result<String, &'static str> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("truncated escape")?;
            let hi = (hex[0] as char)
                .to_digit(16)
                .ok_or("non-hex digit in escape")?;
            let lo = (hex[1] as char)
                .to_digit(16)
                .ok_or("non-hex digit in escape")?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "escapes do not form UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips_hostile_text() {
        for s in [
            "plain",
            "a b",
            "100%",
            "say \"hi\"",
            "grüße ☃",
            "tab\there",
            "%zz",
            "",
        ] {
            let enc = percent_encode(s);
            assert!(enc.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{enc}");
            assert_eq!(percent_decode(&enc).unwrap(), s);
        }
    }

    #[test]
    fn percent_encoding_is_exactly_the_bindings_set() {
        assert_eq!(
            percent_encode("a b\"c%d\u{7f}\u{1}é!#&'+/:;=?@[]~"),
            "a%20b%22c%25d%7F%01%C3%A9!#&'+/:;=?@[]~"
        );
        assert!(matches!(
            percent_encode("io.configsync.apply.succeeded.v1"),
            std::borrow::Cow::Borrowed(_)
        ));
        for attribute in CORE_ATTRIBUTES.iter().chain(ext::ALL.iter()) {
            assert_eq!(
                header_name(attribute).map(|h| AsRef::<str>::as_ref(&h).to_string()),
                Some(format!("ce-{attribute}"))
            );
        }
        assert_eq!(header_name("Bad-Name"), None);
    }

    #[test]
    fn media_types_compare_by_essence() {
        assert!(is_media_type("application/json", "application/json"));
        assert!(is_media_type(
            " Application/JSON ; charset=utf-8",
            "application/json"
        ));
        assert!(!is_media_type("application/json-seq", "application/json"));
        assert!(!is_media_type("", "application/json"));
    }

    #[test]
    fn strict_decoding_rejects_broken_escapes() {
        assert!(percent_decode("%").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%C3").is_err(), "half a UTF-8 sequence");
        assert_eq!(percent_decode("%C3%BC").unwrap(), "ü");
    }

    fn sample() -> Event {
        EventBuilderV10::new()
            .id("1")
            .source("configsync://test")
            .ty("io.configsync.health.ready.v1")
            .subject("dev/ü \"x\" 50%")
            .extension("environment", "dev")
            .data("application/json", br#"{"a":1}"#.to_vec())
            .build()
            .unwrap()
    }

    #[test]
    fn binary_mode_round_trip() {
        let event = sample();
        let (headers, payload) = encode_binary(&event);
        assert_eq!(headers.get("ce-specversion").unwrap().as_str(), "1.0");
        assert_eq!(headers.get(MSG_ID_HEADER).unwrap().as_str(), "1");
        assert_eq!(
            headers.get("content-type").unwrap().as_str(),
            "application/json"
        );
        let back = decode(Some(&headers), &payload).unwrap();
        assert_eq!(back.subject(), event.subject());
        assert_eq!(
            back.extension("environment"),
            event.extension("environment")
        );
        assert_eq!(back.data(), Some(&Data::Binary(br#"{"a":1}"#.to_vec())));
        let mut shown = back.clone();
        normalise_json_data(&mut shown);
        assert_eq!(shown.data(), Some(&Data::Json(serde_json::json!({"a": 1}))));
    }

    #[test]
    fn structured_mode_is_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", STRUCTURED_CONTENT_TYPE);
        let body = serde_json::to_vec(&sample()).unwrap();
        let back = decode(Some(&headers), &body).unwrap();
        assert_eq!(back.id(), "1");
        assert_eq!(back.data(), Some(&Data::Json(serde_json::json!({"a": 1}))));
    }

    #[test]
    fn bad_envelopes_get_precise_errors() {
        let (mut headers, payload) = encode_binary(&sample());
        headers.insert("ce-specversion", "0.3");
        assert_eq!(
            decode(Some(&headers), &payload),
            Err(BindingError::SpecVersion("0.3".into()))
        );

        let (mut headers, payload) = encode_binary(&sample());
        headers.insert("ce-subject", "bad%2");
        assert!(matches!(
            decode(Some(&headers), &payload),
            Err(BindingError::PercentEncoding { .. })
        ));

        let (mut headers, payload) = encode_binary(&sample());
        headers.insert("ce-type", "");
        assert_eq!(
            decode(Some(&headers), &payload),
            Err(BindingError::MissingAttribute("type"))
        );

        assert_eq!(decode(None, b"{}"), Err(BindingError::NotACloudEvent));

        let mut headers = HeaderMap::new();
        headers.insert("content-type", STRUCTURED_CONTENT_TYPE);
        let body = br#"{"specversion":"1.0","source":"s","type":"t"}"#;
        assert_eq!(
            decode(Some(&headers), body),
            Err(BindingError::MissingAttribute("id"))
        );
    }
}
