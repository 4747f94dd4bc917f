//! Schema validation against fixtures (tests/fixtures/schema) and the shared corpus.

use std::path::Path;
use std::time::Instant;

use configsync_core::event::{Finding, ObjectRef, Severity};
use configsync_validation::manifests::{self, Limits, Manifest};
use configsync_validation::schema::{KubeVersion, SchemaOptions, Schemas};
use serde_json::json;

const STRICT: SchemaOptions = SchemaOptions {
    strict: true,
    ignore_missing_schemas: false,
};

fn v(text: &str) -> KubeVersion {
    text.parse().unwrap()
}

fn fixture(name: &str) -> Vec<Manifest> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/schema")
        .join(name);
    let bytes = std::fs::read(&path).unwrap();
    let loaded = manifests::load(&[(name.to_string(), bytes)], Limits::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    loaded.manifests
}

/// Checks every manifest (after adding the CRDs among them); findings by object name.
fn check(manifests: &[Manifest], version: &str, options: SchemaOptions) -> Vec<Finding> {
    let mut schemas = Schemas::builtin(v(version)).unwrap();
    let mut findings = schemas.add_crds(manifests);
    for m in manifests {
        findings.extend(schemas.check(m, &options));
    }
    findings
}

fn of<'a>(findings: &'a [Finding], name: &str) -> Vec<(&'a str, &'a str)> {
    findings
        .iter()
        .filter(|f| f.object.as_ref().is_some_and(|o| o.name == name))
        .map(|f| (f.rule.as_str(), f.path.as_deref().unwrap_or("")))
        .collect()
}

fn message<'a>(findings: &'a [Finding], name: &str, path: &str) -> &'a str {
    findings
        .iter()
        .find(|f| {
            f.object.as_ref().is_some_and(|o| o.name == name) && f.path.as_deref() == Some(path)
        })
        .map(|f| f.message.as_str())
        .unwrap_or_else(|| panic!("no finding for {name} at {path}: {findings:#?}"))
}

#[test]
fn valid_objects_pass() {
    let findings = check(&fixture("valid.yaml"), "1.33", STRICT);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn unknown_fields_fail_when_strict_only() {
    let manifests = fixture("invalid.yaml");
    let strict = check(&manifests, "1.33", STRICT);
    assert_eq!(
        of(&strict, "typo"),
        [("schema.unknown-field", ".spec.replicaz")]
    );
    assert!(message(&strict, "typo", ".spec.replicaz").contains("did you mean \"replicas\""));
    let lax = check(
        &manifests,
        "1.33",
        SchemaOptions {
            strict: false,
            ignore_missing_schemas: false,
        },
    );
    assert!(of(&lax, "typo").is_empty(), "{lax:#?}");
    // Everything but unknown fields is still checked.
    assert_eq!(of(&lax, "types").len(), of(&strict, "types").len());
}

#[test]
fn wrong_types_are_all_reported_with_paths() {
    let findings = check(&fixture("invalid.yaml"), "1.33", STRICT);
    let mut got = of(&findings, "types");
    got.sort();
    assert_eq!(
        got,
        [
            ("schema.type", ".metadata.labels.enabled"),
            ("schema.type", ".spec.paused"),
            ("schema.type", ".spec.replicas"),
            (
                "schema.type",
                ".spec.template.spec.containers[0].env[0].value"
            ),
            ("schema.type", ".spec.template.spec.containers[0].ports"),
        ]
    );
    let label = message(&findings, "types", ".metadata.labels.enabled");
    assert!(
        label.contains("label \"enabled\" must have a string value, got boolean"),
        "{label}"
    );
    assert!(label.contains("enabled: \"true\""), "{label}");
    assert_eq!(
        message(&findings, "types", ".spec.replicas"),
        "expected integer, got string"
    );
    let f = findings
        .iter()
        .find(|f| f.path.as_deref() == Some(".spec.replicas"))
        .unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.file.as_deref(), Some("invalid.yaml"));
    assert_eq!(f.line, Some(20), "the line where the document starts");
}

#[test]
fn missing_required_fields() {
    let findings = check(&fixture("invalid.yaml"), "1.33", STRICT);
    let mut got = of(&findings, "required");
    got.sort();
    assert_eq!(
        got,
        [
            ("schema.required", ".spec.selector"),
            ("schema.required", ".spec.template")
        ]
    );
    assert_eq!(
        of(&findings, "nameless"),
        [("schema.required", ".spec.containers[0].name")]
    );
}

#[test]
fn int_or_string_and_quantities() {
    let findings = check(&fixture("invalid.yaml"), "1.33", STRICT);
    assert_eq!(
        of(&findings, "ports"),
        [
            ("schema.int-or-string", ".spec.ports[0].targetPort"),
            ("schema.int-or-string", ".spec.ports[1].targetPort"),
        ]
    );
    assert!(message(&findings, "ports", ".spec.ports[0].targetPort").contains("80.5"));
    let mut got = of(&findings, "quantities");
    got.sort();
    assert_eq!(
        got,
        [
            (
                "schema.quantity",
                ".spec.containers[0].resources.requests.cpu"
            ),
            (
                "schema.quantity",
                ".spec.containers[0].resources.requests.memory"
            ),
        ]
    );
    assert!(
        message(
            &findings,
            "quantities",
            ".spec.containers[0].resources.requests.memory"
        )
        .contains("\"1.5GB\"")
    );
}

fn manifest(object: serde_json::Value) -> Manifest {
    Manifest {
        file: "inline.yaml".into(),
        line: 1,
        reference: ObjectRef {
            api_version: object["apiVersion"].as_str().unwrap().into(),
            kind: object["kind"].as_str().unwrap().into(),
            namespace: None,
            name: object["metadata"]["name"].as_str().unwrap_or("").into(),
        },
        object,
    }
}

#[test]
fn metadata_needs_a_name_or_generate_name() {
    let schemas = Schemas::builtin(KubeVersion::newest()).unwrap();
    let generated = manifest(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "migrate-"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m"}]}}}}),
    );
    assert!(schemas.check(&generated, &STRICT).is_empty());
    let nameless = manifest(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": {"a": "b"}}}),
    );
    let findings = schemas.check(&nameless, &STRICT);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].path.as_deref(), Some(".metadata.name"));
    let no_meta = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": 5}));
    let findings = schemas.check(&no_meta, &STRICT);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].rule.as_str(), findings[0].path.as_deref()),
        ("schema.type", Some(".metadata"))
    );
}

#[test]
fn secret_values_never_appear_in_findings() {
    let schemas = Schemas::builtin(v("1.33")).unwrap();
    let secret = manifest(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "data": {"password": "hunter2-not-base64!", "n": 12345}, "stringData": {"token": 987654}}),
    );
    let findings = schemas.check(&secret, &STRICT);
    let rules: Vec<_> = findings
        .iter()
        .map(|f| (f.rule.as_str(), f.path.as_deref().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [
            ("schema.type", ".data.n"),
            ("schema.format", ".data.password"),
            ("schema.type", ".stringData.token")
        ]
    );
    for f in &findings {
        for secret in ["hunter2", "12345", "987654"] {
            assert!(!f.message.contains(secret), "{f:?}");
        }
    }
}

#[test]
fn crds_define_custom_resources() {
    let findings = check(&fixture("crd.yaml"), "1.33", STRICT);
    assert!(
        of(&findings, "widgets.example.com").is_empty(),
        "{findings:#?}"
    );
    assert!(of(&findings, "good").is_empty(), "{findings:#?}");
    let mut bad = of(&findings, "bad");
    bad.sort();
    assert_eq!(
        bad,
        [
            ("schema.enum", ".spec.color"),
            ("schema.int-or-string", ".spec.port"),
            ("schema.type", ".spec.labels.a"),
            ("schema.type", ".spec.size"),
            ("schema.type", ".spec.tags[0]"),
            ("schema.unknown-field", ".spec.colour"),
        ]
    );
    assert_eq!(
        message(&findings, "bad", ".spec.color"),
        "unsupported value \"blue\": must be one of \"red\", \"green\""
    );
    // Served: false versions have no schema, and the message says what is served.
    assert_eq!(
        of(&findings, "unserved"),
        [("schema.missing", ".apiVersion")]
    );
    assert!(message(&findings, "unserved", ".apiVersion").contains("example.com/v1"));
}

#[test]
fn custom_resources_metadata_is_object_meta() {
    let mut all = fixture("crd.yaml");
    all.push(manifest(
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "m", "labels": {"on": false}, "bogus": 1}, "spec": {"size": 1}}),
    ));
    let findings = check(&all, "1.33", STRICT);
    let mut got = of(&findings, "m");
    got.sort();
    assert_eq!(
        got,
        [
            ("schema.type", ".metadata.labels.on"),
            ("schema.unknown-field", ".metadata.bogus")
        ]
    );
}

#[test]
fn broken_crds_are_findings_on_the_crd() {
    let findings = check(&fixture("broken-crd.yaml"), "1.33", STRICT);
    let crd: Vec<_> = of(&findings, "gadgets.example.com")
        .into_iter()
        .filter(|(rule, _)| *rule == "schema.crd")
        .collect();
    let mut paths: Vec<_> = crd.iter().map(|(_, p)| *p).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            ".spec.versions[0].schema.openAPIV3Schema.properties.items.items.type",
            ".spec.versions[0].schema.openAPIV3Schema.properties.spec.type",
            ".spec.versions[0].schema.openAPIV3Schema.properties.status",
        ]
    );
    assert_eq!(
        of(&findings, "nothing.example.com")
            .into_iter()
            .filter(|(rule, _)| *rule == "schema.crd")
            .count(),
        1
    );
    // The CRD object itself is checked against the built-in CRD schema too.
    assert!(of(&findings, "nothing.example.com").contains(&("schema.required", ".spec.names")));
}

#[test]
fn removed_deprecated_unknown_and_missing_apis() {
    let manifests = fixture("apis.yaml");
    let findings = check(&manifests, "1.33", STRICT);
    assert_eq!(
        of(&findings, "old-ingress"),
        [("schema.removed-api", ".apiVersion")]
    );
    let ingress = message(&findings, "old-ingress", ".apiVersion");
    assert!(
        ingress.contains("removed in Kubernetes 1.22")
            && ingress.contains("networking.k8s.io/v1 Ingress"),
        "{ingress}"
    );
    assert_eq!(
        of(&findings, "restricted"),
        [("schema.removed-api", ".apiVersion")]
    );
    assert!(message(&findings, "restricted", ".apiVersion").contains("1.25"));
    let endpoints: Vec<_> = findings
        .iter()
        .filter(|f| f.object.as_ref().unwrap().name == "legacy")
        .collect();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(
        (endpoints[0].rule.as_str(), endpoints[0].severity),
        ("schema.deprecated-api", Severity::Warning)
    );
    assert!(endpoints[0].message.contains("EndpointSlice"));
    assert_eq!(
        of(&findings, "typo"),
        [("schema.unknown-kind", ".apiVersion")]
    );
    // No CRD: an error, and metadata is still checked.
    let mut got = of(&findings, "no-crd");
    got.sort();
    assert_eq!(
        got,
        [
            ("schema.missing", ".apiVersion"),
            ("schema.type", ".metadata.labels.enabled")
        ]
    );
    let ignoring = check(
        &manifests,
        "1.33",
        SchemaOptions {
            strict: true,
            ignore_missing_schemas: true,
        },
    );
    assert_eq!(
        of(&ignoring, "no-crd"),
        [("schema.type", ".metadata.labels.enabled")]
    );
    // Endpoints was not deprecated yet in 1.32.
    assert!(of(&check(&manifests, "1.32", STRICT), "legacy").is_empty());
}

#[test]
fn apis_gone_from_the_newest_version_warn() {
    // flowcontrol v1beta3 is served by 1.31 and gone from 1.32: the bundles say so.
    let schemas = Schemas::builtin(v("1.31")).unwrap();
    let fs = manifest(
        json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta3", "kind": "FlowSchema",
        "metadata": {"name": "f"}, "spec": {"priorityLevelConfiguration": {"name": "x"}}}),
    );
    let findings = schemas.check(&fs, &STRICT);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].rule, "schema.deprecated-api");
    assert!(
        findings[0].message.contains("removed in 1.32"),
        "{}",
        findings[0].message
    );
    assert!(
        findings[0]
            .message
            .contains("flowcontrol.apiserver.k8s.io/v1 FlowSchema")
    );
    let newer = Schemas::builtin(v("1.32")).unwrap().check(&fs, &STRICT);
    assert_eq!(newer[0].rule, "schema.removed-api");
}

#[test]
fn kube_version_parsing() {
    assert_eq!(v("1.33"), v("v1.33"));
    assert_eq!(v("1.33.2").to_string(), "1.33");
    assert_eq!(v("v1.25.0").minor(), 25);
    for bad in [
        "",
        "1",
        "2.33",
        "1.33.x",
        "1.24",
        "1.99",
        "v1.33.1.1",
        "latest",
        "1.3a",
    ] {
        let error = bad.parse::<KubeVersion>().unwrap_err().to_string();
        assert!(error.contains("1.25 to 1.37"), "{bad:?}: {error}");
    }
    assert_eq!(
        KubeVersion::newest(),
        *KubeVersion::supported().last().unwrap()
    );
}

#[test]
fn every_bundled_version_compiles_in_milliseconds() {
    for version in KubeVersion::supported() {
        let start = Instant::now();
        let schemas = Schemas::builtin(version).unwrap();
        let elapsed = start.elapsed();
        println!("Kubernetes {version}: schemas compiled in {elapsed:?}");
        let cm = manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}),
        );
        assert!(schemas.check(&cm, &STRICT).is_empty(), "{version}");
    }
}

#[test]
fn throughput_on_typical_objects() {
    let manifests = fixture("valid.yaml");
    let schemas = Schemas::builtin(v("1.33")).unwrap();
    let rounds = 2_000;
    let start = Instant::now();
    for _ in 0..rounds {
        for m in &manifests {
            assert!(schemas.check(m, &STRICT).is_empty());
        }
    }
    let per_second = (rounds * manifests.len()) as f64 / start.elapsed().as_secs_f64();
    println!("schema checks: {per_second:.0} objects/s (debug build)");
}

/// The shared corpus sits next to the workspace (`../../../shared`); from a helper's worktree
/// (`/work/wt/<name>`) it is one level further up.
fn yaml_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
#[cfg_attr(
    not(has_corpus),
    ignore = "no shared corpus at ../shared/corpus (or CONFIGSYNC_CORPUS)"
)]
fn kube_prometheus_corpus_has_schemas_and_no_errors() {
    let dir = configsync_prereq::require_corpus("kube-prometheus/manifests");
    let mut files = Vec::new();
    yaml_files(&dir.join("kube-prometheus/manifests"), &mut files);
    let loaded = manifests::load(&files, Limits::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    assert!(loaded.manifests.len() > 80);
    let findings = check(&loaded.manifests, "1.33", STRICT);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    println!(
        "kube-prometheus: {} objects, {} warnings",
        loaded.manifests.len(),
        findings.len()
    );
    // The CRDs' schemas are really applied: a misspelt field in a Prometheus is caught.
    let mut prometheus = loaded
        .manifests
        .iter()
        .find(|m| m.reference.kind == "Prometheus")
        .unwrap()
        .clone();
    prometheus.object["spec"]["replicaz"] = json!(2);
    prometheus.object["spec"]["replicas"] = json!("2");
    let mut schemas = Schemas::builtin(v("1.33")).unwrap();
    assert!(schemas.add_crds(&loaded.manifests).is_empty());
    let mut got: Vec<_> = schemas
        .check(&prometheus, &STRICT)
        .into_iter()
        .map(|f| (f.rule, f.path.unwrap()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("schema.type".to_string(), ".spec.replicas".to_string()),
            ("schema.unknown-field".into(), ".spec.replicaz".into())
        ]
    );
}

#[test]
#[cfg_attr(
    not(has_corpus),
    ignore = "no shared corpus at ../shared/corpus (or CONFIGSYNC_CORPUS)"
)]
fn microservices_demo_corpus_has_no_schema_errors() {
    let dir =
        configsync_prereq::require_corpus("microservices-demo/release/kubernetes-manifests.yaml");
    let file = dir.join("microservices-demo/release/kubernetes-manifests.yaml");
    let loaded = manifests::load(
        &[("demo.yaml".into(), std::fs::read(file).unwrap())],
        Limits::default(),
    );
    assert!(loaded.manifests.len() > 20);
    let findings = check(&loaded.manifests, "1.33", STRICT);
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn absurd_nesting_is_a_finding_not_a_crash() {
    // A CRD schema 100 levels deep: compiled to a limit, with a finding.
    let schema = (0..100).fold(
        json!({"type": "string"}),
        |inner, _| json!({"type": "object", "properties": {"a": inner}}),
    );
    let crd = manifest(
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "deeps.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Deep", "plural": "deeps"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": schema}}]}}),
    );
    let mut schemas = Schemas::builtin(v("1.33")).unwrap();
    let findings = schemas.add_crds([&crd]);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(findings[0].message.contains("deeper than 64"));
    // Checked as an object, the CRD (JSONSchemaProps is recursive) stops at the walker's limit.
    let findings = schemas.check(&crd, &STRICT);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].rule, "schema.depth");
}

/// A required CRD field with a `default` may be left out: the API server defaults it first.
#[test]
fn defaulted_required_crd_fields_may_be_left_out() {
    let yaml = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: pools.example.com}\nspec:\n  group: example.com\n  names: {kind: Pool, plural: pools}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            required: [replicas, size]\n            properties:\n              replicas: {type: integer, default: 1}\n              size: {type: string}\n---\napiVersion: example.com/v1\nkind: Pool\nmetadata: {name: p}\nspec: {}\n";
    let loaded = manifests::load(
        &[("p.yaml".into(), yaml.as_bytes().to_vec())],
        Limits::default(),
    );
    let findings = check(&loaded.manifests, "1.33", STRICT);
    assert_eq!(of(&findings, "p"), [("schema.required", ".spec.size")]);
}

/// Older OpenAPI documents mark fields required that the API server defaults (their `required`
/// came from Go struct tags); the bundled schemas take the newest version's list for all.
#[test]
fn fields_the_server_defaults_are_not_required_on_older_versions() {
    let yaml = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  selector: {matchLabels: {app: s}}\n  template:\n    metadata: {labels: {app: s}}\n    spec:\n      containers: [{name: s, image: s:1}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: n}\nspec: {policyTypes: [Ingress]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: r}\nroleRef: {kind: ClusterRole, name: view}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{image: p:1}]\n";
    let loaded = manifests::load(
        &[("d.yaml".into(), yaml.as_bytes().to_vec())],
        Limits::default(),
    );
    for version in ["1.25", "1.30", "1.37"] {
        let findings = check(&loaded.manifests, version, STRICT);
        for name in ["s", "n", "r"] {
            assert!(
                of(&findings, name).is_empty(),
                "{version} {name}: {findings:#?}"
            );
        }
        assert_eq!(
            of(&findings, "p"),
            [("schema.required", ".spec.containers[0].name")],
            "what the server does require still is, on {version}"
        );
    }
}

/// Values the API server allows for fields the OpenAPI documents leave open (added on import).
#[test]
fn allowed_values_of_core_fields_are_checked() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: c\n    image: c:1\n    imagePullPolicy: Allways\n    ports: [{containerPort: 80, protocol: TCP}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80, protocol: HTTP}]\n";
    let loaded = manifests::load(
        &[("e.yaml".into(), yaml.as_bytes().to_vec())],
        Limits::default(),
    );
    let findings = check(&loaded.manifests, "1.30", STRICT);
    assert_eq!(
        of(&findings, "p"),
        [
            ("schema.enum", ".spec.containers[0].imagePullPolicy"),
            ("schema.enum", ".spec.restartPolicy")
        ],
        "{findings:#?}"
    );
    assert_eq!(
        of(&findings, "s"),
        [("schema.enum", ".spec.ports[0].protocol")]
    );
}

/// A CRD's `minimum`/`maximum`, lengths, item counts and `pattern` hold for its resources.
#[test]
fn crd_value_limits_are_checked() {
    let yaml = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gates.example.com}\nspec:\n  group: example.com\n  names: {kind: Gate, plural: gates}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              replicas: {type: integer, minimum: 1, maximum: 10}\n              ratio: {type: number, maximum: 1, exclusiveMaximum: true}\n              code: {type: string, pattern: '^[A-Z]{3}$', maxLength: 3}\n              hosts: {type: array, minItems: 1, maxItems: 2, items: {type: string}}\n---\napiVersion: example.com/v1\nkind: Gate\nmetadata: {name: good}\nspec: {replicas: 10, ratio: 0.5, code: ABC, hosts: [a]}\n---\napiVersion: example.com/v1\nkind: Gate\nmetadata: {name: bad}\nspec: {replicas: 0, ratio: 1, code: abcd, hosts: [a, b, c]}\n";
    let loaded = manifests::load(
        &[("g.yaml".into(), yaml.as_bytes().to_vec())],
        Limits::default(),
    );
    let findings = check(&loaded.manifests, "1.33", STRICT);
    assert!(of(&findings, "good").is_empty(), "{findings:#?}");
    let mut bad = of(&findings, "bad");
    bad.sort();
    assert_eq!(
        bad,
        [
            ("schema.limit", ".spec.code"),
            ("schema.limit", ".spec.code"),
            ("schema.limit", ".spec.hosts"),
            ("schema.limit", ".spec.ratio"),
            ("schema.limit", ".spec.replicas"),
        ],
        "{findings:#?}"
    );
}
