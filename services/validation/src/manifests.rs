//! Loading plain manifests: YAML (multi-document) and JSON files become Kubernetes objects,
//! with a finding (file, line, column) for everything that is not a well-formed object.
//! Pure: no I/O, so every rule is unit-tested.

use std::collections::BTreeMap;

use configsync_core::event::{Finding, ObjectRef, Severity};
use serde::de::DeserializeSeed;
use serde_json::Value;

use crate::decode::StrictValue;
use crate::{nesting, yaml11};

/// Limits that keep hostile input from exhausting the validator.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest manifest file.
    pub max_file_bytes: usize,
    /// Most documents in one file.
    pub max_documents: usize,
    /// Duplicate keys in a mapping are errors, as in kubectl's strict decoding (`--no-strict`
    /// turns this off: the last key wins).
    pub strict_keys: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 4 * 1024 * 1024,
            max_documents: 5_000,
            strict_keys: true,
        }
    }
}

/// One object loaded from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub file: String,
    /// Line where its document starts (1-based).
    pub line: u32,
    pub object: Value,
    pub reference: ObjectRef,
}

impl Manifest {
    /// A finding about this object: its file, the line where it starts, and its reference.
    pub fn finding(
        &self,
        severity: Severity,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            severity,
            object: Some(self.reference.clone()),
            ..Finding::file_error(rule, self.file.clone(), Some(self.line), message)
        }
    }
}

/// What loading one environment's files produced.
#[derive(Debug, Default)]
pub struct Loaded {
    pub manifests: Vec<Manifest>,
    pub findings: Vec<Finding>,
}

impl Loaded {
    /// Whether any finding blocks the change.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Whether a path is a manifest file this loader reads.
pub fn is_manifest(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

fn finding(
    rule: &str,
    file: &str,
    line: Option<u32>,
    column: Option<u32>,
    message: impl Into<String>,
) -> Finding {
    Finding {
        column,
        ..Finding::file_error(rule, file, line, message)
    }
}

/// Loads every manifest file in `files` (path relative to the repository root, bytes), in
/// path order. All findings are reported; loading never stops at the first.
pub fn load(files: &[(String, Vec<u8>)], limits: Limits) -> Loaded {
    load_with_rendered(files, &[], limits)
}

/// [`load`], plus the output of renderers (named after their kustomization or chart, YAML
/// whatever the name, already capped in size by the renderer), so that an object defined
/// both in a plain file and in a rendered source is found twice.
pub fn load_with_rendered(
    files: &[(String, Vec<u8>)],
    rendered: &[(String, Vec<u8>)],
    limits: Limits,
) -> Loaded {
    let mut loaded = Loaded::default();
    let mut sorted: Vec<&(String, Vec<u8>)> =
        files.iter().filter(|(p, _)| is_manifest(p)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, bytes) in sorted {
        let json = path.to_ascii_lowercase().ends_with(".json");
        load_file(path, bytes, json, limits, &mut loaded);
    }
    let unlimited = Limits {
        max_file_bytes: usize::MAX,
        ..limits
    };
    for (name, yaml) in rendered {
        load_file(name, yaml, false, unlimited, &mut loaded);
    }
    check_duplicates(&mut loaded);
    loaded
}

fn load_file(path: &str, bytes: &[u8], json: bool, limits: Limits, out: &mut Loaded) {
    if bytes.len() > limits.max_file_bytes {
        out.findings.push(finding(
            "file.too-large",
            path,
            None,
            None,
            format!(
                "file is {} bytes, over the limit of {}",
                bytes.len(),
                limits.max_file_bytes
            ),
        ));
        return;
    }
    // A byte order mark, which editors on Windows write and kubectl ignores.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        out.findings.push(finding(
            "file.encoding",
            path,
            None,
            None,
            "file is not UTF-8 text",
        ));
        return;
    };
    if json {
        let mut json = serde_json::Deserializer::from_str(text);
        let decoded = StrictValue {
            strict: limits.strict_keys,
        }
        .deserialize(&mut json)
        .and_then(|value| json.end().map(|()| value));
        match decoded {
            Ok(value) => add_object(path, 1, value, out),
            Err(e) => out.findings.push(finding(
                "json.syntax",
                path,
                Some(e.line() as u32),
                Some(e.column() as u32),
                format!("invalid JSON: {}", strip_position(&e.to_string())),
            )),
        }
        return;
    }
    let documents = split_documents(text);
    if documents.len() > limits.max_documents {
        out.findings.push(finding(
            "yaml.too-many-documents",
            path,
            None,
            None,
            format!(
                "{} documents, over the limit of {}",
                documents.len(),
                limits.max_documents
            ),
        ));
        return;
    }
    for (start_line, doc) in documents {
        // Before any parser: libyaml scans a whole document before serde_yaml's own depth
        // limit applies, in time that grows with the depth (see `nesting`).
        if let Err(deep) = nesting::check(doc, nesting::MAX_DEPTH) {
            out.findings.push(finding(
                "yaml.syntax",
                path,
                Some(start_line + deep.line - 1),
                Some(deep.column),
                format!("invalid YAML: {deep}"),
            ));
            continue;
        }
        let seed = StrictValue {
            strict: limits.strict_keys,
        };
        let mut stream = serde_yaml::Deserializer::from_str(doc);
        let first = stream.next().map(|d| seed.deserialize(d));
        if first.as_ref().is_some_and(Result::is_ok) && stream.next().is_some() {
            // The piece holds a second document behind a marker the splitter does not
            // know (`--- !tag`, `---{`): say so rather than drop it.
            out.findings.push(finding(
                "yaml.syntax",
                path,
                Some(start_line),
                None,
                "a second document starts inside this one behind an unusual `---` marker; put `---` on a line of its own",
            ));
        }
        match first {
            None => {}
            Some(Ok(Value::Null)) => {}
            Some(Ok(mut value)) => {
                yaml11::apply(doc, &mut value);
                add_object(path, start_line, value, out)
            }
            Some(Err(e)) => {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line() as u32, l.column() as u32))
                    .unwrap_or((1, 1));
                // An error found at the end of input (an unclosed bracket) is reported past
                // the document's last line, on the next `---`: keep it inside the document.
                let body = doc.trim_end_matches(['\n', '\r']);
                let last = body.lines().count().max(1) as u32;
                let (line, column) = if line > last {
                    let end = body.lines().last().map_or(0, |l| l.chars().count()) as u32;
                    (last, end + 1)
                } else {
                    (line, column)
                };
                out.findings.push(finding(
                    "yaml.syntax",
                    path,
                    Some(start_line + line - 1),
                    Some(column),
                    format!("invalid YAML: {}", strip_position(&e.to_string())),
                ));
            }
        }
    }
}

/// Splits a YAML stream at `---` lines into (first line number, text). Document markers at
/// the start of a line always end the previous document in YAML, so a line split is exact.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u32;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end_matches(['\r', '\n']);
        // `---` alone, or followed by blanks or a comment (as kubectl's splitter accepts), or
        // followed by content after a blank (`--- value`), which stays in the new document.
        let after = trimmed.strip_prefix("---");
        let rest = after.map(str::trim_start);
        let is_marker =
            trimmed == "..." || after.is_some_and(|a| a.is_empty() || a.starts_with([' ', '\t']));
        if is_marker {
            if offset > start {
                docs.push((start_line, &text[start..offset]));
            }
            let inline = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('#'));
            let content_start = if inline {
                offset + (trimmed.len() - rest.unwrap_or_default().len())
            } else {
                offset + line.len()
            };
            start = content_start;
            start_line = i as u32 + if inline { 1 } else { 2 };
        }
        offset += line.len();
    }
    if text.len() > start {
        docs.push((start_line, &text[start..]));
    }
    docs
}

/// serde's messages end with "at line X column Y", which the finding already carries.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn add_object(path: &str, line: u32, value: Value, out: &mut Loaded) {
    let Value::Object(map) = &value else {
        out.findings.push(finding(
            "object.shape",
            path,
            Some(line),
            None,
            "document is not a mapping (a Kubernetes object)",
        ));
        return;
    };
    // A `List` (or a typed list such as `RoleBindingList`, which kubectl accepts too)
    // contributes its items.
    let is_list = map
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && map.contains_key("items");
    if is_list {
        match map.get("items") {
            Some(Value::Array(items)) => {
                for item in items.clone() {
                    add_object(path, line, item, out);
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => out.findings.push(finding(
                "object.shape",
                path,
                Some(line),
                None,
                "List items must be a sequence",
            )),
        }
        return;
    }
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let api_version = text(map.get("apiVersion"));
    let kind = text(map.get("kind"));
    let metadata = map.get("metadata").and_then(Value::as_object);
    let name = text(metadata.and_then(|m| m.get("name")));
    let namespace = text(metadata.and_then(|m| m.get("namespace")));
    let mut missing = Vec::new();
    if api_version.is_none() {
        missing.push("apiVersion");
    }
    if kind.is_none() {
        missing.push("kind");
    }
    if name.is_none() {
        missing.push("metadata.name");
    }
    if name.is_none()
        && missing.len() == 1
        && text(metadata.and_then(|m| m.get("generateName"))).is_some()
    {
        let mut f = finding(
            "object.generate-name",
            path,
            Some(line),
            None,
            "metadata.generateName without metadata.name: ConfigSync applies objects by name \
             (server-side apply), and a generated name would create a new object on every \
             apply; set metadata.name",
        );
        f.path = Some(".metadata.generateName".into());
        out.findings.push(f);
        return;
    }
    let (Some(api_version), Some(kind), Some(name)) = (api_version, kind, name) else {
        let mut f = finding(
            "object.shape",
            path,
            Some(line),
            None,
            format!(
                "object is missing {} (required to apply it)",
                missing.join(", ")
            ),
        );
        f.path = Some(format!(".{}", missing[0]));
        out.findings.push(f);
        return;
    };
    let reference = ObjectRef {
        api_version,
        kind,
        namespace,
        name,
    };
    out.manifests.push(Manifest {
        file: path.into(),
        line,
        object: value,
        reference,
    });
}

/// The same object (group, kind, namespace, name) defined twice is an error: which one would
/// win is an accident of file order.
fn check_duplicates(out: &mut Loaded) {
    /// Group, kind, namespace, name: what identifies an object in a cluster.
    type Identity = (String, String, Option<String>, String);
    let mut seen: BTreeMap<Identity, (String, u32)> = BTreeMap::new();
    for m in &out.manifests {
        let group = m
            .reference
            .api_version
            .split_once('/')
            .map(|(g, _)| g.to_string())
            .unwrap_or_default();
        let key = (
            group,
            m.reference.kind.clone(),
            m.reference.namespace.clone(),
            m.reference.name.clone(),
        );
        if let Some((file, line)) = seen.get(&key) {
            let mut f = finding(
                "object.duplicate",
                &m.file,
                Some(m.line),
                None,
                format!(
                    "{} {} is also defined at {file}:{line}",
                    m.reference.kind, m.reference.name
                ),
            );
            f.object = Some(m.reference.clone());
            out.findings.push(f);
        } else {
            seen.insert(key, (m.file.clone(), m.line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn multi_document_files_and_json_load_with_their_lines() {
        let loaded = load(
            &files(&[
                (
                    "configs/dev/web/a.yaml",
                    "# comment only\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: two\n  namespace: web\n",
                ),
                (
                    "configs/dev/web/b.json",
                    r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}"#,
                ),
                ("configs/dev/web/README.md", "not a manifest"),
            ]),
            Limits::default(),
        );
        assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
        let names: Vec<_> = loaded
            .manifests
            .iter()
            .map(|m| (m.reference.name.as_str(), m.line))
            .collect();
        assert_eq!(names, [("one", 3), ("two", 9), ("web", 1)]);
        assert_eq!(
            loaded.manifests[1].reference.namespace.as_deref(),
            Some("web")
        );
    }

    #[test]
    fn broken_yaml_gets_file_line_and_column() {
        let loaded = load(
            &files(&[(
                "configs/dev/a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\napiVersion: v1\nkind: [unclosed\n",
            )]),
            Limits::default(),
        );
        assert_eq!(loaded.manifests.len(), 1, "the good document still loads");
        let f = &loaded.findings[0];
        assert_eq!(f.rule, "yaml.syntax");
        assert_eq!(f.file.as_deref(), Some("configs/dev/a.yaml"));
        assert!(
            f.line.unwrap() >= 7,
            "line is in the second document: {f:?}"
        );
        assert!(f.column.is_some());
    }

    #[test]
    fn shape_errors_name_what_is_missing() {
        let loaded = load(
            &files(&[
                ("x.yaml", "kind: ConfigMap\nmetadata: {}\n"),
                ("y.yaml", "- just\n- a list\n"),
            ]),
            Limits::default(),
        );
        assert_eq!(loaded.findings.len(), 2);
        assert!(
            loaded.findings[0]
                .message
                .contains("apiVersion, metadata.name"),
            "{:?}",
            loaded.findings[0]
        );
        assert_eq!(loaded.findings[1].rule, "object.shape");
        assert!(loaded.has_errors());
    }

    #[test]
    fn typed_lists_expand_too() {
        let list = r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleList","items":[{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r","namespace":"a"}}]}"#;
        let loaded = load(&files(&[("l.json", list)]), Limits::default());
        assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
        assert_eq!(loaded.manifests[0].reference.kind, "Role");
    }

    #[test]
    fn lists_expand_and_duplicates_are_reported() {
        let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}]}"#;
        let loaded = load(&files(&[("l.json", list)]), Limits::default());
        assert_eq!(loaded.manifests.len(), 2);
        assert_eq!(loaded.findings.len(), 1);
        assert_eq!(loaded.findings[0].rule, "object.duplicate");
    }

    #[test]
    fn hostile_files_become_findings() {
        let bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
        let big = "a".repeat(Limits::default().max_file_bytes + 1);
        let loaded = load(
            &[
                ("bomb.yaml".to_string(), bomb.as_bytes().to_vec()),
                ("big.yaml".to_string(), big.into_bytes()),
                ("bin.yaml".to_string(), vec![0xff, 0xfe, 0x00, 0x01]),
            ],
            Limits::default(),
        );
        let rules: Vec<_> = loaded.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(
            rules,
            ["file.too-large", "file.encoding", "yaml.syntax"],
            "{:?}",
            loaded.findings
        );
        assert!(loaded.manifests.is_empty());
    }

    #[test]
    fn deep_nesting_duplicate_keys_and_control_characters_are_findings() {
        let deep_yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {}1{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let deep_json = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let dup = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n  name: second\n";
        let many = "---\na: 1\n".repeat(Limits::default().max_documents + 1);
        let input = files(&[
            ("deep.yaml", deep_yaml.as_str()),
            ("deep.json", deep_json.as_str()),
            ("dup.yaml", dup),
            ("nul.yaml", "apiVersion: v1\u{0}\n"),
            ("many.yaml", many.as_str()),
        ]);
        let loaded = load(&input, Limits::default());
        let rules: Vec<_> = loaded
            .findings
            .iter()
            .map(|f| (f.file.as_deref().unwrap(), f.rule.as_str()))
            .collect();
        assert_eq!(
            rules,
            [
                ("deep.json", "json.syntax"),
                ("deep.yaml", "yaml.syntax"),
                ("dup.yaml", "yaml.syntax"),
                ("many.yaml", "yaml.too-many-documents"),
                ("nul.yaml", "yaml.syntax"),
            ],
            "{:?}",
            loaded.findings
        );
        let dup = &loaded.findings[2];
        assert!(dup.message.contains("duplicate key `name`"), "{dup:?}");
        assert_eq!(dup.line, Some(4), "where the mapping holding it starts");
        assert!(
            loaded.findings[1].message.contains("recursion limit"),
            "{:?}",
            loaded.findings[1]
        );

        let lax = Limits {
            strict_keys: false,
            ..Limits::default()
        };
        let loaded = load(&files(&[("dup.yaml", dup_text())]), lax);
        assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
        assert_eq!(
            loaded.manifests[0].reference.name, "second",
            "the last key wins"
        );
    }

    fn dup_text() -> &'static str {
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n  name: second\n"
    }

    #[test]
    fn markers_with_blanks_or_comments_a_bom_and_unusual_markers() {
        let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n");
        let text = format!("{}---\t\n{}--- # next\n{}", cm("a"), cm("b"), cm("c"));
        let bom = format!("\u{feff}{}", cm("d"));
        let odd = format!("{}--- !!map\n{}", cm("e"), cm("f"));
        let loaded = load(
            &files(&[
                ("a.yaml", &text),
                ("b.yaml", &bom),
                (
                    "c.json",
                    "\u{feff}{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"g\"}}",
                ),
            ]),
            Limits::default(),
        );
        let names: Vec<_> = loaded
            .manifests
            .iter()
            .map(|m| m.reference.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d", "g"], "{:?}", loaded.findings);
        assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
        let loaded = load(&files(&[("odd.yaml", &odd)]), Limits::default());
        assert!(
            loaded.findings.iter().any(|f| f.rule == "yaml.syntax") || loaded.manifests.len() == 2,
            "the second document is found or reported, never dropped: {:?} {:?}",
            loaded.findings,
            loaded.manifests
        );
    }
}
