//! Keeps Secret values out of the index: what is indexed or stored is the masked payload.
//!
//! Producers already mask drift values (see `FieldDrift`); the auditor does it again because the
//! index outlives any one producer's bugs and is served over HTTP. The rules are
//! `configsync_core::redact`'s (the one masking function), applied to the payload JSON before
//! words are extracted or the event is stored, plus one of the auditor's own: a dead-letter
//! record's `payloadExcerpt` (raw bytes of an unknown message; the original stays in the stream
//! at `streamSequence` for whoever may read it). After a change of these rules, `POST
//! /v1/admin/reindex` rebuilds the index under the new ones.

use serde_json::Value;

pub use configsync_core::redact::REDACTED;

/// The type of dead-letter records.
const DEAD_LETTER_TYPE: &str = configsync_core::log::DEAD_LETTER_TYPE;

/// Redacts `data`, the payload of an event of `type_name`, in place.
pub fn redact(type_name: &str, data: &mut Value) {
    if type_name == DEAD_LETTER_TYPE
        && let Some(excerpt) = data.get_mut("payloadExcerpt")
    {
        *excerpt = Value::String(REDACTED.into());
    }
    configsync_core::redact::mask(data);
}

/// Every string value of `value`, recursively, space-separated (the `text` field), except
/// redaction markers.
pub fn words(value: &Value) -> String {
    let mut out = String::new();
    collect(value, &mut out);
    out
}

fn collect(value: &Value, out: &mut String) {
    match value {
        Value::String(s) if s != REDACTED => {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn drift_values_of_a_secret_are_removed_and_its_name_kept() {
        let mut data = json!({
            "environment": "dev",
            "object": {"apiVersion": "v1", "kind": "Secret", "name": "db-creds"},
            "fields": [{"path": "/data/password", "desired": "hunter2", "live": {"x": "hunter3"}}],
        });
        redact("io.configsync.drift.detected.v1", &mut data);
        let text = words(&data);
        assert!(!text.contains("hunter"), "{text}");
        assert!(
            text.contains("db-creds") && text.contains("/data/password"),
            "{text}"
        );
        assert_eq!(data["fields"][0]["desired"], REDACTED);
    }

    #[test]
    fn drift_values_of_a_configmap_are_kept() {
        let mut data = json!({
            "object": {"kind": "ConfigMap", "name": "settings"},
            "fields": [{"path": "/data/color", "desired": "blue", "live": "red"}],
        });
        redact("io.configsync.drift.detected.v1", &mut data);
        let mut text: Vec<String> = words(&data).split(' ').map(str::to_string).collect();
        text.sort();
        assert_eq!(
            text,
            ["/data/color", "ConfigMap", "blue", "red", "settings"]
        );
    }

    #[test]
    fn credential_drift_values_of_a_configmap_are_removed() {
        let mut data = json!({
            "object": {"kind": "ConfigMap", "name": "settings"},
            "fields": [
                {"path": "/data/db_password", "desired": "hunter2", "live": "hunter3"},
                {"path": "/spec/containers", "desired": [{"env": [{"name": "API_TOKEN", "value": "tok1"}]}]},
            ],
        });
        redact("io.configsync.drift.detected.v1", &mut data);
        let text = words(&data);
        for gone in ["hunter2", "hunter3", "tok1"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(
            text.contains("/data/db_password") && text.contains("API_TOKEN"),
            "{text}"
        );
    }

    #[test]
    fn secret_objects_credentials_and_keys_are_removed_anywhere() {
        let mut data = json!({
            "manifest": {"kind": "Secret", "data": {"a": "c2VjcmV0"}, "metadata": {"name": "s"}},
            "other": {"stringData": {"b": "plain"}},
            "auth": {"clientSecret": "xyz", "apiKey": "k1", "db_password": "p", "tokenUrl": "https://t"},
            "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
        });
        redact("io.example.v1", &mut data);
        let text = words(&data);
        for gone in ["c2VjcmV0", "plain", "xyz", "k1", " p ", "MIIB"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(text.contains("https://t"), "{text}");
    }

    #[test]
    fn dead_letter_excerpts_are_not_kept() {
        let mut data = json!({"consumer": "applier", "reason": "bad", "payloadExcerpt": "aGk="});
        redact(DEAD_LETTER_TYPE, &mut data);
        assert_eq!(data["payloadExcerpt"], REDACTED);
        let text = words(&data);
        assert!(text.contains("applier") && text.contains("bad") && !text.contains("aGk"));
    }
}
