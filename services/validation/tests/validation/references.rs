//! Reference checks on the fixtures in `tests/fixtures/references/` (one valid and one invalid
//! file per check), `--assume-exists` entries, the shared corpus and a 10k-object run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use configsync_core::event::{Finding, Severity};
use configsync_validation::manifests::{self, Limits, Manifest};
use configsync_validation::references::{self, External};
use configsync_validation::sources;
use serde_json::json;

fn fixture(name: &str) -> Vec<Manifest> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/references")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let loaded = manifests::load(&[(name.to_string(), bytes)], Limits::default());
    assert!(loaded.findings.is_empty(), "{name}: {:?}", loaded.findings);
    loaded.manifests
}

fn check(name: &str, external: &[&str]) -> Vec<Finding> {
    let external = External::parse(external.iter().copied()).unwrap();
    references::check(&fixture(name), &external)
}

/// (rule, object name, path) of each finding.
fn summary(findings: &[Finding]) -> Vec<(String, String, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f.rule.clone(),
                f.object
                    .as_ref()
                    .map(|o| o.name.clone())
                    .unwrap_or_default(),
                f.path.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn expect(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(r, n, p)| (r.to_string(), n.to_string(), p.to_string()))
        .collect()
}

#[test]
fn valid_fixtures_have_no_findings() {
    for check_name in [
        "configmap",
        "secret",
        "serviceaccount",
        "pvc",
        "service-selector",
        "ingress-backend",
        "role",
        "hpa-target",
        "namespace",
    ] {
        let name = format!("{check_name}-valid.yaml");
        let findings = check(&name, &[]);
        assert!(findings.is_empty(), "{name}: {findings:#?}");
    }
    assert!(
        check("optional.yaml", &[]).is_empty(),
        "optional references may be absent"
    );
}

#[test]
fn configmap_references_must_resolve_in_the_same_namespace() {
    let findings = check("configmap-invalid.yaml", &[]);
    let p = ".spec.template.spec";
    assert_eq!(
        summary(&findings),
        expect(&[
            (
                "reference.configmap",
                "web",
                &format!("{p}.volumes[0].configMap.name")
            ),
            (
                "reference.configmap",
                "web",
                &format!("{p}.containers[0].env[0].valueFrom.configMapKeyRef.name")
            ),
        ])
    );
    let f = &findings[0];
    assert_eq!(
        (f.file.as_deref(), f.line, f.severity),
        (Some("configmap-invalid.yaml"), Some(8), Severity::Error)
    );
    assert!(
        f.message.contains("ConfigMap settings") && f.message.contains("namespace default"),
        "{}",
        f.message
    );
}

#[test]
fn secret_references_must_resolve_and_values_stay_hidden() {
    let findings = check("secret-invalid.yaml", &[]);
    let p = ".spec.jobTemplate.spec.template.spec";
    assert_eq!(
        summary(&findings),
        expect(&[
            (
                "reference.secret",
                "report",
                &format!("{p}.volumes[0].secret.secretName")
            ),
            (
                "reference.secret",
                "report",
                &format!("{p}.containers[0].envFrom[0].secretRef.name")
            ),
            (
                "reference.secret",
                "report",
                &format!("{p}.imagePullSecrets[0].name")
            ),
        ])
    );
    assert!(findings.iter().all(|f| !f.message.contains("s3cr3t-value")));
}

#[test]
fn service_account_references_must_resolve() {
    assert_eq!(
        summary(&check("serviceaccount-invalid.yaml", &[])),
        expect(&[
            (
                "reference.serviceaccount",
                "build",
                ".spec.serviceAccountName"
            ),
            (
                "reference.serviceaccount",
                "agent",
                ".spec.template.spec.serviceAccount"
            ),
        ])
    );
}

#[test]
fn claim_references_must_resolve() {
    assert_eq!(
        summary(&check("pvc-invalid.yaml", &[])),
        expect(&[(
            "reference.pvc",
            "files",
            ".spec.template.spec.volumes[0].persistentVolumeClaim.claimName"
        )])
    );
}

#[test]
fn a_selector_matching_no_pods_is_a_warning() {
    let findings = check("service-selector-invalid.yaml", &[]);
    assert_eq!(
        summary(&findings),
        expect(&[("reference.service-selector", "web", ".spec.selector")])
    );
    assert_eq!(findings[0].severity, Severity::Warning);
}

#[test]
fn ingress_backends_need_the_service_and_its_port() {
    let findings = check("ingress-backend-invalid.yaml", &[]);
    assert_eq!(
        summary(&findings),
        expect(&[
            (
                "reference.ingress-backend",
                "web",
                ".spec.defaultBackend.service.port.number"
            ),
            (
                "reference.ingress-backend",
                "web",
                ".spec.rules[0].http.paths[0].backend.service.port.name"
            ),
            (
                "reference.ingress-backend",
                "web",
                ".spec.rules[0].http.paths[1].backend.service.name"
            ),
        ])
    );
    assert!(
        findings[0].message.contains("port 8080") && findings[0].message.contains("http=80"),
        "{}",
        findings[0].message
    );
}

#[test]
fn role_refs_need_the_role() {
    assert_eq!(
        summary(&check("role-invalid.yaml", &[])),
        expect(&[
            ("reference.role", "reader", ".roleRef.name"),
            ("reference.role", "readers", ".roleRef.name"),
        ])
    );
}

#[test]
fn autoscalers_need_their_target() {
    assert_eq!(
        summary(&check("hpa-target-invalid.yaml", &[])),
        expect(&[
            ("reference.hpa-target", "web", ".spec.scaleTargetRef.name"),
            ("reference.hpa-target", "api", ".spec.scaleTargetRef.name"),
        ])
    );
}

#[test]
fn namespaces_must_exist() {
    assert_eq!(
        summary(&check("namespace-invalid.yaml", &[])),
        expect(&[
            ("reference.namespace", "orphan", ".metadata.namespace"),
            ("reference.namespace", "g", ".metadata.namespace"),
            ("reference.namespace", "t", ".metadata.namespace"),
        ])
    );
    // Assumed namespaces: by name, or implied by an entry in them.
    assert!(check("namespace-invalid.yaml", &["ns/shop", "ConfigMap/lab/*"]).is_empty());
}

#[test]
fn assume_exists_covers_every_syntax() {
    let all = [
        "sa/shop/web",                // Kind/namespace/name, short kind
        "Secret/shop/*",              // Kind/namespace/*
        "configmap/shop/settings",    // lowercase kind
        "ClusterRole/ingress-reader", // Kind/name, cluster-scoped
        "svc/shop/shared-gateway",    // an Ingress backend, whose ports are then unknown
        "ServiceAccount/tools",       // Kind/name, namespaced, the target's default namespace
        "ns/ops",                     // Namespace/name
    ];
    assert!(check("assume-exists.yaml", &all).is_empty());
    assert!(
        check(
            "assume-exists.yaml",
            &["ns/shop", "ns/ops", "Secret/shop/*"]
        )
        .len()
            > 1
    );
    // Without each entry, exactly what it covered comes back.
    let expected = [
        (
            "reference.serviceaccount",
            ".spec.template.spec.serviceAccountName",
        ),
        (
            "reference.secret",
            ".spec.template.spec.volumes[0].secret.secretName",
        ),
        (
            "reference.configmap",
            ".spec.template.spec.volumes[1].configMap.name",
        ),
        ("reference.role", ".roleRef.name"),
        (
            "reference.ingress-backend",
            ".spec.defaultBackend.service.name",
        ),
        ("reference.serviceaccount", ".spec.serviceAccountName"),
        ("reference.namespace", ".metadata.namespace"),
    ];
    for (i, (rule, path)) in expected.iter().enumerate() {
        let rest: Vec<&str> = all
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, e)| *e)
            .collect();
        let findings = check("assume-exists.yaml", &rest);
        let got: Vec<(&str, &str)> = findings
            .iter()
            .map(|f| (f.rule.as_str(), f.path.as_deref().unwrap()))
            .collect();
        // Without the wildcard both pull secret and volume secret are missing.
        if all[i] == "Secret/shop/*" {
            assert_eq!(got.len(), 2, "{got:?}");
            assert!(got.contains(&(rule, path)), "{got:?}");
        } else {
            assert_eq!(got, [(*rule, *path)], "without {}", all[i]);
        }
    }
}

#[test]
fn bad_assume_exists_entries_are_refused_with_a_message() {
    let err = External::parse(["Secret/shop/tls", "Secret"]).unwrap_err();
    assert!(
        err.to_string().contains("`Secret`") && err.to_string().contains("Kind/namespace/name"),
        "{err}"
    );
}

/// The shared corpus next to the workspace, or where `CONFIGSYNC_CORPUS` says (a worktree
/// elsewhere).
fn load_corpus(root: &Path, path: &str) -> Vec<Manifest> {
    let sources = sources::read(root, &[PathBuf::from(path)], 8 * 1024 * 1024);
    assert!(sources.findings.is_empty(), "{:?}", sources.findings);
    let limits = Limits {
        max_file_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let loaded = manifests::load(&sources.files, limits);
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    loaded.manifests
}

#[test]
#[cfg_attr(
    not(has_corpus),
    ignore = "no shared corpus at ../shared/corpus (or CONFIGSYNC_CORPUS)"
)]
fn microservices_demo_references_all_resolve() {
    let root =
        configsync_prereq::require_corpus("microservices-demo/release/kubernetes-manifests.yaml");
    let manifests = load_corpus(
        &root,
        "microservices-demo/release/kubernetes-manifests.yaml",
    );
    let findings = references::check(&manifests, &External::default());
    println!(
        "microservices-demo: {} objects, findings: {:#?}",
        manifests.len(),
        summary(&findings)
    );
    assert!(manifests.len() > 30);
    assert!(findings.is_empty());
    // The checks do look: without its ServiceAccounts every Deployment but one is reported.
    let without: Vec<Manifest> = manifests
        .into_iter()
        .filter(|m| m.reference.kind != "ServiceAccount")
        .collect();
    let findings = references::check(&without, &External::default());
    assert!(findings.len() >= 10, "{:#?}", summary(&findings));
    assert!(
        findings
            .iter()
            .all(|f| f.rule == "reference.serviceaccount")
    );
}

#[test]
#[cfg_attr(
    not(has_corpus),
    ignore = "no shared corpus at ../shared/corpus (or CONFIGSYNC_CORPUS)"
)]
fn kube_prometheus_references_all_resolve() {
    let root = configsync_prereq::require_corpus("kube-prometheus/manifests");
    // `setup/` holds the CRDs and the `monitoring` Namespace the rest needs.
    let manifests = load_corpus(&root, "kube-prometheus/manifests");
    let findings = references::check(&manifests, &External::default());
    println!(
        "kube-prometheus: {} objects, findings: {:#?}",
        manifests.len(),
        summary(&findings)
    );
    assert!(manifests.len() > 80);
    assert!(findings.is_empty());
    // The checks do look: without its Namespace and grafana's configuration Secret.
    let without: Vec<Manifest> = manifests
        .into_iter()
        .filter(|m| {
            !matches!(
                (m.reference.kind.as_str(), m.reference.name.as_str()),
                ("Namespace", "monitoring") | ("Secret", "grafana-config")
            )
        })
        .collect();
    let findings = references::check(&without, &External::default());
    let secrets: Vec<_> = findings
        .iter()
        .filter(|f| f.rule == "reference.secret")
        .collect();
    assert_eq!(secrets.len(), 1, "{:#?}", summary(&findings));
    assert!(
        findings
            .iter()
            .filter(|f| f.rule == "reference.namespace")
            .count()
            > 50
    );
}

#[test]
fn ten_thousand_objects_take_milliseconds() {
    // One namespace, so that a check comparing every object with every other would show.
    let mut manifests = Vec::new();
    let mut push = |object: serde_json::Value| {
        let reference = configsync_core::event::ObjectRef {
            api_version: object["apiVersion"].as_str().unwrap().into(),
            kind: object["kind"].as_str().unwrap().into(),
            namespace: Some("load".into()),
            name: object["metadata"]["name"].as_str().unwrap().into(),
        };
        manifests.push(Manifest {
            file: "gen.yaml".into(),
            line: 1,
            object,
            reference,
        });
    };
    let meta = |name: &str| json!({ "name": name, "namespace": "load" });
    for i in 0..2_000 {
        let app = format!("app-{i}");
        push(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&app) }));
        push(json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(&app) }));
        push(
            json!({ "apiVersion": "v1", "kind": "Service", "metadata": meta(&app),
            "spec": { "selector": { "app": app, "part-of": "load" }, "ports": [{ "port": 80 }] } }),
        );
        push(
            json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(&app),
            "spec": { "template": { "metadata": { "labels": { "app": app, "part-of": "load" } }, "spec": {
                "serviceAccountName": app,
                "volumes": [{ "name": "c", "configMap": { "name": app } }],
                "containers": [{ "name": "c", "envFrom": [{ "secretRef": { "name": format!("missing-{i}") } }] }]
            } } } }),
        );
        push(
            json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta(&app),
            "spec": { "defaultBackend": { "service": { "name": app, "port": { "number": 80 } } } } }),
        );
    }
    let external = External::parse(["ns/load"]).unwrap();
    let start = Instant::now();
    let findings = references::check(&manifests, &external);
    let elapsed = start.elapsed();
    println!(
        "references::check on {} objects: {elapsed:?}",
        manifests.len()
    );
    assert_eq!(manifests.len(), 10_000);
    assert_eq!(findings.len(), 2_000, "one missing Secret per Deployment");
    assert!(findings.iter().all(|f| f.rule == "reference.secret"));
    // Generous for a debug build on a busy machine; a quadratic pass takes seconds.
    assert!(elapsed.as_millis() < 1_000, "{elapsed:?}");
}

/// `kube-root-ca.crt` is published in every namespace by Kubernetes itself.
#[test]
fn the_root_ca_configmap_always_exists() {
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w, namespace: default}\nspec:\n  selector: {matchLabels: {app: w}}\n  template:\n    metadata: {labels: {app: w}}\n    spec:\n      containers: [{name: w, image: w:1}]\n      volumes:\n      - {name: ca, configMap: {name: kube-root-ca.crt}}\n      - {name: other, configMap: {name: missing}}\n";
    let loaded = manifests::load(
        &[("w.yaml".to_string(), yaml.as_bytes().to_vec())],
        Limits::default(),
    );
    let findings = references::check(&loaded.manifests, &External::default());
    let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(findings.len(), 1, "{messages:?}");
    assert!(messages[0].contains("missing"), "{messages:?}");
}
