//! Reporting a validation: one verdict per resource and every finding, as text for people,
//! JSON for tools, GitHub workflow annotations, JUnit XML and SARIF. Secret values never
//! appear: findings carry rules, positions and messages, never field values.
//!
//! Each output is checked against what reads it: SARIF against the OASIS 2.1.0 schema, JUnit
//! against Jenkins' junit-10.xsd (tests/validation/formats.rs runs
//! tools/check-report-formats.py), GitHub annotations against the workflow-command escaping.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use configsync_core::event::{Finding, Severity};
use serde::Serialize;

use crate::manifests::Manifest;

/// Output formats of `configsync validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Github,
    /// JUnit XML, which GitHub and GitLab test reports read.
    Junit,
    /// SARIF 2.1.0, which GitHub code scanning reads.
    Sarif,
}

/// A resource and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub file: String,
    pub line: u32,
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub valid: bool,
}

/// The whole validation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub valid: bool,
    pub files: usize,
    pub resources: Vec<Resource>,
    pub findings: Vec<Finding>,
}

/// Which resource each finding belongs to (`None`: a file-level finding, or one naming no
/// loaded resource).
struct Ownership {
    owner: Vec<Option<usize>>,
}

impl Ownership {
    /// A finding belongs to the resource of its file that it names; when a file defines the
    /// same object twice, to the definition that starts last at or before the finding's line
    /// (a finding may point inside the object, not only at its first line). A finding naming
    /// an object but no file belongs to its first definition; one naming no object, to the
    /// resource starting at its exact line, if any.
    fn of(resources: &[Resource], findings: &[Finding]) -> Self {
        type Key<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a str);
        let mut by_object: HashMap<Key, Vec<usize>> = HashMap::new();
        let mut by_line: HashMap<(&str, u32), usize> = HashMap::new();
        for (i, r) in resources.iter().enumerate() {
            let object = (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.namespace.as_deref(),
                r.name.as_str(),
            );
            by_object
                .entry((&r.file, object.0, object.1, object.2, object.3))
                .or_default()
                .push(i);
            // "" is no file: the first definition of the object anywhere.
            by_object
                .entry(("", object.0, object.1, object.2, object.3))
                .or_default()
                .push(i);
            by_line.entry((&r.file, r.line)).or_insert(i);
        }
        let owner = findings
            .iter()
            .map(|f| {
                let file = f.file.as_deref().unwrap_or("");
                let Some(o) = &f.object else {
                    return by_line.get(&(file, f.line?)).copied();
                };
                let key = (
                    file,
                    o.api_version.as_str(),
                    o.kind.as_str(),
                    o.namespace.as_deref(),
                    o.name.as_str(),
                );
                match by_object.get(&key) {
                    Some(candidates) if file.is_empty() => candidates.first().copied(),
                    Some(candidates) => {
                        let line = f.line.unwrap_or(0);
                        candidates
                            .iter()
                            .rev()
                            .find(|&&i| resources[i].line <= line)
                            .or(candidates.first())
                            .copied()
                    }
                    None => f.line.and_then(|l| by_line.get(&(file, l)).copied()),
                }
            })
            .collect();
        Self { owner }
    }

    /// The findings owned by resource `r`, in report order.
    fn of_resource<'a>(&self, findings: &'a [Finding], r: usize) -> Vec<&'a Finding> {
        findings
            .iter()
            .zip(&self.owner)
            .filter(|(_, o)| **o == Some(r))
            .map(|(f, _)| f)
            .collect()
    }

    /// Findings that belong to no resource.
    fn unowned<'a>(&self, findings: &'a [Finding]) -> Vec<&'a Finding> {
        findings
            .iter()
            .zip(&self.owner)
            .filter(|(_, o)| o.is_none())
            .map(|(f, _)| f)
            .collect()
    }
}

impl Report {
    /// Builds the report; a resource is invalid when a finding of error severity belongs to
    /// it (see `Ownership::of`).
    pub fn new(files: usize, manifests: &[Manifest], findings: Vec<Finding>) -> Self {
        let mut resources: Vec<Resource> = manifests
            .iter()
            .map(|m| Resource {
                file: m.file.clone(),
                line: m.line,
                api_version: m.reference.api_version.clone(),
                kind: m.reference.kind.clone(),
                namespace: m.reference.namespace.clone(),
                name: m.reference.name.clone(),
                valid: true,
            })
            .collect();
        let ownership = Ownership::of(&resources, &findings);
        for (f, owner) in findings.iter().zip(&ownership.owner) {
            if let (Severity::Error, Some(i)) = (f.severity, owner) {
                resources[*i].valid = false;
            }
        }
        let valid = !findings.iter().any(|f| f.severity == Severity::Error);
        Self {
            valid,
            files,
            resources,
            findings,
        }
    }

    /// The process exit code: 0 valid, 1 findings of error severity.
    pub fn exit_code(&self) -> u8 {
        if self.valid { 0 } else { 1 }
    }

    fn summary(&self, ownership: &Ownership) -> String {
        let invalid = self.resources.iter().filter(|r| !r.valid).count();
        let errors = ownership
            .unowned(&self.findings)
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let warnings = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count();
        format!(
            "Summary: {} resources found in {} files - Valid: {}, Invalid: {invalid}, Errors: {errors}, Warnings: {warnings}",
            self.resources.len(),
            self.files,
            self.resources.len() - invalid
        )
    }

    /// Renders the report; `summary_only` prints just the summary line (text).
    pub fn render(&self, format: Format, summary_only: bool) -> String {
        match format {
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            Format::Text => self.text(summary_only),
            Format::Github => self.github(),
            Format::Junit => self.junit(),
            Format::Sarif => serde_json::to_string_pretty(&self.sarif()).unwrap_or_default() + "\n",
        }
    }

    /// One `file - Kind name is valid|is invalid: reasons` line per resource, then a line for
    /// every finding that is not such a reason (warnings, file-level findings).
    fn text(&self, summary_only: bool) -> String {
        let ownership = Ownership::of(&self.resources, &self.findings);
        let mut out = String::new();
        if !summary_only {
            let mut others = ownership.unowned(&self.findings);
            for (i, r) in self.resources.iter().enumerate() {
                let owned = ownership.of_resource(&self.findings, i);
                let verdict = if r.valid {
                    "is valid".to_string()
                } else {
                    format!("is invalid: {}", reasons(&owned))
                };
                let _ = writeln!(out, "{} - {} {} {verdict}", r.file, r.kind, r.name);
                others.extend(
                    owned
                        .into_iter()
                        .filter(|f| f.severity == Severity::Warning),
                );
            }
            for f in others {
                let _ = writeln!(
                    out,
                    "{} - {}: {}{} [{}]",
                    position(f),
                    level(f),
                    subject(f),
                    f.message,
                    f.rule
                );
            }
        }
        out.push_str(&self.summary(&ownership));
        out.push('\n');
        out
    }

    /// One test case per resource (a failure when invalid, its warnings as system-out) and
    /// one per finding of error severity that belongs to no resource (an error).
    fn junit(&self) -> String {
        let ownership = Ownership::of(&self.resources, &self.findings);
        let unowned = ownership.unowned(&self.findings);
        let (file_errors, file_warnings): (Vec<&Finding>, Vec<&Finding>) = unowned
            .into_iter()
            .partition(|f| f.severity == Severity::Error);
        let failures = self.resources.iter().filter(|r| !r.valid).count();
        let tests = self.resources.len() + file_errors.len();
        let errors = file_errors.len();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"configsync validate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"configsync validate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
        );
        for (i, r) in self.resources.iter().enumerate() {
            let owned = ownership.of_resource(&self.findings, i);
            let warnings: Vec<&Finding> = owned
                .iter()
                .copied()
                .filter(|f| f.severity == Severity::Warning)
                .collect();
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&r.file),
                xml(&format!("{} {}", r.kind, r.name))
            );
            if r.valid && warnings.is_empty() {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            if !r.valid {
                let errors: Vec<&Finding> = owned
                    .iter()
                    .copied()
                    .filter(|f| f.severity == Severity::Error)
                    .collect();
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"invalid\">{}</failure>",
                    xml(&reasons(&owned)),
                    xml(&details(&errors))
                );
            }
            if !warnings.is_empty() {
                let _ = writeln!(
                    out,
                    "      <system-out>{}</system-out>",
                    xml(&details(&warnings))
                );
            }
            out.push_str("    </testcase>\n");
        }
        for f in file_errors {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>",
                xml(f.file.as_deref().unwrap_or("-")),
                xml(&position(f)),
                xml(&f.message),
                xml(&f.rule),
                xml(&details(&[f]))
            );
        }
        if !file_warnings.is_empty() {
            let _ = writeln!(
                out,
                "    <system-out>{}</system-out>",
                xml(&details(&file_warnings))
            );
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    /// The SARIF 2.1.0 log: one result per finding, with its rule and, where known, its file
    /// and region (physical location) and the object it names (logical location).
    fn sarif(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let rules: BTreeSet<&str> = self.findings.iter().map(|f| f.rule.as_str()).collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut location = serde_json::Map::new();
                if let Some(file) = f.file.as_deref().filter(|file| !file.is_empty()) {
                    let mut physical = json!({"artifactLocation": {"uri": uri_reference(file)}});
                    // A region needs its start line (SARIF's schema); lines and columns count from 1.
                    if let Some(line) = f.line.filter(|&l| l >= 1) {
                        let mut region = json!({"startLine": line});
                        if let Some(column) = f.column.filter(|&c| c >= 1) {
                            region["startColumn"] = column.into();
                        }
                        physical["region"] = region;
                    }
                    location.insert("physicalLocation".into(), physical);
                }
                if let Some(o) = &f.object {
                    let qualified = match &o.namespace {
                        Some(ns) => format!("{}/{}/{ns}/{}", o.api_version, o.kind, o.name),
                        None => format!("{}/{}/{}", o.api_version, o.kind, o.name),
                    };
                    location.insert(
                        "logicalLocations".into(),
                        json!([{"name": o.name, "fullyQualifiedName": qualified, "kind": "resource"}]),
                    );
                }
                let mut result = json!({"ruleId": f.rule, "level": level(f), "message": {"text": f.message}});
                if !location.is_empty() {
                    result["locations"] = json!([location]);
                }
                result
            })
            .collect();
        json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {"name": "configsync validate", "version": env!("CARGO_PKG_VERSION"), "rules": rules.iter().map(|r| json!({"id": r})).collect::<Vec<_>>()}},
                "results": results,
            }]
        })
    }

    /// One workflow command per finding, then the summary as a notice.
    fn github(&self) -> String {
        let ownership = Ownership::of(&self.resources, &self.findings);
        let mut out = String::new();
        for f in &self.findings {
            let mut props = Vec::new();
            if let Some(file) = &f.file {
                props.push(format!("file={}", escape_property(file)));
            }
            if let Some(line) = f.line {
                props.push(format!("line={line}"));
            }
            if let Some(col) = f.column {
                props.push(format!("col={col}"));
            }
            props.push(format!("title={}", escape_property(&f.rule)));
            let _ = writeln!(
                out,
                "::{} {}::{}{}",
                level(f),
                props.join(","),
                escape_data(&subject(f)),
                escape_data(&f.message)
            );
        }
        let _ = writeln!(
            out,
            "::notice title=configsync validate::{}",
            escape_data(&self.summary(&ownership))
        );
        out
    }
}

/// The messages of a resource's error findings, for its verdict.
fn reasons(owned: &[&Finding]) -> String {
    owned
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One `position [rule] message` line per finding, for JUnit bodies.
fn details(findings: &[&Finding]) -> String {
    findings
        .iter()
        .map(|f| format!("{} [{}] {}", position(f), f.rule, f.message))
        .collect::<Vec<_>>()
        .join("\n")
}

fn level(f: &Finding) -> &'static str {
    match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// `Kind name: ` when the finding names an object: a warning line is then readable alone.
fn subject(f: &Finding) -> String {
    f.object
        .as_ref()
        .map(|o| format!("{} {}: ", o.kind, o.name))
        .unwrap_or_default()
}

fn position(f: &Finding) -> String {
    match (&f.file, f.line, f.column) {
        (Some(file), Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(file), Some(l), None) => format!("{file}:{l}"),
        (Some(file), None, _) => file.clone(),
        _ => "-".into(),
    }
}

/// XML escaping for attribute values and text. Tabs and line breaks become character
/// references, which parsers keep in attributes (raw ones turn into spaces); characters that
/// XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) become U+FFFD.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A repository-relative path as an RFC 3986 relative reference (SARIF's `uri-reference`):
/// everything but unreserved characters and `/` is percent-encoded, so spaces, `%`, `#` or a
/// `:` (which would read as a scheme) and non-ASCII names survive.
fn uri_reference(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// GitHub's workflow-command escaping for the message part.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub's escaping for property values (also `:` and `,`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::{Limits, load};

    fn report(files: &[(&str, &str)]) -> Report {
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect();
        let loaded = load(&files, Limits::default());
        Report::new(files.len(), &loaded.manifests, loaded.findings)
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";

    #[test]
    fn text_names_each_resource_and_summarises() {
        let r = report(&[("a.yaml", CM), ("b.yaml", "kind: [x\n")]);
        let text = r.render(Format::Text, false);
        assert!(text.contains("a.yaml - ConfigMap a is valid"), "{text}");
        assert!(text.contains("b.yaml:1:9 - error: invalid YAML"), "{text}");
        assert!(text.ends_with("Summary: 1 resources found in 2 files - Valid: 1, Invalid: 0, Errors: 1, Warnings: 0\n"), "{text}");
        assert_eq!(r.exit_code(), 1);
        assert!(r.render(Format::Text, true).starts_with("Summary:"));
    }

    #[test]
    fn duplicates_make_the_second_resource_invalid() {
        let r = report(&[("a.yaml", &format!("{CM}---\n{CM}"))]);
        let text = r.render(Format::Text, false);
        assert!(
            text.contains("ConfigMap a is invalid: ConfigMap a is also defined at a.yaml:1"),
            "{text}"
        );
    }

    #[test]
    fn junit_and_sarif_carry_every_verdict() {
        let r = report(&[
            ("a.yaml", &format!("{CM}---\n{CM}")),
            ("b<&>.yaml", "kind: [x\n"),
        ]);
        let junit = r.render(Format::Junit, false);
        assert!(
            junit.contains(r#"tests="3" failures="1" errors="1""#),
            "{junit}"
        );
        assert!(junit.contains("b&lt;&amp;&gt;.yaml"), "{junit}");
        let sarif: serde_json::Value =
            serde_json::from_str(&r.render(Format::Sarif, false)).unwrap();
        assert_eq!(sarif["version"], "2.1.0");
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert!(results.iter().any(|x| x["ruleId"] == "yaml.syntax"
            && x["locations"][0]["physicalLocation"]["region"]["startLine"] == 1));
    }

    #[test]
    fn github_annotations_are_escaped_and_json_parses() {
        let r = report(&[("dir,with:odd.yaml", "kind: [x\n")]);
        let gh = r.render(Format::Github, false);
        assert!(
            gh.starts_with(
                "::error file=dir%2Cwith%3Aodd.yaml,line=1,col=9,title=yaml.syntax::invalid YAML"
            ),
            "{gh}"
        );
        assert!(
            gh.contains("::notice title=configsync validate::Summary"),
            "{gh}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json, false)).unwrap();
        assert_eq!(json["valid"], false);
        assert_eq!(r.exit_code(), 1);
        let ok = report(&[("a.yaml", CM)]);
        assert_eq!(ok.exit_code(), 0);
    }

    fn finding(severity: Severity, rule: &str, message: &str) -> Finding {
        Finding {
            severity,
            rule: rule.into(),
            message: message.into(),
            file: None,
            line: None,
            column: None,
            object: None,
            path: None,
        }
    }

    #[test]
    fn github_commands_follow_the_workflow_command_escaping() {
        let mut f = finding(
            Severity::Warning,
            "policy.x,y:z",
            "100% sure\r\nsecond line: a, b",
        );
        f.file = Some("dir,a:b/100%.yaml".into());
        f.line = Some(3);
        let r = Report::new(
            1,
            &[],
            vec![f, finding(Severity::Error, "env.x", "no file")],
        );
        let gh = r.render(Format::Github, false);
        let lines: Vec<&str> = gh.lines().collect();
        assert_eq!(
            lines,
            [
                "::warning file=dir%2Ca%3Ab/100%25.yaml,line=3,title=policy.x%2Cy%3Az::100%25 sure%0D%0Asecond line: a, b",
                "::error title=env.x::no file",
                "::notice title=configsync validate::Summary: 0 resources found in 1 files - Valid: 0, Invalid: 0, Errors: 1, Warnings: 1",
            ]
        );
    }

    #[test]
    fn a_finding_inside_an_object_makes_that_definition_invalid() {
        let two = format!("{CM}  namespace: x\n---\n{CM}");
        let loaded = load(
            &[("a.yaml".to_string(), two.into_bytes())],
            Limits::default(),
        );
        assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
        let mut inside_second = finding(Severity::Error, "schema.unknown-field", "bad field");
        inside_second.file = Some("a.yaml".into());
        inside_second.line = Some(9);
        inside_second.object = Some(loaded.manifests[1].reference.clone());
        let mut warning = finding(Severity::Warning, "policy.latest-tag", "uses :latest");
        warning.file = Some("a.yaml".into());
        warning.line = Some(2);
        warning.object = Some(loaded.manifests[0].reference.clone());
        let r = Report::new(1, &loaded.manifests, vec![inside_second, warning]);
        let valid: Vec<bool> = r.resources.iter().map(|r| r.valid).collect();
        assert_eq!(valid, [true, false]);
        let text = r.render(Format::Text, false);
        assert!(
            text.starts_with(
                "a.yaml - ConfigMap a is valid\na.yaml - ConfigMap a is invalid: bad field\na.yaml:2 - warning: ConfigMap a: uses :latest [policy.latest-tag]\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Invalid: 1, Errors: 0, Warnings: 1"),
            "{text}"
        );
    }

    #[test]
    fn xml_and_uri_escaping_keep_every_character_representable() {
        assert_eq!(
            xml("a<b>&\"'\tc\r\nd\u{1}\u{ffff}é"),
            "a&lt;b&gt;&amp;&quot;&apos;&#9;c&#13;&#10;d\u{fffd}\u{fffd}é"
        );
        assert_eq!(
            uri_reference("dir/a b:c%#é.yaml"),
            "dir/a%20b%3Ac%25%23%C3%A9.yaml"
        );
    }
}
