//! The one masking of secret values in data that leaves a cluster or a repository: drift values
//! in events (drift-watcher), every event stored and indexed by the auditor, and the output of
//! `configsync diff`. Masked values become [`REDACTED`]; keys, paths and names stay, so that a
//! reader still sees *what* changed.
//!
//! Rules, anywhere in a JSON document:
//! - an object with `kind: Secret`: each value under `data` and `stringData`;
//! - `stringData` anywhere (only Secrets have it);
//! - an object about a Secret (`object.kind: Secret`, as in drift and remediation events): every
//!   `desired` and `live` value under it;
//! - a drift field (`path` with `desired` / `live`) whose path has a segment that names a
//!   credential (`/data/db_password`): its values;
//! - a scalar under a key that names a credential ([`names_a_credential`]: `password`,
//!   `clientSecret`, `apiKey`, `token`, ...);
//! - the `value` of a `{name, value}` pair whose name says credential
//!   ([`env_name_is_credential`]: a container's `env` entry `DB_PASSWORD`, `SECRET_KEY_BASE`);
//! - a string holding a PEM private key.
//!
//! What this cannot catch: a credential inside free text (`db.password=x` in a properties file
//! held by a ConfigMap). Such values belong in Secrets.

use serde_json::Value;

use crate::event::{FieldDrift, ObjectRef};

/// What a masked value is replaced by.
pub const REDACTED: &str = "<redacted>";
/// A masked value that differs between the two sides of a diff, before and after.
pub const REDACTED_BEFORE: &str = "<redacted (before)>";
pub const REDACTED_AFTER: &str = "<redacted (after)>";

/// Endings (lowercase, without `_`, `-`, `.`) of a key that names a credential.
const CREDENTIAL_ENDINGS: [&str; 11] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "credential",
    "credentials",
];

/// Words (lowercase, without `_`, `-`, `.`) that make an environment variable's value a
/// credential wherever they appear in its name.
const CREDENTIAL_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "credential",
];

fn normalized(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `kind` is a Secret's.
pub fn is_secret_kind(kind: &str) -> bool {
    kind.eq_ignore_ascii_case("secret")
}

/// Whether a field's name says it holds a credential: `password`, `db_password`,
/// `clientSecret`, `apiKey`, `bearer-token`. By its ending, so that `tokenUrl` or
/// `secretName` (which name where a credential is, not the credential) stay readable.
pub fn names_a_credential(key: &str) -> bool {
    let key = normalized(key);
    CREDENTIAL_ENDINGS.iter().any(|e| key.ends_with(e))
}

/// Whether an environment variable's name says its value is a credential: any of the words
/// anywhere (`DB_PASSWORD`, `SECRET_KEY_BASE`, `GITHUB_TOKEN`, `AWS_SECRET_ACCESS_KEY`).
/// Broader than [`names_a_credential`]: a variable's name is all there is to go by.
pub fn env_name_is_credential(name: &str) -> bool {
    let name = normalized(name);
    CREDENTIAL_WORDS.iter().any(|w| name.contains(w))
}

fn looks_like_private_key(s: &str) -> bool {
    s.contains("-----BEGIN") && s.contains("PRIVATE KEY")
}

/// Masks every secret value of `value` in place (the rules of the module).
pub fn mask(value: &mut Value) {
    mask_by(value, &mut |_, v| *v = Value::String(REDACTED.into()));
}

/// Masks the drift values of `object`: every one of a Secret; for other kinds, those at a path
/// that names a credential, and what [`mask`] finds inside the rest (an `env` list compared
/// whole). A missing value stays missing: absence is no secret.
pub fn mask_drift(object: &ObjectRef, fields: &mut [FieldDrift]) {
    let secret = is_secret_kind(&object.kind);
    for field in fields {
        let hide = secret || path_names_a_credential(&field.path);
        for value in [&mut field.desired, &mut field.live].into_iter().flatten() {
            if hide {
                *value = Value::String(REDACTED.into());
            } else {
                mask(value);
            }
        }
    }
}

/// Masks two versions of one document for a diff: a masked value that is the same on both
/// sides becomes [`REDACTED`] on both, one that differs [`REDACTED_BEFORE`] and
/// [`REDACTED_AFTER`], so the diff still shows that it changed (as `kubectl diff` does).
pub fn mask_pair(before: &mut Value, after: &mut Value) {
    let masked = |v: &Value| {
        let mut found = Vec::new();
        mask_by(&mut v.clone(), &mut |pointer, original| {
            found.push((pointer.to_string(), original.clone()));
        });
        found
    };
    let (in_before, in_after) = (masked(before), masked(after));
    let same = |pointer: &str, value: &Value, other: &[(String, Value)]| {
        other.iter().any(|(p, v)| p == pointer && v == value)
    };
    let replace =
        |doc: &mut Value, own: &[(String, Value)], other: &[(String, Value)], changed: &str| {
            for (pointer, value) in own {
                if let Some(slot) = doc.pointer_mut(pointer) {
                    let marker = if same(pointer, value, other) {
                        REDACTED
                    } else {
                        changed
                    };
                    *slot = Value::String(marker.into());
                }
            }
        };
    replace(before, &in_before, &in_after, REDACTED_BEFORE);
    replace(after, &in_after, &in_before, REDACTED_AFTER);
}

fn path_names_a_credential(pointer: &str) -> bool {
    pointer
        .split('/')
        .skip(1)
        .any(|s| names_a_credential(&s.replace("~1", "/").replace("~0", "~")))
}

/// Walks `value`, calling `hide` with the JSON pointer and the value of everything the rules
/// mask (the value is not walked further).
fn mask_by(value: &mut Value, hide: &mut dyn FnMut(&str, &mut Value)) {
    let mut path = Vec::new();
    walk(value, false, &mut path, hide);
}

fn pointer(path: &[String]) -> String {
    path.iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn walk(
    value: &mut Value,
    about_secret: bool,
    path: &mut Vec<String>,
    hide: &mut dyn FnMut(&str, &mut Value),
) {
    match value {
        Value::Object(map) => {
            let is_secret = map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(is_secret_kind);
            let about_secret = about_secret
                || map
                    .get("object")
                    .and_then(|o| o.get("kind"))
                    .and_then(Value::as_str)
                    .is_some_and(is_secret_kind);
            let credential_path = map
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(path_names_a_credential);
            let credential_env = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(env_name_is_credential);
            for (key, v) in map.iter_mut() {
                path.push(key.clone());
                let scalar = !matches!(v, Value::Object(_) | Value::Array(_));
                if key == "stringData" || (is_secret && key == "data") {
                    hide_each(v, path, hide);
                } else if ((about_secret || credential_path) && (key == "desired" || key == "live"))
                    || (scalar && names_a_credential(key))
                    || (scalar && credential_env && key == "value")
                {
                    hide(&pointer(path), v);
                } else {
                    walk(v, about_secret, path, hide);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                walk(item, about_secret, path, hide);
                path.pop();
            }
        }
        Value::String(s) if looks_like_private_key(s) => hide(&pointer(path), value),
        _ => {}
    }
}

/// Hides each value of a map (its keys stay), or the whole value if it is not a map.
fn hide_each(value: &mut Value, path: &mut Vec<String>, hide: &mut dyn FnMut(&str, &mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                path.push(key.clone());
                hide(&pointer(path), v);
                path.pop();
            }
        }
        other => hide(&pointer(path), other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reference(kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("default".into()),
            name: "x".into(),
        }
    }

    fn field(path: &str, desired: Value, live: Value) -> FieldDrift {
        FieldDrift {
            path: path.into(),
            desired: Some(desired),
            live: Some(live),
        }
    }

    #[test]
    fn credential_names_are_told_by_their_ending_env_names_by_any_word() {
        for key in [
            "password",
            "db_password",
            "clientSecret",
            "apiKey",
            "api-key",
            "bearer.token",
            "AWS_SECRET_ACCESS_KEY",
            "sshPrivateKey",
            "credentials",
        ] {
            assert!(names_a_credential(key), "{key}");
        }
        for key in [
            "tokenUrl",
            "secretName",
            "color",
            "passwordPolicy",
            "keys",
            "name",
        ] {
            assert!(!names_a_credential(key), "{key}");
        }
        for name in [
            "DB_PASSWORD",
            "SECRET_KEY_BASE",
            "GITHUB_TOKEN",
            "npm_config_token_file",
            "Api-Key",
        ] {
            assert!(env_name_is_credential(name), "{name}");
        }
        for name in ["MODE", "LOG_LEVEL", "KEYCLOAK_URL"] {
            assert!(!env_name_is_credential(name), "{name}");
        }
    }

    #[test]
    fn every_drift_value_of_a_secret_is_masked_and_absence_kept() {
        let mut fields = vec![
            field("/data/password", json!("aHVudGVyMg=="), json!("b3RoZXI=")),
            FieldDrift {
                path: "/data/new".into(),
                desired: Some(json!("eA==")),
                live: None,
            },
        ];
        mask_drift(&reference("Secret"), &mut fields);
        assert_eq!(fields[0].desired, Some(json!(REDACTED)));
        assert_eq!(fields[0].live, Some(json!(REDACTED)));
        assert_eq!(fields[1].desired, Some(json!(REDACTED)));
        assert_eq!(fields[1].live, None);
    }

    #[test]
    fn drift_values_of_other_kinds_are_masked_where_a_name_says_credential() {
        let mut fields = vec![
            field("/data/color", json!("blue"), json!("red")),
            field("/data/db_password", json!("hunter2"), json!("hunter3")),
            field(
                "/spec/auth",
                json!({"token": "t1", "url": "https://u"}),
                json!({"token": "t2", "url": "https://u"}),
            ),
            field(
                "/spec/template/spec/containers",
                json!([{"name": "web", "env": [{"name": "DB_PASSWORD", "value": "p1"}, {"name": "MODE", "value": "fast"}]}]),
                json!([{"name": "web", "env": [{"name": "DB_PASSWORD", "value": "p2"}, {"name": "MODE", "value": "slow"}]}]),
            ),
        ];
        mask_drift(&reference("ConfigMap"), &mut fields);
        let text = serde_json::to_string(&fields).unwrap();
        for gone in ["hunter2", "hunter3", "t1", "t2", "p1", "p2"] {
            assert!(!text.contains(&format!("\"{gone}\"")), "{gone} in {text}");
        }
        for kept in [
            "blue",
            "red",
            "https://u",
            "fast",
            "slow",
            "DB_PASSWORD",
            "/data/db_password",
        ] {
            assert!(text.contains(kept), "{kept} not in {text}");
        }
    }

    #[test]
    fn payloads_are_masked_anywhere_keys_and_names_kept() {
        let mut data = json!({
            "manifest": {"kind": "Secret", "data": {"a": "c2VjcmV0"}, "stringData": {"b": "plain"}, "metadata": {"name": "s"}},
            "other": {"stringData": {"c": "plain2"}},
            "about": {"object": {"kind": "Secret", "name": "db"}, "fields": [{"path": "/data/x", "desired": "d", "live": {"y": "l"}}]},
            "drift": {"object": {"kind": "ConfigMap"}, "fields": [{"path": "/data/api_key", "desired": {"v": "k1"}, "live": "k2"}]},
            "auth": {"clientSecret": "xyz", "apiKey": "k3", "tokenUrl": "https://t", "passwords": ["in", "a", "list"]},
            "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
        });
        mask(&mut data);
        let text = data.to_string();
        for gone in [
            "c2VjcmV0",
            "\"plain\"",
            "plain2",
            "\"d\"",
            "\"l\"",
            "k1",
            "k2",
            "xyz",
            "k3",
            "MIIB",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(data["manifest"]["data"]["a"], REDACTED, "keys stay");
        assert_eq!(data["about"]["object"]["name"], "db");
        assert_eq!(data["auth"]["tokenUrl"], "https://t");
        // A list under a credential's name is walked, not hidden whole: its items have no
        // names to go by (a known limit, documented above).
        assert_eq!(data["auth"]["passwords"], json!(["in", "a", "list"]));
    }

    #[test]
    fn a_pair_shows_which_masked_values_changed_and_no_value() {
        let mut before =
            json!({"kind": "Secret", "data": {"same": "YQ==", "changed": "Yg==", "gone": "Yw=="}});
        let mut after =
            json!({"kind": "Secret", "data": {"same": "YQ==", "changed": "ZA==", "new": "ZQ=="}});
        mask_pair(&mut before, &mut after);
        assert_eq!(
            before["data"],
            json!({"same": REDACTED, "changed": REDACTED_BEFORE, "gone": REDACTED_BEFORE})
        );
        assert_eq!(
            after["data"],
            json!({"same": REDACTED, "changed": REDACTED_AFTER, "new": REDACTED_AFTER})
        );
        let mut before = json!({"kind": "ConfigMap", "data": {"color": "blue", "token": "t1"}});
        let mut after = json!({"kind": "ConfigMap", "data": {"color": "red", "token": "t1"}});
        mask_pair(&mut before, &mut after);
        assert_eq!(before["data"], json!({"color": "blue", "token": REDACTED}));
        assert_eq!(after["data"], json!({"color": "red", "token": REDACTED}));
    }
}
