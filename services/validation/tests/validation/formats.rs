//! Each output format of `configsync validate` parses with a real consumer: SARIF against the
//! OASIS 2.1.0 JSON Schema, JUnit against Jenkins' junit-10.xsd (both through
//! tools/check-report-formats.py, which needs Python's jsonschema and lxml — tools/test.sh
//! installs them), JSON with serde, GitHub annotations as one workflow command a line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use configsync_core::event::{Finding, ObjectRef, Severity};
use configsync_validation::manifests::{Limits, load};
use configsync_validation::report::{Format, Report};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the checker on the given files; `kind` is `--sarif` or `--junit`.
fn check(files: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tools/check-report-formats.py"));
    for (kind, path) in files {
        cmd.arg(kind).arg(path);
    }
    let out = cmd.output().expect("python3 runs");
    assert_ne!(
        out.status.code(),
        Some(2),
        "the checker could not run (python3 -m pip install 'jsonschema>=4' lxml): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
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

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n";
const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\n";

/// Valid and invalid resources, warnings, findings with and without file and line, and
/// messages full of characters that XML, JSON, URIs and workflow commands treat specially.
fn mixed_report() -> Report {
    let files = vec![
        (
            "envs/prod/app.yaml".to_string(),
            format!("{DEPLOYMENT}---\n{CONFIG_MAP}").into_bytes(),
        ),
        (
            "envs/prod/odd name: ünïcode,#1.yaml".to_string(),
            CONFIG_MAP.replace("settings", "other").into_bytes(),
        ),
        ("envs/prod/broken.yaml".to_string(), b"kind: [x\n".to_vec()),
    ];
    let loaded = load(&files, Limits::default());
    assert_eq!(loaded.manifests.len(), 3);
    let deployment: ObjectRef = loaded.manifests[0].reference.clone();
    let odd: ObjectRef = loaded.manifests[2].reference.clone();
    let mut findings = loaded.findings;

    let mut unknown = finding(
        Severity::Error,
        "schema.unknown-field",
        "unknown field \"replicaz\" in <Deployment> & \"spec\" — did you mean 'replicas'?\nsee: https://k8s.io/docs?a=1&b=2 100% ✓",
    );
    unknown.file = Some("envs/prod/app.yaml".into());
    unknown.line = Some(7);
    unknown.column = Some(3);
    unknown.object = Some(deployment.clone());
    unknown.path = Some(".spec.replicaz".into());
    findings.push(unknown);

    let mut latest = finding(
        Severity::Warning,
        "policy.image-latest",
        "image \"nginx:latest\" uses the :latest tag\r\n(pin a digest)\t\u{1b}[0m",
    );
    latest.file = Some("envs/prod/app.yaml".into());
    latest.line = Some(1);
    latest.object = Some(deployment);
    findings.push(latest);

    let mut odd_warning = finding(Severity::Warning, "policy.labels", "no app label: <none>");
    odd_warning.file = Some("envs/prod/odd name: ünïcode,#1.yaml".into());
    odd_warning.line = Some(1);
    odd_warning.object = Some(odd.clone());
    findings.push(odd_warning);

    // An object with no file (e.g. a rendered Helm release) and a finding with no position.
    let mut no_file = finding(
        Severity::Error,
        "reference.missing-configmap",
        "ConfigMap \"gone\" is referenced but not defined",
    );
    no_file.object = Some(odd);
    no_file.column = Some(4);
    findings.push(no_file);
    findings.push(finding(
        Severity::Error,
        "environment.empty",
        "environment 'prod' & <staging> have no manifests",
    ));
    let mut file_only = finding(Severity::Warning, "file.encoding", "BOM at start of file");
    file_only.file = Some("envs/prod/app.yaml".into());
    file_only.column = Some(2);
    findings.push(file_only);

    Report::new(files.len(), &loaded.manifests, findings)
}

#[test]
fn sarif_and_junit_validate_against_their_consumers_schemas() {
    let report = mixed_report();
    assert!(!report.valid);
    let dir = tempfile::tempdir().unwrap();
    let sarif = dir.path().join("report.sarif");
    let junit = dir.path().join("report.xml");
    std::fs::write(&sarif, report.render(Format::Sarif, false)).unwrap();
    std::fs::write(&junit, report.render(Format::Junit, false)).unwrap();

    let out = check(&[("--sarif", &sarif), ("--junit", &junit)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 file(s), 0 violation(s)"), "{stdout}");

    // What the consumers read back is what was found.
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    let unknown = results
        .iter()
        .find(|r| r["ruleId"] == "schema.unknown-field")
        .unwrap();
    assert_eq!(
        unknown["message"]["text"],
        report
            .findings
            .iter()
            .find(|f| f.rule == "schema.unknown-field")
            .unwrap()
            .message
    );
    assert_eq!(
        unknown["locations"][0]["physicalLocation"]["region"]["startLine"],
        7
    );
    assert_eq!(
        unknown["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "apps/v1/Deployment/shop/web"
    );
    let odd = results
        .iter()
        .find(|r| r["ruleId"] == "policy.labels")
        .unwrap();
    assert_eq!(
        odd["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "envs/prod/odd%20name%3A%20%C3%BCn%C3%AFcode%2C%231.yaml"
    );
    let env = results
        .iter()
        .find(|r| r["ruleId"] == "environment.empty")
        .unwrap();
    assert!(env.get("locations").is_none(), "{env}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="configsync validate" tests="5" failures="2" errors="2">"#),
        "{xml}"
    );
    assert!(
        xml.contains("unknown field &quot;replicaz&quot; in &lt;Deployment&gt; &amp;"),
        "{xml}"
    );
    assert!(
        xml.contains("did you mean &apos;replicas&apos;?&#10;see"),
        "{xml}"
    );
    assert!(xml.contains("(pin a digest)&#9;\u{fffd}[0m"), "{xml}");
}

#[test]
fn the_checker_rejects_what_consumers_reject() {
    let dir = tempfile::tempdir().unwrap();
    let report = mixed_report();
    let mut log: serde_json::Value =
        serde_json::from_str(&report.render(Format::Sarif, false)).unwrap();
    let result = &mut log["runs"][0]["results"][0];
    result["level"] = "fatal".into();
    // A raw space in a URI, and a region with a column but no line: what report.rs used to write.
    result["locations"] = serde_json::json!([{"physicalLocation": {
        "artifactLocation": {"uri": "envs/odd name.yaml"},
        "region": {"startColumn": 3}
    }}]);
    log["runs"][0]["tool"]["driver"]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let sarif = dir.path().join("broken.sarif");
    std::fs::write(&sarif, serde_json::to_string(&log).unwrap()).unwrap();

    let junit = dir.path().join("broken.xml");
    let xml = report
        .render(Format::Junit, false)
        .replacen("<testcase classname=", "<testcase nom=\"x\" classname=", 1)
        .replacen(" name=\"configsync validate\" tests=", " tests=", 2);
    std::fs::write(&junit, xml).unwrap();
    let malformed = dir.path().join("malformed.xml");
    std::fs::write(
        &malformed,
        "<testsuites><testsuite name=\"a & b\"></testsuites>",
    )
    .unwrap();

    let out = check(&[
        ("--sarif", &sarif),
        ("--junit", &junit),
        ("--junit", &malformed),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expected in [
        "'fatal' is not one of",
        "'name' is a required property",
        "is not a 'uri-reference'",
        "$.runs[0].results[0].locations[0].physicalLocation.region",
        "attribute 'nom' is not allowed",
        "attribute 'name' is required but missing",
        "malformed.xml: not well-formed XML",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn json_parses_and_github_annotations_are_one_command_a_line() {
    let report = mixed_report();
    let json: serde_json::Value =
        serde_json::from_str(&report.render(Format::Json, false)).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(
        json["findings"].as_array().unwrap().len(),
        report.findings.len()
    );
    assert_eq!(json["resources"].as_array().unwrap().len(), 3);

    let gh = report.render(Format::Github, false);
    let lines: Vec<&str> = gh.lines().collect();
    assert_eq!(lines.len(), report.findings.len() + 1, "{gh}");
    for line in &lines {
        let (command, rest) = line[2..].split_once(' ').unwrap();
        assert!(["error", "warning", "notice"].contains(&command), "{line}");
        let (props, _message) = rest.split_once("::").unwrap();
        for prop in props.split(',') {
            let (key, value) = prop.split_once('=').unwrap();
            assert!(["file", "line", "col", "title"].contains(&key), "{line}");
            assert!(!value.contains([':', ',', '\r', '\n']), "{line}");
        }
    }
    assert!(
        gh.contains("::warning file=envs/prod/odd name%3A ünïcode%2C#1.yaml,line=1,title=policy.labels::ConfigMap other: no app label: <none>\n"),
        "{gh}"
    );
    assert!(
        gh.contains("uses the :latest tag%0D%0A(pin a digest)"),
        "{gh}"
    );
    assert!(gh.contains("100%25 ✓"), "{gh}");
}

#[test]
fn text_keeps_one_verdict_line_per_resource() {
    let text = mixed_report().render(Format::Text, false);
    assert!(
        text.contains("envs/prod/app.yaml - Deployment web is invalid: unknown field"),
        "{text}"
    );
    assert!(
        text.contains("envs/prod/app.yaml - ConfigMap settings is valid\n"),
        "{text}"
    );
    assert!(
        text.contains("envs/prod/odd name: ünïcode,#1.yaml - ConfigMap other is invalid: ConfigMap \"gone\" is referenced but not defined\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "- - error: environment 'prod' & <staging> have no manifests [environment.empty]"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "Summary: 3 resources found in 3 files - Valid: 1, Invalid: 2, Errors: 2, Warnings: 3\n"
        ),
        "{text}"
    );
}
