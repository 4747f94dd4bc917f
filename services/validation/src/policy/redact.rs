//! Keeping Secret values out of policy findings. A user policy sees the whole Secret as its
//! `input` and may put `input.data.password` into its message (by mistake or not), and a
//! runtime error of regorus may quote a value it failed on. Two measures:
//! - every finding on a Secret has each of that Secret's values replaced by `[redacted]` in
//!   its message: `data` values both as written (base64) and decoded, `stringData` values
//!   both as written and base64-encoded;
//! - the cross-object view `data.configsync.objects` holds Secrets with their values
//!   replaced, so a finding on another object cannot quote a Secret either.
//!
//! What this does not catch: a policy that transforms a value before printing it (upper-case,
//! a substring, one character at a time). Policies are code reviewed like any other code in
//! the repository; the redaction is for the mistakes, not for a hostile policy author.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

pub(super) const REDACTED: &str = "[redacted]";

/// Whether the object is a Secret whose values must be kept out of findings.
pub(super) fn is_secret(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Every string a Secret's values can appear as, longest first (so a value that contains
/// another is replaced whole).
pub(super) fn secret_strings(secret: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let values = |field: &str| {
        secret
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for encoded in values("data") {
        let compact: String = encoded.split_whitespace().collect();
        if let Ok(decoded) = STANDARD.decode(&compact)
            && let Ok(text) = String::from_utf8(decoded)
            && !text.is_empty()
        {
            out.push(text);
        }
        out.push(encoded);
    }
    for plain in values("stringData") {
        out.push(STANDARD.encode(&plain));
        out.push(plain);
    }
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    out
}

/// The message with every secret string replaced.
pub(super) fn redact(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
    }
    out
}

/// A copy of the object fit for other objects' policies to read: a Secret's values are
/// replaced (its keys stay, so "the Secret has key tls.crt" can still be checked).
pub(super) fn shareable(object: &Value) -> Value {
    let mut copy = object.clone();
    if is_secret(object) {
        for field in ["data", "stringData"] {
            if let Some(Value::Object(map)) = copy.get_mut(field) {
                for value in map.values_mut() {
                    *value = Value::String(REDACTED.into());
                }
            }
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_redacted_encoded_and_decoded() {
        // "hunter2" base64 is "aHVudGVyMg=="; "s3cr3t-token" is given as stringData.
        let secret = json!({"kind": "Secret", "data": {"p": "aHVudGVyMg=="}, "stringData": {"t": "s3cr3t-token"}});
        let strings = secret_strings(&secret);
        let message = format!(
            "password hunter2 (aHVudGVyMg==) and token s3cr3t-token ({})",
            STANDARD.encode("s3cr3t-token")
        );
        let redacted = redact(&message, &strings);
        assert_eq!(
            redacted,
            "password [redacted] ([redacted]) and token [redacted] ([redacted])"
        );
    }

    #[test]
    fn shared_secrets_keep_keys_not_values() {
        let secret = json!({"kind": "Secret", "data": {"p": "aHVudGVyMg=="}});
        assert_eq!(shareable(&secret)["data"], json!({"p": REDACTED}));
        let config = json!({"kind": "ConfigMap", "data": {"p": "visible"}});
        assert_eq!(shareable(&config), config);
    }
}
