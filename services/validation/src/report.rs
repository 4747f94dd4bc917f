//! Reporting a validation: one verdict per resource and every finding, as text for people,
//! JSON for tools, and GitHub workflow annotations. Secret values never appear: findings carry
//! rules, positions and messages, never field values.

use std::collections::BTreeSet;

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

impl Report {
    /// Builds the report; a resource is invalid when a finding names it.
    pub fn new(files: usize, manifests: &[Manifest], findings: Vec<Finding>) -> Self {
        let invalid: BTreeSet<(String, u32)> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error && f.object.is_some())
            .filter_map(|f| Some((f.file.clone()?, f.line?)))
            .collect();
        let resources = manifests
            .iter()
            .map(|m| Resource {
                file: m.file.clone(),
                line: m.line,
                api_version: m.reference.api_version.clone(),
                kind: m.reference.kind.clone(),
                namespace: m.reference.namespace.clone(),
                name: m.reference.name.clone(),
                valid: !invalid.contains(&(m.file.clone(), m.line)),
            })
            .collect();
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

    fn summary(&self) -> String {
        let invalid = self.resources.iter().filter(|r| !r.valid).count();
        let errors = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && f.object.is_none())
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

    fn text(&self, summary_only: bool) -> String {
        let mut out = String::new();
        if !summary_only {
            for r in &self.resources {
                let verdict = if r.valid {
                    "is valid".to_string()
                } else {
                    format!("is invalid: {}", self.reasons(r))
                };
                out.push_str(&format!("{} - {} {} {verdict}\n", r.file, r.kind, r.name));
            }
            for f in self.findings.iter().filter(|f| f.object.is_none()) {
                out.push_str(&format!(
                    "{} - {}: {} [{}]\n",
                    position(f),
                    level(f),
                    f.message,
                    f.rule
                ));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn reasons(&self, r: &Resource) -> String {
        self.findings
            .iter()
            .filter(|f| {
                f.file.as_deref() == Some(r.file.as_str())
                    && f.line == Some(r.line)
                    && f.object.is_some()
            })
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// One test case per resource (failed when invalid) and per file-level finding.
    fn junit(&self) -> String {
        let file_level: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.object.is_none() && f.severity == Severity::Error)
            .collect();
        let failures = self.resources.iter().filter(|r| !r.valid).count();
        let tests = self.resources.len() + file_level.len();
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"configsync validate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\">\n  <testsuite name=\"configsync validate\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\">\n",
            file_level.len(),
            file_level.len()
        );
        for r in &self.resources {
            let name = xml(&format!("{} {}", r.kind, r.name));
            if r.valid {
                out.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{name}\"/>\n",
                    xml(&r.file)
                ));
            } else {
                let reasons = xml(&self.reasons(r));
                out.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{name}\">\n      <failure message=\"{reasons}\" type=\"invalid\">{reasons}</failure>\n    </testcase>\n",
                    xml(&r.file)
                ));
            }
        }
        for f in file_level {
            let file = xml(f.file.as_deref().unwrap_or("-"));
            out.push_str(&format!(
                "    <testcase classname=\"{file}\" name=\"{}\">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>\n",
                xml(&position(f)),
                xml(&f.message),
                xml(&f.rule),
                xml(&f.message)
            ));
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    /// The SARIF 2.1.0 log: one result per finding, with its rule and location.
    fn sarif(&self) -> serde_json::Value {
        let rules: BTreeSet<&str> = self.findings.iter().map(|f| f.rule.as_str()).collect();
        let results: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut region = serde_json::Map::new();
                if let Some(l) = f.line {
                    region.insert("startLine".into(), l.into());
                }
                if let Some(c) = f.column {
                    region.insert("startColumn".into(), c.into());
                }
                let mut location = serde_json::json!({"physicalLocation": {"artifactLocation": {"uri": f.file.clone().unwrap_or_default()}}});
                if !region.is_empty() {
                    location["physicalLocation"]["region"] = serde_json::Value::Object(region);
                }
                serde_json::json!({"ruleId": f.rule, "level": level(f), "message": {"text": f.message}, "locations": [location]})
            })
            .collect();
        serde_json::json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {"name": "configsync validate", "version": env!("CARGO_PKG_VERSION"), "rules": rules.iter().map(|r| serde_json::json!({"id": r})).collect::<Vec<_>>()}},
                "results": results,
            }]
        })
    }

    fn github(&self) -> String {
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
            out.push_str(&format!(
                "::{} {}::{}\n",
                level(f),
                props.join(","),
                escape_data(&f.message)
            ));
        }
        out.push_str(&format!(
            "::notice title=configsync validate::{}\n",
            escape_data(&self.summary())
        ));
        out
    }
}

fn level(f: &Finding) -> &'static str {
    match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn position(f: &Finding) -> String {
    match (&f.file, f.line, f.column) {
        (Some(file), Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(file), Some(l), None) => format!("{file}:{l}"),
        (Some(file), None, _) => file.clone(),
        _ => "-".into(),
    }
}

/// XML attribute and text escaping.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
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
        assert!(text.contains("b.yaml:2:1 - error: invalid YAML"), "{text}");
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
            && x["locations"][0]["physicalLocation"]["region"]["startLine"] == 2));
    }

    #[test]
    fn github_annotations_are_escaped_and_json_parses() {
        let r = report(&[("dir,with:odd.yaml", "kind: [x\n")]);
        let gh = r.render(Format::Github, false);
        assert!(
            gh.starts_with(
                "::error file=dir%2Cwith%3Aodd.yaml,line=2,col=1,title=yaml.syntax::invalid YAML"
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
}
