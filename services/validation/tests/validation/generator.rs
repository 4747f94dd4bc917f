//! tools/gen-manifests.py, the benchmark's corpus generator: its files are well-formed
//! manifests (the injected problems are semantic, never syntax), it writes exactly the objects
//! asked for, expected.json points at real objects, and a seed always gives the same corpus.

use std::path::{Path, PathBuf};
use std::process::Command;

use configsync_validation::manifests::{Limits, load};

fn generate(out: &Path, objects: u32, seed: u32) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/gen-manifests.py");
    let run = Command::new("python3")
        .arg(script)
        .args([
            "--objects",
            &objects.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .arg("--out")
        .arg(out)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).unwrap()
}

/// Every file under `dir`, relative to `base`, with its bytes, in path order.
fn read_tree(base: &Path, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn generated_manifests_load_cleanly_and_match_expected_json() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(dir.path(), 200, 7);
    assert!(
        summary.starts_with("gen-manifests: 200 objects in 4 files"),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 1, "{summary}");

    let files = read_tree(dir.path(), &dir.path().join("manifests"));
    assert_eq!(files.len(), 4);
    assert!(files.iter().all(|(p, _)| p.ends_with(".yaml")));
    let loaded = load(&files, Limits::default());
    assert!(loaded.findings.is_empty(), "{:#?}", loaded.findings);
    assert_eq!(loaded.manifests.len(), 200);

    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected["objects"], 200);
    assert_eq!(expected["files"], 4);
    let kinds: u64 = expected["kinds"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(kinds, 200);
    for kind in [
        "Namespace",
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
    ] {
        assert!(expected["kinds"][kind].as_u64().unwrap() > 0, "no {kind}");
    }

    let problems: u64 = expected["problems"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    let injected = expected["injected"].as_array().unwrap();
    assert_eq!(problems as usize, injected.len());
    assert_eq!(expected["objectsWithProblems"], problems);
    // About 10% of the objects carry a problem.
    assert!((8..=40).contains(&problems), "{problems} problems");
    for entry in injected {
        let object = loaded
            .manifests
            .iter()
            .find(|m| {
                m.file == entry["file"]
                    && u64::from(m.line) == entry["line"].as_u64().unwrap()
                    && m.reference.kind == entry["kind"]
                    && m.reference.name == entry["name"]
            })
            .unwrap_or_else(|| panic!("no object for {entry}"));
        if entry["problem"] == "latest-image" {
            let spec = &object.object["spec"];
            let pod = match object.reference.kind.as_str() {
                "CronJob" => &spec["jobTemplate"]["spec"]["template"]["spec"],
                _ => &spec["template"]["spec"],
            };
            let image = &pod["containers"][0]["image"];
            assert!(image.as_str().unwrap().ends_with(":latest"), "{image}");
        }
    }
}

#[test]
fn a_seed_always_gives_the_same_corpus() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(a.path(), 120, 3);
    generate(b.path(), 120, 3);
    generate(c.path(), 120, 4);
    let tree = |d: &Path| read_tree(d, &d.join("manifests"));
    assert_eq!(tree(a.path()), tree(b.path()));
    assert_ne!(tree(a.path()), tree(c.path()));
    assert_eq!(
        std::fs::read(a.path().join("expected.json")).unwrap(),
        std::fs::read(b.path().join("expected.json")).unwrap()
    );
}

/// The engine finds every problem the generator injected, as the rule meant for it, and no
/// other error: the benchmark's corpus doubles as a check for false positives and negatives.
#[test]
fn the_engine_finds_exactly_the_injected_problems() {
    use configsync_core::event::Severity;
    use configsync_validation::engine::{Checker, Options};
    use std::collections::BTreeSet;

    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 600, 3);
    let files = read_tree(dir.path(), &dir.path().join("manifests"));
    let loaded = load(&files, Limits::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    let checker = Checker::new(Options::default(), &[]).unwrap();
    let findings = checker.check(&loaded.manifests, &[]);

    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("expected.json")).unwrap()).unwrap();
    let rule_for = |problem: &str| match problem {
        "unknown-field" => "schema.unknown-field",
        "bad-quantity" => "schema.quantity",
        "latest-image" => "baseline.image-tag",
        "missing-configmap" => "reference.configmap",
        other => panic!("a problem the test does not know: {other}"),
    };
    let wanted: BTreeSet<(String, String, String, String)> = expected["injected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                rule_for(p["problem"].as_str().unwrap()).to_string(),
                p["kind"].as_str().unwrap().to_string(),
                p["namespace"].as_str().unwrap_or_default().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let found: BTreeSet<(String, String, String, String)> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| {
            let o = f.object.as_ref().expect("every error names its object");
            (
                f.rule.clone(),
                o.kind.clone(),
                o.namespace.clone().unwrap_or_default(),
                o.name.clone(),
            )
        })
        .collect();
    assert!(!wanted.is_empty());
    let missed: Vec<_> = wanted.difference(&found).collect();
    let extra: Vec<_> = found.difference(&wanted).collect();
    assert!(missed.is_empty(), "not found: {missed:?}");
    assert!(extra.is_empty(), "false positives: {extra:?}");
}
