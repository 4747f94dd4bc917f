//! YAML 1.1 scalars, as kubectl reads them. kubectl's decoder (go-yaml v2 behind
//! sigs.k8s.io/yaml) follows YAML 1.1, where an unquoted `0644` is the octal integer 420,
//! `1_000` is 1000 and `yes`/`on`/`off` are booleans; serde_yaml follows YAML 1.2, where all
//! of these are strings. Left alone, `defaultMode: 0400` would be a false type error and the
//! stored bundle would carry a string the API server rejects.
//!
//! serde_yaml does not say whether a string was quoted, so a document whose values include
//! such a string (rare) is parsed again with yaml-rust2, which keeps scalar styles, and only
//! the plain (unquoted) ones are converted.

use std::ops::ControlFlow;

use serde_json::Value;

use crate::yaml_events::{Frame, Visit, walk};

/// The value YAML 1.1 gives a plain scalar where YAML 1.2 gives the string `text`.
fn yaml11(text: &str) -> Option<Value> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Some(Value::Bool(true)),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Some(Value::Bool(false)),
        _ => {}
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let plain: String = digits.chars().filter(|&c| c != '_').collect();
    let octal = plain.len() > 1 && plain.starts_with('0');
    let underscored = digits.contains('_');
    if plain.is_empty() || !(octal || underscored) || digits.starts_with('_') {
        return None;
    }
    let magnitude = if let Some(bin) = plain.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = plain.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if octal {
        i64::from_str_radix(&plain[1..], 8).ok()?
    } else {
        plain.parse::<i64>().ok()?
    };
    Some(Value::from(if negative { -magnitude } else { magnitude }))
}

/// Whether any string value in `value` (not a key) reads differently in YAML 1.1.
fn has_candidates(value: &Value) -> bool {
    match value {
        Value::String(s) => yaml11(s).is_some(),
        Value::Array(items) => items.iter().any(has_candidates),
        Value::Object(map) => map.values().any(has_candidates),
        _ => false,
    }
}

/// One step of a path: a key of a mapping or an index of a sequence.
enum Step {
    Key(String),
    Index(usize),
}

/// Converts, in `value` decoded from the first document of `text`, the plain scalars that
/// YAML 1.1 reads as numbers or booleans. Aliases are left as serde_yaml expanded them.
pub fn apply(text: &str, value: &mut Value) {
    if !has_candidates(value) {
        return;
    }
    walk(text, |stack, visit, _| {
        if let Visit::Scalar { text, plain: true } = visit
            && let Some(converted) = yaml11(text)
            && let Some(path) = path_of(stack)
            && let Some(slot) = at_path(value, &path)
            && slot.as_str() == Some(text)
        {
            *slot = converted;
        }
        ControlFlow::Continue(())
    });
}

fn path_of(stack: &[Frame]) -> Option<Vec<Step>> {
    stack
        .iter()
        .map(|frame| match frame {
            Frame::Map { key: Some(k), .. } => Some(Step::Key(k.clone())),
            Frame::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

fn at_path<'v>(value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(text: &str) -> Value {
        let mut v: Value = serde_yaml::from_str(text).unwrap();
        apply(text, &mut v);
        v
    }

    #[test]
    fn plain_yaml11_scalars_become_what_kubectl_sends() {
        let v = decode(
            "mode: 0644\nneg: -010\nbig: 1_000\nbin: 0b101\nhex: 0x1_F\nflag: yes\noff: off\nlist: [0400, on, '0400', \"yes\"]\nkeep: '0644'\nzero: 0\nname: nginx\nversion: 1.20\n",
        );
        assert_eq!(
            v,
            json!({
                "mode": 420, "neg": -8, "big": 1000, "bin": 5, "hex": 31, "flag": true,
                "off": false, "list": [256, true, "0400", "yes"], "keep": "0644", "zero": 0,
                "name": "nginx", "version": 1.2
            })
        );
    }

    #[test]
    fn nested_values_and_block_scalars() {
        let v = decode(
            "spec:\n  volumes:\n  - name: s\n    secret: {secretName: s, defaultMode: 0400}\n  script: |\n    mode: 0644\n    yes\n",
        );
        assert_eq!(v["spec"]["volumes"][0]["secret"]["defaultMode"], 256);
        assert_eq!(v["spec"]["script"], "mode: 0644\nyes\n", "text stays text");
    }

    #[test]
    fn not_numbers_stay_strings() {
        for s in ["08", "0x", "_1", "1__", "0b2", "-", "+"] {
            assert!(yaml11(s).is_none() || s == "1__", "{s}");
        }
        assert_eq!(yaml11("1__"), Some(json!(1)));
    }
}
