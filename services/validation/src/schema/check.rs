//! The walker: checks a JSON value against a compiled node and collects every problem with
//! its JSON path. The path is a stack of borrowed segments, turned into a string only when a
//! problem is reported, so a valid object costs no allocation per field.

use configsync_core::event::Severity;
use serde_json::Value;

use super::model::{Additional, Arena, Format, Kind, Limits, Node, NodeId, ObjectNode};
use super::quantity;

/// Deeper than this, the walker stops and says so (the YAML and JSON loaders stop at 128).
const MAX_DEPTH: usize = 160;

/// One problem, before it becomes a `Finding` (which adds the file, line and object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub severity: Severity,
    pub rule: &'static str,
    pub path: String,
    pub message: String,
}

/// One step of a path. Schema and value share one lifetime: a key comes from either (a
/// missing required field is named by the schema).
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(crate) struct Walker<'a> {
    arena: &'a Arena,
    object_meta: NodeId,
    strict: bool,
    path: Vec<Seg<'a>>,
    pub problems: Vec<Problem>,
}

impl<'a> Walker<'a> {
    pub fn new(arena: &'a Arena, object_meta: NodeId, strict: bool) -> Self {
        Self {
            arena,
            object_meta,
            strict,
            path: Vec::with_capacity(16),
            problems: Vec::new(),
        }
    }

    /// Checks `value` at `key` (a top-level field such as `metadata`) against `node`.
    pub fn walk_field(&mut self, key: &'a str, node: NodeId, value: &'a Value) {
        self.path.push(Seg::Key(key));
        self.walk(node, value);
        self.path.pop();
    }

    pub fn walk(&mut self, id: NodeId, value: &'a Value) {
        // The API server treats null as an absent field, wherever it is.
        if value.is_null() {
            return;
        }
        if self.path.len() > MAX_DEPTH {
            self.report(
                "schema.depth",
                format!("nested deeper than {MAX_DEPTH} levels; not checked further"),
            );
            return;
        }
        let node: &'a Node = self.arena.get(id);
        match &node.kind {
            Kind::Any => {}
            Kind::Object(object) => match value {
                Value::Object(map) => self.object(object, map),
                _ => self.wrong_type("object", value),
            },
            Kind::Array(items) => match value {
                Value::Array(list) => {
                    if let Some(items) = *items {
                        for (i, item) in list.iter().enumerate() {
                            self.path.push(Seg::Index(i));
                            self.walk(items, item);
                            self.path.pop();
                        }
                    }
                }
                _ => self.wrong_type("array", value),
            },
            Kind::String(format) => match value {
                Value::String(s) => self.format(*format, s),
                _ => self.wrong_type("string", value),
            },
            Kind::Integer { int32 } => match value {
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    let fits = n.as_i64().is_some_and(|i| i32::try_from(i).is_ok());
                    if *int32 && !fits {
                        self.report("schema.format", "integer out of the int32 range".into());
                    }
                }
                _ => self.wrong_type("integer", value),
            },
            Kind::Number => {
                if !value.is_number() {
                    self.wrong_type("number", value);
                }
            }
            Kind::Boolean => {
                if !value.is_boolean() {
                    self.wrong_type("boolean", value);
                }
            }
            Kind::IntOrString => match value {
                Value::String(_) => {}
                Value::Number(n) if n.is_i64() || n.is_u64() => {}
                _ => self.report(
                    "schema.int-or-string",
                    format!(
                        "expected an integer or a string (such as 8080 or \"http\"), got {}",
                        describe(value)
                    ),
                ),
            },
            Kind::Quantity => match value {
                Value::Number(_) => {}
                Value::String(s) if quantity::is_valid(s) => {}
                _ => self.report(
                    "schema.quantity",
                    format!(
                        "{} is not a quantity (such as 500m, 128Mi, 1.5Gi, 2 or 1e3)",
                        describe(value)
                    ),
                ),
            },
            Kind::Union(alternatives) => {
                let chosen = if alternatives.len() == 1 {
                    Some(alternatives[0])
                } else {
                    alternatives
                        .iter()
                        .copied()
                        .find(|&a| self.accepts_type(a, value))
                };
                match chosen {
                    Some(a) => self.walk(a, value),
                    None => {
                        let names: Vec<&str> =
                            alternatives.iter().map(|&a| self.type_name(a)).collect();
                        self.wrong_type(&names.join(" or "), value);
                    }
                }
            }
        }
        if let Some(limits) = &node.limits {
            self.limits(limits, value);
        }
        if let Some(allowed) = &node.enum_values
            && !allowed.contains(value)
        {
            let list: Vec<String> = allowed.iter().take(12).map(Value::to_string).collect();
            let more = if allowed.len() > 12 { ", …" } else { "" };
            self.report(
                "schema.enum",
                format!(
                    "unsupported value {}: must be one of {}{more}",
                    describe(value),
                    list.join(", ")
                ),
            );
        }
    }

    /// A CRD's bounds, lengths, item counts and pattern, on values of the matching type.
    fn limits(&mut self, limits: &Limits, value: &Value) {
        let mut problems = Vec::new();
        if let Some(n) = value.as_f64() {
            if let Some((min, exclusive)) = limits.minimum
                && (n < min || (exclusive && n == min))
            {
                let or_equal = if exclusive { "" } else { " or equal to" };
                problems.push(format!("{n} must be greater than{or_equal} {min}"));
            }
            if let Some((max, exclusive)) = limits.maximum
                && (n > max || (exclusive && n == max))
            {
                let or_equal = if exclusive { "" } else { " or equal to" };
                problems.push(format!("{n} must be less than{or_equal} {max}"));
            }
        }
        if let Some(text) = value.as_str() {
            let length = text.chars().count() as u64;
            counted(
                &mut problems,
                "characters",
                length,
                limits.min_length,
                limits.max_length,
            );
            if let Some(re) = &limits.pattern
                && !re.is_match(text)
            {
                // The value is not quoted: this check also sees Secret-like custom resources.
                problems.push(format!("does not match the pattern {}", re.as_str()));
            }
        }
        if let Some(items) = value.as_array() {
            let n = items.len() as u64;
            counted(
                &mut problems,
                "items",
                n,
                limits.min_items,
                limits.max_items,
            );
        }
        for message in problems {
            self.report("schema.limit", message);
        }
    }

    fn object(&mut self, object: &'a ObjectNode, map: &'a serde_json::Map<String, Value>) {
        for (key, value) in map {
            if let Some(prop) = object.property(key) {
                self.path.push(Seg::Key(key));
                self.walk(prop, value);
                self.path.pop();
                continue;
            }
            if object.embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                if key == "metadata" {
                    self.path.push(Seg::Key(key));
                    self.walk(self.object_meta, value);
                    self.path.pop();
                }
                continue;
            }
            match object.additional {
                Additional::Schema(node) => {
                    self.path.push(Seg::Key(key));
                    self.walk(node, value);
                    self.path.pop();
                }
                Additional::Any => {}
                Additional::Forbidden if object.preserve_unknown || !self.strict => {}
                Additional::Forbidden => {
                    self.path.push(Seg::Key(key));
                    let hint = suggestion(key, object)
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_default();
                    self.report(
                        "schema.unknown-field",
                        format!("unknown field \"{}\"{hint}", shorten(key)),
                    );
                    self.path.pop();
                }
            }
        }
        for name in &object.required {
            if map.get(&**name).is_none_or(Value::is_null) {
                self.path.push(Seg::Key(name));
                self.report(
                    "schema.required",
                    format!("required field \"{name}\" is missing"),
                );
                self.path.pop();
            }
        }
    }

    fn format(&mut self, format: Format, s: &str) {
        let (ok, what) = match format {
            Format::None => return,
            Format::DateTime => (is_date_time(s), "an RFC 3339 date-time"),
            Format::Byte => (is_base64(s), "base64"),
        };
        // The value is not quoted: this is where Secret data is checked.
        if !ok {
            self.report("schema.format", format!("value is not {what}"));
        }
    }

    /// Whether `value`'a JSON type is the one node `id` expects (for unions).
    fn accepts_type(&self, id: NodeId, value: &Value) -> bool {
        match &self.arena.get(id).kind {
            Kind::Any | Kind::Union(_) => true,
            Kind::Object(_) => value.is_object(),
            Kind::Array(_) => value.is_array(),
            Kind::String(_) => value.is_string(),
            Kind::Integer { .. } => value.is_i64() || value.is_u64(),
            Kind::Number => value.is_number(),
            Kind::Boolean => value.is_boolean(),
            Kind::IntOrString => value.is_string() || value.is_i64() || value.is_u64(),
            Kind::Quantity => value.is_string() || value.is_number(),
        }
    }

    fn type_name(&self, id: NodeId) -> &'static str {
        match &self.arena.get(id).kind {
            Kind::Any | Kind::Union(_) => "any",
            Kind::Object(_) => "object",
            Kind::Array(_) => "array",
            Kind::String(_) => "string",
            Kind::Integer { .. } => "integer",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
            Kind::IntOrString => "integer or string",
            Kind::Quantity => "quantity",
        }
    }

    fn wrong_type(&mut self, expected: &str, value: &Value) {
        let n = self.path.len();
        let meta_map = match self.path.get(n.saturating_sub(3)..) {
            Some(
                [
                    Seg::Key("metadata"),
                    Seg::Key(map @ ("labels" | "annotations")),
                    Seg::Key(k),
                ],
            ) => Some((*map, *k)),
            _ => None,
        };
        let message = match meta_map {
            // `enabled: true` under labels is the classic: YAML makes it a boolean.
            Some((map, key)) if expected == "string" => {
                let what = if map == "labels" {
                    "label"
                } else {
                    "annotation"
                };
                let quoted = match value {
                    Value::Bool(_) | Value::Number(_) => {
                        format!("; quote it in YAML: {key}: \"{value}\"")
                    }
                    _ => String::new(),
                };
                format!(
                    "{what} \"{key}\" must have a string value, got {}{quoted}",
                    type_of(value)
                )
            }
            _ => format!("expected {expected}, got {}", type_of(value)),
        };
        self.report("schema.type", message);
    }

    fn report(&mut self, rule: &'static str, message: String) {
        self.problems.push(Problem {
            severity: Severity::Error,
            rule,
            path: self.path_string(),
            message,
        });
    }

    fn path_string(&self) -> String {
        if self.path.is_empty() {
            return ".".into();
        }
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) if is_plain(k) && k.len() <= 64 => {
                    out.push('.');
                    out.push_str(k);
                }
                Seg::Key(k) => {
                    out.push('[');
                    out.push_str(&Value::from(shorten(k)).to_string());
                    out.push(']');
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

/// Keys written `.key` in a path; others (`app.kubernetes.io/name`) are written `["key"]`.
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A short description of a scalar for messages (`"1.5GB"`, `80.5`, `true`), or its type.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 64 => Value::from(s.as_str()).to_string(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        _ => type_of(value).into(),
    }
}

/// The declared field closest to a misspelt one (edit distance at most 2), if any.
fn suggestion<'o>(key: &str, object: &'o ObjectNode) -> Option<&'o str> {
    // Names further apart in length than the allowed distance cannot match: skipping them
    // keeps a hostile megabyte-long key from costing a megabyte per declared field.
    let len = key.chars().count();
    object
        .properties
        .iter()
        .filter(|(name, _)| name.chars().count().abs_diff(len) <= 2)
        .map(|(name, _)| (distance(key, name), &**name))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// A length or item count against its minimum and maximum.
fn counted(problems: &mut Vec<String>, what: &str, n: u64, min: Option<u64>, max: Option<u64>) {
    if let Some(m) = min.filter(|&m| n < m) {
        problems.push(format!("has {n} {what}, under the minimum of {m}"));
    }
    if let Some(m) = max.filter(|&m| n > m) {
        problems.push(format!("has {n} {what}, over the maximum of {m}"));
    }
}

/// A key as quoted in a message: at most 64 characters, so a hostile key cannot bloat the
/// report.
fn shorten(key: &str) -> String {
    match key.char_indices().nth(64) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_string(),
    }
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// RFC 3339 as Go'a `time.RFC3339` reads it: `2006-01-02T15:04:05[.frac](Z|±hh:mm)`.
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !(digits(0..4) && digits(5..7) && digits(8..10) && digits(11..13))
        || !(digits(14..16) && digits(17..19))
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// Standard base64 with padding, as Go'a `encoding/base64.StdEncoding` decodes `[]byte`
/// (which skips line breaks).
fn is_base64(s: &str) -> bool {
    let b: Vec<u8> = s.bytes().filter(|c| !matches!(c, b'\r' | b'\n')).collect();
    let b = b.as_slice();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let body = b
        .strip_suffix(b"==")
        .or_else(|| b.strip_suffix(b"="))
        .unwrap_or(b);
    body.iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(is_date_time("2024-01-02T03:04:05Z"));
        assert!(is_date_time("2024-01-02T03:04:05.123+02:00"));
        assert!(!is_date_time("2024-01-02 03:04:05Z"));
        assert!(!is_date_time("yesterday"));
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64(""));
        assert!(!is_base64("hello"));
        assert!(!is_base64("aGVs bG8="));
    }

    #[test]
    fn suggestions_need_a_close_name() {
        assert_eq!(distance("replicaz", "replicas"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(shorten(&"k".repeat(10)), "k".repeat(10));
        assert_eq!(shorten(&"é".repeat(100)), format!("{}…", "é".repeat(64)));
    }
}
