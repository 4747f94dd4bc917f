//! Rendering against real and fake tools: kubectl on a base and overlay and on the shared
//! corpus, refusals before any tool starts, and fake tools that fail, hang or flood.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use configsync_core::event::{Finding, Severity};
use configsync_validation::engine::{self, Checker, Options};
use configsync_validation::manifests::{Limits, load};
use configsync_validation::render::{Isolation, RenderOptions, Root, RootKind, discover, render};

fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

fn kustomize(dir: &str) -> Root {
    Root {
        dir: dir.into(),
        kind: RootKind::Kustomize,
    }
}

fn chart(dir: &str) -> Root {
    Root {
        dir: dir.into(),
        kind: RootKind::Helm,
    }
}

fn rules(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.rule.as_str()).collect()
}

/// A directory of fake tools (each the same shell script, named `kubectl`, `kustomize` and
/// `helm`) and a PATH with it first, then the system's directories for the script's commands.
fn fake_tools(script: &str) -> (tempfile::TempDir, RenderOptions) {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    for name in ["kubectl", "kustomize", "helm"] {
        let path = bin.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let options = RenderOptions {
        tool_path: Some(format!("{}:/usr/bin:/bin", bin.path().display()).into()),
        ..RenderOptions::default()
    };
    (bin, options)
}

/// Whether process `pid` is gone (or a zombie about to be reaped), waiting up to 2 s.
fn process_gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

fn base_and_overlay(root: &Path) {
    write(
        root,
        "configs/base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n",
    );
    write(
        root,
        "configs/base/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  \
         selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    \
         spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n",
    );
    write(
        root,
        "configs/base/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  \
         ports:\n  - port: 80\n",
    );
    write(
        root,
        "configs/prod/kustomization.yaml",
        "namespace: prod\nresources:\n- ../base\npatches:\n- path: replicas.yaml\n",
    );
    write(
        root,
        "configs/prod/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    );
}

#[test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
fn a_base_and_overlay_render_with_kubectl() {
    configsync_prereq::require_tool("kubectl");
    let repo = tempfile::tempdir().unwrap();
    base_and_overlay(repo.path());
    write(
        repo.path(),
        "configs/plain/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    );
    let (found, findings) = discover(repo.path(), &[PathBuf::from("configs")]);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(found.roots, [kustomize("configs/prod")]);
    assert_eq!(found.bases, ["configs/base"]);
    assert_eq!(found.plain, ["configs/plain/cm.yaml"]);

    let rendered = render(repo.path(), &found.roots[0], &RenderOptions::default()).unwrap();
    assert_eq!(rendered.name, "configs/prod/kustomization.yaml");
    let loaded = load(&[(rendered.name.clone(), rendered.yaml)], Limits::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    let objects: Vec<_> = loaded
        .manifests
        .iter()
        .map(|m| {
            (
                m.object["kind"].as_str().unwrap().to_string(),
                m.object["metadata"]["namespace"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                m.file.clone(),
            )
        })
        .collect();
    assert_eq!(
        objects,
        [
            (
                "Service".into(),
                "prod".into(),
                "configs/prod/kustomization.yaml".into()
            ),
            (
                "Deployment".into(),
                "prod".into(),
                "configs/prod/kustomization.yaml".into()
            ),
        ]
    );
    let deployment = &loaded.manifests[1].object;
    assert_eq!(
        deployment["spec"]["replicas"], 3,
        "the overlay's patch applied"
    );
}

#[test]
fn a_remote_base_is_refused_and_no_tool_starts() {
    let repo = tempfile::tempdir().unwrap();
    let marker = repo.path().join("tool-ran");
    let (_bin, options) = fake_tools(&format!(
        "touch '{}'\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: x\\n'",
        marker.display()
    ));
    write(
        repo.path(),
        "ok/kustomization.yaml",
        "resources: [cm.yaml]\n",
    );
    write(repo.path(), "ok/cm.yaml", "kind: ConfigMap\n");
    write(
        repo.path(),
        "remote/kustomization.yaml",
        "resources:\n- ../ok\n- https://github.com/kubernetes-sigs/kustomize//examples/multibases?ref=v1.0.6\n",
    );
    write(
        repo.path(),
        "remote-base/kustomization.yaml",
        "bases:\n- github.com/org/repo/base?ref=main\n",
    );

    // The fake tool does run (and leave its marker) when nothing is refused...
    let rendered = render(repo.path(), &kustomize("ok"), &options).unwrap();
    assert!(
        String::from_utf8(rendered.yaml)
            .unwrap()
            .contains("kind: ConfigMap")
    );
    assert!(
        marker.exists(),
        "the fake tool leaves its marker when it runs"
    );
    std::fs::remove_file(&marker).unwrap();

    // ... and never when a source is remote.
    for (dir, line) in [("remote", 3), ("remote-base", 2)] {
        let findings = render(repo.path(), &kustomize(dir), &options).unwrap_err();
        assert_eq!(rules(&findings), ["render.remote-source"], "{findings:?}");
        assert_eq!(
            findings[0].file.as_deref(),
            Some(format!("{dir}/kustomization.yaml").as_str())
        );
        assert_eq!(findings[0].line, Some(line));
        assert!(!marker.exists(), "{dir}: the tool must not start");
    }
}

#[test]
fn paths_leaving_the_repository_are_refused() {
    let repo = tempfile::tempdir().unwrap();
    let marker = repo.path().join("tool-ran");
    let (_bin, options) = fake_tools(&format!("touch '{}'", marker.display()));
    write(
        repo.path(),
        "app/kustomization.yaml",
        "resources:\n- ../../../etc/passwd\n- /etc/passwd\n\
         configMapGenerator:\n- name: leak\n  files:\n  - ../../outside.txt\n  - key=/etc/shadow\n  \
         envs:\n  - ../../../.env\n",
    );
    let findings = render(repo.path(), &kustomize("app"), &options).unwrap_err();
    let got: Vec<_> = findings.iter().map(|f| (f.rule.as_str(), f.line)).collect();
    assert_eq!(
        got,
        [
            ("render.path-escape", Some(2)),
            ("render.path-escape", Some(3)),
            ("render.path-escape", Some(7)),
            ("render.path-escape", Some(8)),
            ("render.path-escape", Some(10)),
        ],
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f.file.as_deref() == Some("app/kustomization.yaml"))
    );
    assert!(!marker.exists());
}

#[test]
fn links_out_of_the_repository_are_refused_in_kustomizations_and_charts() {
    let repo = tempfile::tempdir().unwrap();
    let marker = repo.path().join("tool-ran");
    let (_bin, options) = fake_tools(&format!("touch '{}'", marker.display()));
    write(
        repo.path(),
        "app/kustomization.yaml",
        "resources: [passwd.yaml]\n",
    );
    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("app/passwd.yaml")).unwrap();
    write(
        repo.path(),
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    std::fs::create_dir_all(repo.path().join("charts/web/templates")).unwrap();
    std::os::unix::fs::symlink("/etc", repo.path().join("charts/web/templates/etc")).unwrap();

    let findings = render(repo.path(), &kustomize("app"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.symlink"]);
    assert_eq!(findings[0].file.as_deref(), Some("app/passwd.yaml"));
    let findings = render(repo.path(), &chart("charts/web"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.symlink"]);
    assert_eq!(
        findings[0].file.as_deref(),
        Some("charts/web/templates/etc")
    );
    assert!(findings[0].message.contains("/etc"));
    assert!(!marker.exists());
}

#[test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
fn a_failing_kustomization_reports_kubectl_stderr() {
    configsync_prereq::require_tool("kubectl");
    let repo = tempfile::tempdir().unwrap();
    write(
        repo.path(),
        "app/kustomization.yaml",
        "resources:\n- broken.yaml\n",
    );
    write(
        repo.path(),
        "app/broken.yaml",
        "apiVersion: v1\nkind: [ConfigMap\n",
    );
    let findings = render(repo.path(), &kustomize("app"), &RenderOptions::default()).unwrap_err();
    assert_eq!(rules(&findings), ["render.failed"], "{findings:?}");
    let message = &findings[0].message;
    assert_eq!(findings[0].file.as_deref(), Some("app/kustomization.yaml"));
    assert!(message.contains("broken.yaml"), "{message}");
    assert!(
        !message.contains("configsync-render-"),
        "scratch paths are removed: {message}"
    );
}

#[test]
fn a_tool_that_hangs_is_killed_with_its_process_group() {
    let repo = tempfile::tempdir().unwrap();
    let pid_file = repo.path().join("sleep.pid");
    let (_bin, mut options) = fake_tools(&format!(
        "sleep 30 &\necho $! > '{}'\nwait",
        pid_file.display()
    ));
    options.timeout = Duration::from_millis(500);
    write(repo.path(), "app/kustomization.yaml", "resources: []\n");
    let started = Instant::now();
    let findings = render(repo.path(), &kustomize("app"), &options).unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(rules(&findings), ["render.timeout"], "{findings:?}");
    assert!(
        elapsed < Duration::from_millis(2400),
        "bounded by the timeout, not by the grandchild's 30 s or the reader grace: {elapsed:?}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        process_gone(pid.trim()),
        "the grandchild `sleep` was killed too"
    );
}

#[test]
fn a_tool_that_floods_is_cut_at_the_cap_and_killed() {
    let repo = tempfile::tempdir().unwrap();
    let pid_file = repo.path().join("yes.pid");
    let (_bin, mut options) = fake_tools(&format!(
        "echo $$ > '{}'\nexec yes 'kind: ConfigMap'",
        pid_file.display()
    ));
    options.max_output_bytes = 1024 * 1024;
    write(repo.path(), "app/kustomization.yaml", "resources: []\n");
    let started = Instant::now();
    let findings = render(repo.path(), &kustomize("app"), &options).unwrap_err();
    assert_eq!(
        rules(&findings),
        ["render.output-too-large"],
        "{findings:?}"
    );
    assert!(findings[0].message.contains("1048576"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(process_gone(pid.trim()), "the writer was killed");
}

#[test]
fn helm_absent_is_a_clear_finding() {
    let repo = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let options = RenderOptions {
        tool_path: Some(empty.path().into()),
        ..RenderOptions::default()
    };
    write(
        repo.path(),
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    let findings = render(repo.path(), &chart("charts/web"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.tool-missing"]);
    assert_eq!(findings[0].file.as_deref(), Some("charts/web/Chart.yaml"));
    assert!(findings[0].message.contains("helm is not on PATH"));
    assert!(findings[0].message.contains("install Helm"));
    let findings = render(repo.path(), &kustomize("charts/web"), &options).unwrap_err();
    assert!(rules(&findings).contains(&"render.tool-missing"));
    assert!(findings.last().unwrap().message.contains("kubectl"));
}

#[test]
fn a_chart_value_file_outside_the_chart_is_refused() {
    let repo = tempfile::tempdir().unwrap();
    let marker = repo.path().join("tool-ran");
    let (_bin, mut options) = fake_tools(&format!("touch '{}'", marker.display()));
    write(repo.path(), "secret-values.yaml", "password: x\n");
    write(
        repo.path(),
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    options.env = Some("../../secret".into());
    let findings = render(repo.path(), &chart("charts/web"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.path-escape"]);
    assert!(findings[0].message.contains("values-../../secret.yaml"));

    std::os::unix::fs::symlink(
        "../../secret-values.yaml",
        repo.path().join("charts/web/values-prod.yaml"),
    )
    .unwrap();
    options.env = Some("prod".into());
    let findings = render(repo.path(), &chart("charts/web"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.symlink"]);
    assert_eq!(
        findings[0].file.as_deref(),
        Some("charts/web/values-prod.yaml")
    );
    assert!(!marker.exists());
}

#[test]
fn a_chart_remote_dependency_is_refused_unless_vendored() {
    let repo = tempfile::tempdir().unwrap();
    let marker = repo.path().join("tool-ran");
    let (_bin, options) = fake_tools(&format!(
        "touch '{}'\necho 'kind: ConfigMap'",
        marker.display()
    ));
    let chart_yaml = "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n\
                      - name: redis\n  version: 1.0.0\n  repository: oci://registry.example/charts\n";
    write(repo.path(), "charts/web/Chart.yaml", chart_yaml);
    let findings = render(repo.path(), &chart("charts/web"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.remote-source"]);
    assert_eq!(findings[0].line, Some(7));
    assert!(!marker.exists());

    write(
        repo.path(),
        "charts/web/charts/redis/Chart.yaml",
        "apiVersion: v2\nname: redis\nversion: 1.0.0\n",
    );
    render(repo.path(), &chart("charts/web"), &options).unwrap();
    assert!(marker.exists(), "vendored: helm runs");
}

#[test]
fn helm_runs_in_a_scratch_copy_with_a_cleared_environment() {
    let repo = tempfile::tempdir().unwrap();
    let (_bin, mut options) = fake_tools(
        "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ,)\n\
         printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: seen\\ndata:\\n'\n\
         printf '  args: \"%s\"\\n  home: \"%s\"\\n  pwd: \"%s\"\\n  kubeconfig: \"%s\"\\n' \"$*\" \"$HOME\" \"$(pwd)\" \"$KUBECONFIG\"\n\
         printf '  cargo: \"%s\"\\n  ifaces: \"%s\"\\n  stdin: \"%s\"\\n' \"${CARGO_PKG_NAME:-unset}\" \"$ifaces\" \"$(cat)\"",
    );
    options.env = Some("prod".into());
    write(
        repo.path(),
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(repo.path(), "charts/web/values.yaml", "a: 1\n");
    write(repo.path(), "charts/web/values-prod.yaml", "a: 2\n");
    write(
        repo.path(),
        "charts/web/templates/cm.yaml",
        "kind: ConfigMap\n",
    );
    let rendered = render(repo.path(), &chart("charts/web"), &options).unwrap();
    assert_eq!(rendered.name, "charts/web/Chart.yaml");
    let loaded = load(&[(rendered.name.clone(), rendered.yaml)], Limits::default());
    let data = &loaded.manifests[0].object["data"];
    assert_eq!(
        data["args"],
        "template web charts/web -f charts/web/values.yaml -f charts/web/values-prod.yaml"
    );
    let home = data["home"].as_str().unwrap();
    let pwd = data["pwd"].as_str().unwrap();
    assert!(home.contains("configsync-render-"), "{home}");
    assert!(
        pwd.contains("configsync-render-") && pwd.ends_with("/repo"),
        "{pwd}"
    );
    assert!(
        !pwd.starts_with(&*repo.path().to_string_lossy()),
        "not the checkout itself"
    );
    assert!(data["kubeconfig"].as_str().unwrap().starts_with(home));
    assert_eq!(data["cargo"], "unset", "the environment is cleared");
    assert_eq!(data["stdin"], "", "stdin is null");
    if rendered.isolation == Isolation::NetworkNamespace {
        assert_eq!(
            data["ifaces"], "lo,",
            "only a loopback in the network namespace"
        );
    } else {
        println!(
            "network isolation unavailable here: {}",
            rendered.isolation.describe()
        );
    }
    assert!(
        !Path::new(pwd).exists(),
        "the scratch copy is removed afterwards"
    );
}

#[test]
#[cfg_attr(
    not(all(has_kubectl, has_corpus)),
    ignore = "needs kubectl on PATH and ../shared/corpus: run tools/test.sh"
)]
fn the_shared_corpus_renders_its_deployments_and_services() {
    let corpus = configsync_prereq::require_corpus("microservices-demo/kustomize");
    configsync_prereq::require_tool("kubectl");
    let (found, findings) = discover(&corpus, &[PathBuf::from("microservices-demo/kustomize")]);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(
        found.roots,
        [kustomize("microservices-demo/kustomize/base")]
    );
    assert_eq!(
        found.bases,
        ["microservices-demo/kustomize/components/network-policies"]
    );
    let rendered = render(&corpus, &found.roots[0], &RenderOptions::default()).unwrap();
    let loaded = load(&[(rendered.name.clone(), rendered.yaml)], Limits::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    let count = |kind: &str| {
        loaded
            .manifests
            .iter()
            .filter(|m| m.object["kind"] == kind)
            .count()
    };
    assert_eq!(count("Deployment"), 12);
    assert_eq!(count("Service"), 12);
    assert_eq!(count("ServiceAccount"), 11);
    assert_eq!(loaded.manifests.len(), 35);
}

#[test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
fn kubectl_never_quotes_a_secret_literal_in_a_finding() {
    configsync_prereq::require_tool("kubectl");
    let repo = tempfile::tempdir().unwrap();
    write(
        repo.path(),
        "app/kustomization.yaml",
        "secretGenerator:\n- name: db\n  literals: [\"password:hunter2-SECRET\"]\n",
    );
    let findings = render(repo.path(), &kustomize("app"), &RenderOptions::default()).unwrap_err();
    assert_eq!(rules(&findings), ["render.failed"], "{findings:?}");
    let message = &findings[0].message;
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("[redacted]"), "{message}");
}

#[test]
fn secret_generator_material_of_every_kustomization_is_redacted() {
    let repo = tempfile::tempdir().unwrap();
    // The fake tool prints everything a careless tool could quote, then fails.
    let (_bin, options) = fake_tools(
        "echo \"bad literal token=lit-value-1 and lit-value-1\" >&2\n\
         echo \"env line DB_PASS=env-value-2 gives env-value-2\" >&2\n\
         echo \"file says file-line-3\" >&2\n\
         echo \"base literal base-value-4\" >&2\n\
         echo \"config value cm-value-5 stays\" >&2\n\
         exit 1",
    );
    write(
        repo.path(),
        "app/kustomization.yaml",
        "resources: [../base]\n\
         secretGenerator:\n- name: db\n  literals:\n  - token=lit-value-1\n  \
         envs: [db.env]\n  files: [key=tls.key]\n\
         configMapGenerator:\n- name: c\n  literals: [plain=cm-value-5]\n",
    );
    write(
        repo.path(),
        "app/db.env",
        "# comment\nDB_PASS=env-value-2\n",
    );
    write(repo.path(), "app/tls.key", "-----BEGIN-----\nfile-line-3\n");
    write(
        repo.path(),
        "base/kustomization.yaml",
        "secretGenerator:\n- name: b\n  literals: [\"k='base-value-4'\"]\n",
    );
    let findings = render(repo.path(), &kustomize("app"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.failed"], "{findings:?}");
    let message = &findings[0].message;
    for secret in ["lit-value-1", "env-value-2", "file-line-3", "base-value-4"] {
        assert!(!message.contains(secret), "{secret} in {message}");
    }
    assert!(
        message.contains("bad literal [redacted] and [redacted]"),
        "{message}"
    );
    assert!(
        message.contains("cm-value-5 stays"),
        "config map values are not secret: {message}"
    );
}

#[test]
fn helm_error_lines_naming_a_value_are_dropped() {
    let repo = tempfile::tempdir().unwrap();
    let (_bin, options) = fake_tools(
        "echo 'Error: template: web/templates/s.yaml: bad value s3cr3t-pass' >&2\n\
         echo 'line with yes only' >&2\n\
         echo 'Error: execution error at (web/templates/s.yaml:3)' >&2\n\
         exit 1",
    );
    write(
        repo.path(),
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(
        repo.path(),
        "charts/web/values.yaml",
        "db:\n  password: s3cr3t-pass\n  flag: \"yes\"\n",
    );
    let findings = render(repo.path(), &chart("charts/web"), &options).unwrap_err();
    assert_eq!(rules(&findings), ["render.failed"], "{findings:?}");
    let message = &findings[0].message;
    assert!(!message.contains("s3cr3t"), "{message}");
    assert!(
        message.contains("line with yes only"),
        "values of 3 characters or fewer do not drop lines: {message}"
    );
    assert!(message.contains("execution error at"), "{message}");
}

#[test]
fn a_render_without_network_isolation_warns() {
    let repo = tempfile::tempdir().unwrap();
    write(repo.path(), "app/kustomization.yaml", "resources: []\n");
    // `unshare` is searched on the tools' PATH: with only the fake tools there (the script
    // uses shell builtins only), the tool runs without isolation.
    let (bin, mut options) = fake_tools("printf 'kind: ConfigMap\\n'");
    options.tool_path = Some(bin.path().into());
    let rendered = render(repo.path(), &kustomize("app"), &options).unwrap();
    assert_eq!(rendered.isolation, Isolation::None);
    assert_eq!(rendered.warnings.len(), 1, "{:?}", rendered.warnings);
    let warning = &rendered.warnings[0];
    assert_eq!(warning.rule, "render.no-isolation");
    assert_eq!(warning.severity, Severity::Warning);
    assert_eq!(warning.file.as_deref(), Some("app/kustomization.yaml"));
    assert!(warning.message.contains("kustomize"), "{}", warning.message);

    // With the system's directories (and so `unshare`) on the PATH, isolation is used when
    // this machine allows it, and then nothing is said.
    let (_bin, options) = fake_tools("printf 'kind: ConfigMap\\n'");
    let rendered = render(repo.path(), &kustomize("app"), &options).unwrap();
    match rendered.isolation {
        Isolation::NetworkNamespace => assert!(rendered.warnings.is_empty()),
        Isolation::None => assert_eq!(rendered.warnings[0].rule, "render.no-isolation"),
    }
}

#[test]
fn a_checkout_with_a_link_loop_a_values_named_manifest_and_links_out() {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::os::unix::fs::symlink("..", root.join("a/loop")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("LICENSE")).unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("docs/x.md")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("docs/out.yaml")).unwrap();
    write(
        root,
        "configs/prod/values-configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: [1]\n",
    );
    write(root, "charts/web/Chart.yaml", "apiVersion: v2\nname: web\n");
    write(root, "charts/web/values.yaml", "a: 1\n");

    let (found, findings) = discover(root, &[PathBuf::from(".")]);
    assert_eq!(found.roots, [chart("charts/web")]);
    assert_eq!(
        found.plain,
        ["configs/prod/values-configmap.yaml", "docs/out.yaml"]
    );
    assert_eq!(rules(&findings), ["file.refused"], "{findings:?}");
    assert_eq!(findings[0].file.as_deref(), Some("a/loop"));
    assert_eq!(findings[0].severity, Severity::Warning);

    let checker = Checker::new(Options::default(), &[]).unwrap();
    let outcome = engine::validate_checkout(&checker, root, &[PathBuf::from(".")], &[], None);
    let on = |file: &str| {
        outcome
            .findings
            .iter()
            .filter(|f| f.file.as_deref() == Some(file))
            .map(|f| f.rule.as_str())
            .collect::<Vec<_>>()
    };
    assert!(
        !on("configs/prod/values-configmap.yaml").is_empty(),
        "the invalid ConfigMap is checked: {:?}",
        outcome.findings
    );
    assert_eq!(on("docs/out.yaml"), ["file.refused"]);
    assert!(on("LICENSE").is_empty() && on("docs/x.md").is_empty());
    assert_eq!(on("a/loop"), ["file.refused"]);
}

#[test]
fn an_unreadable_root_is_reported_once() {
    let checker = Checker::new(Options::default(), &[]).unwrap();
    let outcome = engine::validate_checkout(
        &checker,
        Path::new("/nonexistent-configsync-root"),
        &[PathBuf::from(".")],
        &[],
        None,
    );
    let unreadable: Vec<_> = outcome
        .findings
        .iter()
        .filter(|f| f.message.contains("root is unreadable"))
        .collect();
    assert_eq!(unreadable.len(), 1, "{:?}", outcome.findings);
}
