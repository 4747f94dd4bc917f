//! The validator against a real nats-server and real Git repositories: commit-detected in,
//! validation passed (with the bundle in the object store) or failed (with file and line) out.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use configsync_core::config::NatsArgs;
use configsync_core::event::{
    AppChange, CommitDetected, EnvironmentChange, EventData, Outgoing, Person, Received,
};
use configsync_core::harness::NatsServer;
use configsync_core::log::bundles::{self, BundleStore};
use configsync_core::log::{Entry, EventLog, Reader, Start, stream};
use configsync_core::metrics::Metrics;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn commit_all(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// What the git-watcher would publish for `sha` touching `envs`.
fn detected(repo: &str, sha: &str, envs: &[&str]) -> Outgoing {
    let who = Person {
        name: "Test".into(),
        email: "test@example.com".into(),
        time: chrono::Utc::now(),
    };
    let payload = CommitDetected {
        repository: repo.into(),
        branch: "main".into(),
        sha: sha.into(),
        parents: vec![],
        author: who.clone(),
        committer: who,
        message: "change".into(),
        signed: false,
        signature: None,
        environments: envs
            .iter()
            .map(|e| EnvironmentChange {
                environment: e.to_string(),
                apps: vec![AppChange {
                    app: "web".into(),
                    paths: vec![],
                }],
            })
            .collect(),
        other_paths: vec![],
        whole_tree: false,
    };
    Outgoing::builder(&payload)
        .cause(sha)
        .build("configsync://git-watcher/test")
        .unwrap()
}

struct Setup {
    _server: NatsServer,
    log: EventLog,
    repo_dir: tempfile::TempDir,
    repo_url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), configsync_core::service::ServiceError>>,
    _work: tempfile::TempDir,
}

async fn setup() -> Setup {
    let server = NatsServer::start().await.unwrap();
    let client = NatsArgs::for_url(server.url()).connect("t").await.unwrap();
    let log = EventLog::new(client, "configsync://test/1", Metrics::new()).unwrap();
    stream::ensure(&log.js, &log.spec).await.unwrap();
    bundles::ensure(&log.js, 1).await.unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    git(repo_dir.path(), &["init", "-q"]);
    let repo_url = format!("file://{}", repo_dir.path().display());
    let work = tempfile::tempdir().unwrap();
    let ops = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = configsync_validator::Config::try_parse_from([
        "validator",
        "--nats-url",
        &server.url(),
        "--ops-addr",
        &ops.to_string(),
        "--repo",
        &repo_url,
        "--work-dir",
        work.path().to_str().unwrap(),
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(configsync_validator::run(config, shutdown.clone()));
    Setup {
        _server: server,
        log,
        repo_dir,
        repo_url,
        shutdown,
        task,
        _work: work,
    }
}

/// Waits for the validation event of `env` at `sha`.
async fn validation(log: &EventLog, sha: &str, env: &str) -> Received {
    let mut reader = Reader::open(
        &log.js,
        log.stream(),
        Start::Beginning,
        Some("configsync.evt.*.*.validation.>"),
    )
    .await
    .unwrap();
    loop {
        let entry = tokio::time::timeout(WAIT, reader.next())
            .await
            .expect("a validation event in time")
            .expect("reader open")
            .unwrap();
        if let Entry::Event(e) = entry
            && e.revision() == Some(sha)
            && e.environment() == Some(env)
        {
            return *e;
        }
    }
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  color: blue\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n";

#[tokio::test]
async fn a_valid_environment_passes_and_its_bundle_is_stored_by_digest() {
    let s = setup().await;
    write(s.repo_dir.path(), "configs/dev/web/config.yaml", CONFIGMAP);
    write(s.repo_dir.path(), "configs/dev/web/deploy.yaml", DEPLOYMENT);
    write(s.repo_dir.path(), "configs/prod/web/config.yaml", CONFIGMAP);
    let sha = commit_all(s.repo_dir.path(), "add web");
    let commit = detected(&s.repo_url, &sha, &["dev"]);
    s.log
        .publisher(Duration::from_secs(10))
        .publish(&commit)
        .await
        .unwrap();

    let ev = validation(&s.log, &sha, "dev").await;
    let EventData::ValidationPassed(passed) = &ev.data else {
        panic!("expected passed, got {:?}", ev.data)
    };
    let names: Vec<_> = passed
        .objects
        .iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    assert_eq!(names, ["ConfigMap/settings", "Deployment/web"]);
    assert_eq!(
        ev.correlation_id(),
        Some(commit.id()),
        "validation shares the commit's correlation id"
    );
    let bytes = BundleStore::open(&s.log.js)
        .await
        .unwrap()
        .get(&passed.bundle_digest)
        .await
        .expect("bundle stored");
    let bundle: configsync_core::log::bundles::Bundle = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(bundle.objects.len(), 2);
    assert_eq!(bundle.objects[0]["data"]["color"], "blue");
    s.shutdown.cancel();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn broken_yaml_fails_with_file_and_line_and_an_empty_environment_fails_clearly() {
    let s = setup().await;
    write(
        s.repo_dir.path(),
        "configs/dev/web/config.yaml",
        &format!("{CONFIGMAP}---\napiVersion: v1\nkind: [oops\n"),
    );
    write(
        s.repo_dir.path(),
        "configs/staging/README.md",
        "no manifests here\n",
    );
    let sha = commit_all(s.repo_dir.path(), "broken");
    s.log
        .publisher(Duration::from_secs(10))
        .publish(&detected(&s.repo_url, &sha, &["dev", "staging", "prod"]))
        .await
        .unwrap();

    let dev = validation(&s.log, &sha, "dev").await;
    let EventData::ValidationFailed(failed) = &dev.data else {
        panic!("expected failed, got {:?}", dev.data)
    };
    let f = &failed.findings[0];
    assert_eq!(f.file.as_deref(), Some("configs/dev/web/config.yaml"));
    assert_eq!(f.rule, "yaml.syntax");
    assert!(f.line.unwrap() >= 9, "{f:?}");

    let staging = validation(&s.log, &sha, "staging").await;
    let EventData::ValidationFailed(failed) = &staging.data else {
        panic!("expected failed")
    };
    assert!(
        failed.findings[0].message.contains("has no manifests"),
        "{:?}",
        failed.findings
    );
    let prod = validation(&s.log, &sha, "prod").await;
    let EventData::ValidationFailed(failed) = &prod.data else {
        panic!("expected failed")
    };
    assert!(
        failed.findings[0].message.contains("does not exist"),
        "{:?}",
        failed.findings
    );
    s.shutdown.cancel();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_symlink_leaving_the_repository_is_a_finding_not_a_read() {
    let s = setup().await;
    write(s.repo_dir.path(), "configs/dev/web/config.yaml", CONFIGMAP);
    std::os::unix::fs::symlink(
        "/etc/passwd",
        s.repo_dir.path().join("configs/dev/web/passwd.yaml"),
    )
    .unwrap();
    let sha = commit_all(s.repo_dir.path(), "sneaky");
    s.log
        .publisher(Duration::from_secs(10))
        .publish(&detected(&s.repo_url, &sha, &["dev"]))
        .await
        .unwrap();
    let dev = validation(&s.log, &sha, "dev").await;
    let EventData::ValidationFailed(failed) = &dev.data else {
        panic!("expected failed, got {:?}", dev.data)
    };
    assert_eq!(
        failed.findings[0].rule, "file.refused",
        "{:?}",
        failed.findings
    );
    assert!(
        !serde_json::to_string(&failed).unwrap().contains("root:"),
        "nothing of /etc/passwd leaks"
    );
    s.shutdown.cancel();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn schemas_policies_of_the_revision_and_kustomize_run_in_the_service() {
    let s = setup().await;
    let repo = s.repo_dir.path();
    // dev: an unknown field, an unpinned image (baseline) and no `team` label (the
    // repository's own policy).
    write(
        repo,
        "configs/dev/web/deploy.yaml",
        &DEPLOYMENT
            .replace("  replicas: 1", "  replicaz: 1")
            .replace("nginx:1.27", "nginx"),
    );
    write(
        repo,
        "policies/team.rego",
        "package team\nimport rego.v1\ndeny contains {\"id\": \"team.label\", \"msg\": \"every object needs a team label\", \"path\": \".metadata.labels\"} if {\n  not input.metadata.labels.team\n}\n",
    );
    // staging: a kustomization whose base lives outside configs/, adding the label.
    write(repo, "base/web/deploy.yaml", DEPLOYMENT);
    write(
        repo,
        "base/web/kustomization.yaml",
        "resources: [deploy.yaml]\n",
    );
    write(
        repo,
        "configs/staging/kustomization.yaml",
        "resources: [../../base/web]\nlabels:\n- pairs: {team: shop}\n",
    );
    let sha = commit_all(repo, "policies and a kustomization");
    s.log
        .publisher(Duration::from_secs(10))
        .publish(&detected(&s.repo_url, &sha, &["dev", "staging"]))
        .await
        .unwrap();

    let dev = validation(&s.log, &sha, "dev").await;
    let EventData::ValidationFailed(failed) = &dev.data else {
        panic!("expected failed, got {:?}", dev.data)
    };
    let rules: Vec<&str> = failed.findings.iter().map(|f| f.rule.as_str()).collect();
    for rule in ["schema.unknown-field", "baseline.image-tag", "team.label"] {
        assert!(rules.contains(&rule), "{rule} in {:?}", failed.findings);
    }
    let unknown = failed
        .findings
        .iter()
        .find(|f| f.rule == "schema.unknown-field")
        .unwrap();
    assert_eq!(unknown.path.as_deref(), Some(".spec.replicaz"));
    assert_eq!(
        (unknown.line, unknown.column),
        (Some(7), Some(3)),
        "the finding points at the field itself"
    );

    let staging = validation(&s.log, &sha, "staging").await;
    let EventData::ValidationPassed(passed) = &staging.data else {
        panic!("expected passed, got {:?}", staging.data)
    };
    assert_eq!(passed.objects.len(), 1);
    assert_eq!(passed.objects[0].name, "web");
    let bundle = BundleStore::open(&s.log.js)
        .await
        .unwrap()
        .get_bundle(&passed.bundle_digest)
        .await
        .expect("bundle stored");
    assert_eq!(
        bundle.objects[0]["metadata"]["labels"]["team"], "shop",
        "the rendered object is what is stored"
    );
    assert!(
        passed
            .warnings
            .iter()
            .any(|w| w.rule.starts_with("baseline.")),
        "restricted-profile warnings travel with the event: {:?}",
        passed.warnings
    );
    s.shutdown.cancel();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn app_dependencies_reach_the_bundle_and_a_cycle_fails_validation() {
    let s = setup().await;
    let dir = s.repo_dir.path();
    write(dir, "configs/dev/web/deploy.yaml", DEPLOYMENT);
    write(dir, "configs/dev/api/config.yaml", CONFIGMAP);
    write(
        dir,
        "configs/dev/api/app.yaml",
        "apiVersion: configsync.io/v1\nkind: App\nmetadata:\n  name: api\nneeds: [web]\n",
    );
    let sha = commit_all(dir, "api needs web");
    let publisher = s.log.publisher(Duration::from_secs(10));
    publisher
        .publish(&detected(&s.repo_url, &sha, &["dev"]))
        .await
        .unwrap();
    let ev = validation(&s.log, &sha, "dev").await;
    let EventData::ValidationPassed(passed) = &ev.data else {
        panic!("expected passed, got {:?}", ev.data)
    };
    assert_eq!(passed.objects.len(), 2, "the App document is not an object");
    let bytes = BundleStore::open(&s.log.js)
        .await
        .unwrap()
        .get(&passed.bundle_digest)
        .await
        .expect("bundle stored");
    let bundle: configsync_core::log::bundles::Bundle = serde_json::from_slice(&bytes).unwrap();
    let api = &bundle.apps["api"];
    assert_eq!(api.needs, ["web"]);
    assert_eq!(
        bundle.objects[api.objects[0] as usize]["kind"], "ConfigMap",
        "api's object is its ConfigMap"
    );
    assert_eq!(bundle.stages(), {
        let mut stages = vec![0; 2];
        stages[api.objects[0] as usize] = 1;
        stages
    });

    // web needs api too: a cycle, refused at validation.
    write(
        dir,
        "configs/dev/web/app.yaml",
        "apiVersion: configsync.io/v1\nkind: App\nmetadata:\n  name: web\nneeds: [api]\n",
    );
    let cyclic = commit_all(dir, "web needs api");
    publisher
        .publish(&detected(&s.repo_url, &cyclic, &["dev"]))
        .await
        .unwrap();
    let ev = validation(&s.log, &cyclic, "dev").await;
    let EventData::ValidationFailed(failed) = &ev.data else {
        panic!("a cycle passed: {:?}", ev.data)
    };
    assert!(
        failed.findings.iter().any(|f| f.rule == "app.cycle"),
        "{:?}",
        failed.findings
    );
    s.shutdown.cancel();
    s.task.await.unwrap().unwrap();
}
