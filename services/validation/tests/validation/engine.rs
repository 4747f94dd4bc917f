//! The whole pipeline on a fixture checkout (`tests/fixtures/engine`): blank and comment-only
//! files, a multi-document file with one bad document, missing apiVersion or kind, null arrays
//! and strings, and generateName.

use std::path::{Path, PathBuf};

use configsync_validation::engine::{self, Checker, Options};

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine")
}

#[test]
fn every_finding_of_a_mixed_checkout_and_nothing_else() {
    let checker = Checker::new(Options::default(), &[]).unwrap();
    let outcome = engine::validate_checkout(
        &checker,
        &fixture_root(),
        &[PathBuf::from("configs/dev")],
        &[],
        None,
    );
    let mut found: Vec<(String, String, Option<u32>)> = outcome
        .findings
        .iter()
        .filter(|f| f.severity == configsync_core::event::Severity::Error)
        .map(|f| {
            let file = f.file.clone().unwrap_or_default();
            let file = file.rsplit('/').next().unwrap().to_string();
            (file, f.rule.clone(), f.line)
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                "generate.yaml".to_string(),
                "object.generate-name".to_string(),
                Some(1)
            ),
            ("missing.yaml".into(), "object.shape".into(), Some(1)),
            ("missing.yaml".into(), "object.shape".into(), Some(5)),
            ("multi.yaml".into(), "yaml.syntax".into(), Some(9)),
        ],
        "{:#?}",
        outcome.findings
    );
    let names: Vec<&str> = outcome
        .manifests
        .iter()
        .map(|m| m.reference.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["migrate", "first", "third"],
        "blank and comment-only files hold no objects; the good documents around a bad one \
         load; the Job with null arrays and strings is valid"
    );
    assert!(
        outcome
            .findings
            .iter()
            .all(|f| f.file.as_deref() != Some("configs/dev/job.yaml")
                || f.severity == configsync_core::event::Severity::Warning),
        "{:#?}",
        outcome.findings
    );
    let generate = outcome
        .findings
        .iter()
        .find(|f| f.rule == "object.generate-name")
        .unwrap();
    assert!(
        generate.message.contains("set metadata.name"),
        "{generate:?}"
    );
    let missing: Vec<&str> = outcome
        .findings
        .iter()
        .filter(|f| f.rule == "object.shape")
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        missing[0].contains("kind") && missing[1].contains("apiVersion"),
        "{missing:?}"
    );
}

/// YAML 1.1 scalars read as kubectl reads them: an unquoted `0400` is a number (valid for
/// defaultMode), an unquoted `on` a boolean (invalid as a label value, as kubectl says).
#[test]
fn yaml_1_1_numbers_and_booleans_are_read_as_kubectl_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: default\n  labels: {app: p, enabled: on, quoted: 'on'}\nspec:\n  containers: [{name: c, image: 'c:1'}]\n  volumes:\n  - name: s\n    secret: {secretName: s, defaultMode: 0400, optional: true}\n",
    )
    .unwrap();
    let checker = Checker::new(Options::default(), &[]).unwrap();
    let outcome = engine::validate_checkout(&checker, dir.path(), &[PathBuf::from(".")], &[], None);
    let errors: Vec<(&str, &str)> = outcome
        .findings
        .iter()
        .filter(|f| f.severity == configsync_core::event::Severity::Error)
        .map(|f| (f.rule.as_str(), f.path.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        errors,
        [("schema.type", ".metadata.labels.enabled")],
        "{:#?}",
        outcome.findings
    );
    assert_eq!(
        outcome.manifests[0].object["spec"]["volumes"][0]["secret"]["defaultMode"], 256,
        "the object applied carries the number"
    );
}

/// The rules of `configsync.io/depends-on` findings in a checkout of `files`.
fn order_rules(files: &[(&str, &str)]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join("configs/dev").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let checker = Checker::new(Options::default(), &[]).unwrap();
    let outcome = engine::validate_checkout(
        &checker,
        dir.path(),
        &[PathBuf::from("configs/dev")],
        &[],
        None,
    );
    outcome
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("order."))
        .map(|f| (f.rule.clone(), f.message.clone()))
        .collect()
}

fn config_map(name: &str, depends_on: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    configsync.io/depends-on: {depends_on}\n  labels:\n    app.kubernetes.io/name: {name}\ndata:\n  k: v\n"
    )
}

#[test]
fn a_dependency_cycle_or_on_nothing_is_a_finding_not_a_runtime_hang() {
    let cycle = order_rules(&[
        ("a.yaml", &config_map("a", "ConfigMap/b")),
        ("b.yaml", &config_map("b", "ConfigMap/default/a")),
    ]);
    assert_eq!(cycle.len(), 1, "{cycle:?}");
    assert_eq!(cycle[0].0, "order.cycle");
    assert!(cycle[0].1.contains("ConfigMap/default/a") && cycle[0].1.contains("->"));

    let unknown = order_rules(&[("a.yaml", &config_map("a", "Secret/missing"))]);
    assert_eq!(unknown[0].0, "order.unknown-dependency", "{unknown:?}");
    assert!(unknown[0].1.contains("Secret/missing"));

    let fine = order_rules(&[
        ("a.yaml", &config_map("a", "ConfigMap/b")),
        ("b.yaml", &config_map("b", "ConfigMap/c")),
        (
            "c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: default\n  labels:\n    app.kubernetes.io/name: c\ndata:\n  k: v\n",
        ),
    ]);
    assert!(fine.is_empty(), "{fine:?}");
}

/// 200,000 nested collections (400 KB) in a manifest and in a kustomization are refused by
/// the nesting limit in well under a second, on the validator's path (files held in memory,
/// `validate_files`) and on `configsync validate`'s (`validate_checkout`). libyaml used to scan
/// the whole document first, in time growing with the depth: minutes for the flow case.
#[test]
fn two_hundred_thousand_nested_collections_are_refused_at_once() {
    const N: usize = 200_000;
    let flow = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {}1{}\n",
        "[".repeat(N),
        "]".repeat(N)
    );
    let block_mappings = format!("{}x\n", "? ".repeat(N));
    let block_sequences = format!("{}x\n", "- ".repeat(N));
    let kustomization = format!("resources: {}\n", "{a: ".repeat(N));
    let checker = Checker::new(Options::default(), &[]).unwrap();
    for (name, text) in [
        ("flow.yaml", &flow),
        ("mappings.yaml", &block_mappings),
        ("sequences.yaml", &block_sequences),
        ("kust/kustomization.yaml", &kustomization),
    ] {
        let path = format!("configs/dev/{name}");
        let files = vec![(path.clone(), text.clone().into_bytes())];
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(&path).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(&path), text).unwrap();
        for service in [true, false] {
            let start = std::time::Instant::now();
            let outcome = if service {
                engine::validate_files(&checker, &files, &[PathBuf::from("configs/dev")], None)
                    .unwrap()
            } else {
                engine::validate_checkout(
                    &checker,
                    dir.path(),
                    &[PathBuf::from("configs/dev")],
                    &[],
                    None,
                )
            };
            let elapsed = start.elapsed();
            assert!(
                elapsed < std::time::Duration::from_secs(2),
                "{name} (service: {service}) took {elapsed:?}"
            );
            let deep: Vec<_> = outcome
                .findings
                .iter()
                .filter(|f| f.message.contains("nested more than 128 levels"))
                .collect();
            assert_eq!(deep.len(), 1, "{name}: {:#?}", outcome.findings);
            assert!(deep[0].file.as_deref().unwrap().ends_with(name), "{deep:?}");
            assert!(outcome.manifests.is_empty());
        }
    }
}
