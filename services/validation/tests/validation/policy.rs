//! Policy checks on fixtures: every baseline rule (violating and compliant), a user policy
//! directory, modes, exemptions, compile errors, limits and Secret redaction.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use configsync_core::event::{Finding, Severity};
use configsync_validation::manifests::{self, Limits, Manifest};
use configsync_validation::policy::{Policies, PolicyLimits, PolicyMode};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy")
}

fn load_file(path: &Path) -> Vec<Manifest> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let loaded = manifests::load(&[(name, std::fs::read(path).unwrap())], Limits::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    loaded.manifests
}

fn load_yaml(yaml: &str) -> Vec<Manifest> {
    let loaded = manifests::load(
        &[("m.yaml".to_string(), yaml.as_bytes().to_vec())],
        Limits::default(),
    );
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    loaded.manifests
}

fn baseline() -> Policies {
    let (policies, findings) = Policies::new(&[], PolicyLimits::default());
    assert!(findings.is_empty(), "{findings:?}");
    policies
}

fn with_user(files: &[(&str, &str)], limits: PolicyLimits) -> Policies {
    let user: Vec<_> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    let (policies, findings) = Policies::new(&user, limits);
    assert!(findings.is_empty(), "{findings:?}");
    policies
}

fn rules(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.as_str()).collect()
}

/// Baseline rules reported as errors; every other baseline rule is a warning.
const ERROR_RULES: &[&str] = &[
    "baseline.host-network",
    "baseline.host-pid",
    "baseline.host-ipc",
    "baseline.privileged",
    "baseline.host-process",
    "baseline.capabilities",
    "baseline.host-path",
    "baseline.host-ports",
    "baseline.proc-mount",
    "baseline.sysctls",
    "baseline.seccomp",
    "baseline.selinux",
    "baseline.apparmor",
    "baseline.image-tag",
];

const WARNING_RULES: &[&str] = &[
    "baseline.run-as-non-root",
    "baseline.run-as-user",
    "baseline.privilege-escalation",
    "baseline.capabilities-drop",
    "baseline.seccomp-profile",
    "baseline.volume-types",
    "baseline.resources",
    "baseline.labels",
];

#[test]
fn compliant_workloads_of_every_kind_have_no_findings() {
    let manifests = load_file(&fixtures().join("baseline/compliant.yaml"));
    assert_eq!(manifests.len(), 10);
    let findings = baseline().evaluate(&manifests, PolicyMode::Enforce);
    assert!(findings.is_empty(), "{findings:#?}");
}

/// Each fixture is the compliant Deployment (or another kind) with one change, and lists the
/// findings it must give in `# expect: <rule> <path>` lines: exactly those.
#[test]
fn each_violation_fixture_gives_exactly_its_findings() {
    let policies = baseline();
    let dir = fixtures().join("baseline/violations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 25, "{files:?}");
    let mut covered = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut expected: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(|l| {
                let (rule, path) = l.split_once(' ').unwrap();
                (rule.to_string(), path.to_string())
            })
            .collect();
        expected.sort();
        let manifests = load_file(&file);
        let findings = policies.evaluate(&manifests, PolicyMode::Enforce);
        let mut got: Vec<(String, String)> = findings
            .iter()
            .map(|f| (f.rule.clone(), f.path.clone().unwrap_or_default()))
            .collect();
        got.sort();
        assert_eq!(got, expected, "{}: {findings:#?}", file.display());
        for f in &findings {
            let severity = if ERROR_RULES.contains(&f.rule.as_str()) {
                Severity::Error
            } else {
                Severity::Warning
            };
            assert_eq!(f.severity, severity, "{f:?}");
            assert_eq!(f.object.as_ref(), Some(&manifests[0].reference));
            assert!(f.file.as_deref().unwrap().ends_with(".yaml"));
            assert!(!f.message.is_empty() && f.message.len() < 160, "{f:?}");
            covered.insert(f.rule.clone());
        }
    }
    for rule in ERROR_RULES.iter().chain(WARNING_RULES) {
        assert!(covered.contains(*rule), "no fixture violates {rule}");
    }
}

#[test]
fn a_user_policy_directory_adds_deny_and_warn_rules() {
    let user = Policies::read_dir(&fixtures().join("user")).unwrap();
    let names: Vec<_> = user
        .iter()
        .map(|(p, _)| p.rsplit("fixtures/policy/").next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["user/deny.rego", "user/lib/helpers.rego", "user/warn.rego"],
        "sorted, recursive, *_test.rego and non-Rego files skipped"
    );
    let (policies, findings) = Policies::new(&user, PolicyLimits::default());
    assert!(findings.is_empty(), "{findings:?}");
    let manifests = load_file(&fixtures().join("user/manifests.yaml"));
    let findings: Vec<_> = policies
        .evaluate(&manifests, PolicyMode::Enforce)
        .into_iter()
        .filter(|f| !f.rule.starts_with("baseline."))
        .collect();
    let summary: Vec<_> = findings
        .iter()
        .map(|f| {
            (
                f.rule.as_str(),
                f.severity,
                f.object.as_ref().unwrap().name.as_str(),
                f.path.as_deref(),
                f.line,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "policy.team.deployments.deny",
                Severity::Error,
                "api",
                None,
                Some(1)
            ),
            (
                "team.owner-label",
                Severity::Error,
                "api",
                Some(".metadata.labels.team"),
                Some(1)
            ),
            (
                "policy.team.style.warn",
                Severity::Warning,
                "empty",
                None,
                Some(21)
            ),
        ]
    );
    assert_eq!(
        findings[0].message,
        "api runs 1 replica(s); production needs at least 2"
    );
    assert_eq!(findings[2].message, "empty ConfigMap");
}

#[test]
fn an_unreadable_policy_directory_is_a_finding() {
    let missing = fixtures().join("no-such-directory");
    let finding = Policies::read_dir(&missing).unwrap_err();
    assert_eq!(finding.rule, "policy.read");
    assert!(
        finding
            .file
            .as_deref()
            .unwrap()
            .ends_with("no-such-directory")
    );
}

#[test]
fn a_baseline_rule_failing_on_an_odd_object_does_not_hide_the_others() {
    // `volumes` should be a list; the schema check reports that. The baseline packages that
    // iterate volumes fail on it, the others (images, labels) still report.
    let manifests = load_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  volumes: 5\n  containers: [{name: c, image: nginx}]\n",
    );
    let findings = baseline().evaluate(&manifests, PolicyMode::Enforce);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.rule == "policy.error")
        .collect();
    for rule in ["baseline.image-tag", "baseline.labels"] {
        assert!(findings.iter().any(|f| f.rule == rule), "{findings:#?}");
    }
    assert!(!errors.is_empty(), "{findings:#?}");
    assert!(
        errors
            .iter()
            .all(|f| f.message.contains("configsync.baseline.") && f.message.contains(".rego:")),
        "{errors:#?}"
    );
}

#[test]
fn warn_mode_downgrades_every_finding() {
    let manifests = load_file(&fixtures().join("baseline/violations/privileged.yaml"));
    let policies = baseline();
    let enforce = policies.evaluate(&manifests, PolicyMode::Enforce);
    let warn = policies.evaluate(&manifests, PolicyMode::Warn);
    assert_eq!(rules(&enforce), ["baseline.privileged"]);
    assert_eq!(enforce[0].severity, Severity::Error);
    assert_eq!(rules(&warn), rules(&enforce));
    assert!(warn.iter().all(|f| f.severity == Severity::Warning));
}

#[test]
fn the_exemption_annotation_skips_only_the_listed_rules() {
    let manifests = load_file(&fixtures().join("node-exporter.yaml"));
    let findings = baseline().evaluate(&manifests, PolicyMode::Enforce);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.rule.as_str())
        .collect();
    assert_eq!(errors, ["baseline.host-ipc"], "{findings:#?}");
}

#[test]
fn a_policy_that_does_not_compile_is_a_finding_and_the_others_run() {
    let user = Policies::read_dir(&fixtures().join("broken")).unwrap();
    let (policies, findings) = Policies::new(&user, PolicyLimits::default());
    assert_eq!(rules(&findings), ["policy.compile"]);
    assert!(
        findings[0]
            .file
            .as_deref()
            .unwrap()
            .ends_with("broken/bad.rego")
    );
    assert!(matches!(findings[0].line, Some(6 | 7)), "{:?}", findings[0]);
    let manifests = load_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n");
    assert_eq!(
        rules(&policies.evaluate(&manifests, PolicyMode::Enforce)),
        ["policy.fine.warn"]
    );
}

const CONFIG_MAPS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n";

#[test]
fn a_never_ending_policy_times_out_per_object_and_per_run() {
    let limits = PolicyLimits {
        per_object: Duration::from_millis(300),
        total: Duration::from_millis(700),
    };
    let policies = with_user(
        &[(
            "p/slow.rego",
            "package slow\nimport rego.v1\ndeny contains \"never\" if {\n  some i in numbers.range(1, 1000000)\n  some j in numbers.range(1, 1000000)\n  i + j < 0\n}\n",
        )],
        limits,
    );
    let start = Instant::now();
    let findings = policies.evaluate(&load_yaml(CONFIG_MAPS), PolicyMode::Enforce);
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "stopped by the total limit of 700 ms, took {elapsed:?}"
    );
    let timeouts: Vec<_> = findings
        .iter()
        .filter(|f| f.rule == "policy.timeout")
        .collect();
    // a and b use their 300 ms, c the 100 ms left of the run, d is not evaluated. On a
    // loaded machine the split may differ; what must hold: objects time out one by one, then
    // the run stops once, saying how many objects it did not check.
    let (per_object, run): (Vec<&Finding>, Vec<&Finding>) =
        timeouts.iter().copied().partition(|f| f.object.is_some());
    assert!(
        !per_object.is_empty() && per_object.len() <= 3,
        "{findings:#?}"
    );
    assert_eq!(run.len(), 1, "{findings:#?}");
    assert!(
        timeouts[0].message.contains("slow.deny"),
        "{:?}",
        timeouts[0]
    );
    assert!(timeouts[0].message.contains("p/slow.rego"));
    assert_eq!(timeouts[0].object.as_ref().unwrap().name, "a");
    assert!(
        run[0].message.contains("of 4 objects were not checked"),
        "{:?}",
        run[0]
    );
    assert!(timeouts.iter().all(|f| f.severity == Severity::Error));
}

#[test]
fn a_huge_range_is_refused_not_allocated() {
    let policies = with_user(
        &[(
            "p/huge.rego",
            "package huge\nimport rego.v1\nn := count([x | some x in numbers.range(1, 100000000000)])\ndeny contains \"big\" if n > 0\n",
        )],
        PolicyLimits::default(),
    );
    let start = Instant::now();
    let findings = policies.evaluate(&load_yaml(CONFIG_MAPS), PolicyMode::Enforce);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        rules(&findings),
        [
            "policy.memory",
            "policy.memory",
            "policy.memory",
            "policy.memory"
        ]
    );
    assert!(
        findings[0].message.contains("huge.deny"),
        "{:?}",
        findings[0]
    );
}

#[test]
fn results_that_are_not_messages_and_runtime_errors_are_findings() {
    let policies = with_user(
        &[(
            "p/odd.rego",
            "package odd\nimport rego.v1\ndeny contains 42 if true\nwarn contains {\"rule\": \"x\"} if true\nviolation contains x if { x := to_number(input.metadata.name) }\n",
        )],
        PolicyLimits::default(),
    );
    let manifests = load_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n");
    let findings = policies.evaluate(&manifests, PolicyMode::Enforce);
    let mut got = rules(&findings);
    got.sort();
    assert_eq!(
        got,
        ["policy.error", "policy.result", "policy.result"],
        "{findings:#?}"
    );
    let error = findings.iter().find(|f| f.rule == "policy.error").unwrap();
    assert!(error.message.contains("p/odd.rego:5"), "{error:?}");
}

#[test]
fn secret_values_never_reach_a_finding() {
    // A careless policy that prints Secret values, directly, decoded, through a runtime
    // error and from the cross-object view.
    let policies = with_user(
        &[(
            "p/leak.rego",
            r#"package leak
import rego.v1
deny contains sprintf("password is %s", [input.data.password]) if input.kind == "Secret"
deny contains sprintf("decoded %s", [base64.decode(input.data.password)]) if input.kind == "Secret"
warn contains sprintf("token %s", [input.stringData.token]) if input.kind == "Secret"
deny contains sprintf("%s sees %v", [input.metadata.name, o.data]) if {
	input.kind == "ConfigMap"
	some o in data.configsync.objects
	o.kind == "Secret"
}
violation contains x if { input.kind == "Secret"; x := to_number(input.stringData.token) }
"#,
        )],
        PolicyLimits::default(),
    );
    // password: "hunter2-db" (base64 aHVudGVyMi1kYg==)
    let manifests = load_yaml(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: aHVudGVyMi1kYg==\nstringData:\n  token: tok-9f8e7d6c\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    );
    let findings = policies.evaluate(&manifests, PolicyMode::Enforce);
    let user: Vec<_> = findings
        .iter()
        .filter(|f| !f.rule.starts_with("baseline."))
        .collect();
    assert_eq!(user.len(), 5, "{findings:#?}");
    for f in &findings {
        for secret in ["aHVudGVyMi1kYg==", "hunter2-db", "tok-9f8e7d6c"] {
            assert!(!f.message.contains(secret), "{f:?}");
        }
    }
    assert!(
        user.iter().any(|f| f.message == "password is [redacted]"),
        "{user:#?}"
    );
    assert!(user.iter().any(|f| f.message.starts_with("c sees")));
}

#[test]
fn cross_object_policies_see_every_object() {
    let policies = with_user(
        &[(
            "p/refs.rego",
            r#"package refs
import rego.v1
deny contains {"msg": sprintf("ConfigMap %s does not exist", [name]), "path": ".spec.template.spec.volumes"} if {
	input.kind == "Deployment"
	some v in input.spec.template.spec.volumes
	name := v.configMap.name
	not config_map_exists(name)
}
config_map_exists(name) if {
	some o in data.configsync.objects
	o.kind == "ConfigMap"
	o.metadata.name == name
}
"#,
        )],
        PolicyLimits::default(),
    );
    let deployment = |cm: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d-{cm}\nspec:\n  template:\n    spec:\n      volumes:\n        - name: v\n          configMap:\n            name: {cm}\n"
        )
    };
    let yaml = format!(
        "{}---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: present\n",
        deployment("present"),
        deployment("missing")
    );
    let findings = policies.evaluate(&load_yaml(&yaml), PolicyMode::Enforce);
    let refs: Vec<_> = findings
        .iter()
        .filter(|f| f.rule == "policy.refs.deny")
        .map(|f| (f.object.as_ref().unwrap().name.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(refs, [("d-missing", "ConfigMap missing does not exist")]);
}

/// One run of many objects (whose `data.configsync.objects` holds all of them) and many runs
/// of a few give the same findings. Throughput is measured by the benchmark
/// (`cargo bench -p configsync-validation --bench validate`), not here.
#[test]
fn findings_do_not_depend_on_how_objects_are_split_into_runs() {
    let count = 200;
    let yaml: String = (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-{i}\n  labels:\n    app.kubernetes.io/name: web\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: registry.example.com/web:1.{i}\n          resources:\n            requests: {{cpu: 100m, memory: 64Mi}}\n            limits: {{memory: 64Mi}}\n        - name: sidecar\n          image: registry.example.com/proxy:latest\n"
            )
        })
        .collect();
    let manifests = load_yaml(&yaml);
    let policies = baseline();
    let mut per_split = Vec::new();
    for run_size in [count, 10] {
        let findings: Vec<Finding> = manifests
            .chunks(run_size)
            .flat_map(|run| policies.evaluate(run, PolicyMode::Enforce))
            .collect();
        let tags = findings
            .iter()
            .filter(|f| f.rule == "baseline.image-tag")
            .count();
        assert_eq!(tags, count, "one :latest sidecar each");
        per_split.push(findings);
    }
    assert_eq!(per_split[0], per_split[1]);
}

/// The validator service shares one compiled `Policies` between its tasks.
#[test]
fn policies_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let policies = baseline();
    shareable(&policies);
    let manifests = load_file(&fixtures().join("baseline/violations/privileged.yaml"));
    let from_thread = std::thread::scope(|s| {
        s.spawn(|| policies.evaluate(&manifests, PolicyMode::Enforce))
            .join()
            .unwrap()
    });
    assert_eq!(rules(&from_thread), ["baseline.privileged"]);
}

/// Null lists (an empty `volumes:` left by a template) are absent, as the API server treats
/// them: the baseline evaluates, it does not fail.
#[test]
fn null_fields_do_not_break_the_baseline() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: p}\nspec:\n  volumes:\n  securityContext:\n    sysctls:\n  containers:\n  - name: c\n    image: nginx:1.25\n    ports:\n    securityContext:\n      capabilities:\n        add:\n";
    let findings = baseline().evaluate(&load_yaml(pod), PolicyMode::Enforce);
    assert!(
        findings
            .iter()
            .all(|f| f.severity == Severity::Warning && f.rule.starts_with("baseline.")),
        "{findings:#?}"
    );
}
