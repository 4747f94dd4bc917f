//! The validator against a real nats-server and real Git repositories: commit-detected in,
//! validation passed (with the bundle in the object store) or failed (with file and line) out.

use clap::Parser;
use configsync_core::event::{
    AppChange, CommitDetected, EnvironmentChange, EventData, Outgoing, Person, Received,
};
use configsync_core::harness::{Bus, GitRepo, free_addr};
use tokio_util::sync::CancellationToken;

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
        source: None,
        path: None,
        trailers: Vec::new(),
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
    bus: Bus,
    repo: GitRepo,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), configsync_core::service::ServiceError>>,
    _work: tempfile::TempDir,
}

async fn setup() -> Setup {
    let bus = Bus::start().await;
    let repo = GitRepo::init();
    let work = tempfile::tempdir().unwrap();
    let config = configsync_validator::Config::try_parse_from([
        "validator",
        "--nats-url",
        &bus.url(),
        "--ops-addr",
        &free_addr().to_string(),
        "--repo",
        &repo.url(),
        "--work-dir",
        work.path().to_str().unwrap(),
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(configsync_validator::run(config, shutdown.clone()));
    Setup {
        bus,
        repo,
        shutdown,
        task,
        _work: work,
    }
}

impl Setup {
    /// Waits for the validation event of `env` at `sha`.
    async fn validation(&self, sha: &str, env: &str) -> Received {
        self.bus
            .wait_for("configsync.evt.*.*.validation.>", |e| {
                (e.revision() == Some(sha) && e.environment() == Some(env)).then(|| e.clone())
            })
            .await
    }
}

const CONFIGMAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  color: blue\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n";

#[tokio::test]
async fn a_valid_environment_passes_and_its_bundle_is_stored_by_digest() {
    let s = setup().await;
    s.repo.write("configs/dev/web/config.yaml", CONFIGMAP);
    s.repo.write("configs/dev/web/deploy.yaml", DEPLOYMENT);
    s.repo.write("configs/prod/web/config.yaml", CONFIGMAP);
    let sha = s.repo.commit("add web");
    let commit = detected(&s.repo.url(), &sha, &["dev"]);
    s.bus.publish(&commit).await;

    let ev = s.validation(&sha, "dev").await;
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
    let bytes = s
        .bus
        .bundles()
        .await
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
    s.repo.write(
        "configs/dev/web/config.yaml",
        &format!("{CONFIGMAP}---\napiVersion: v1\nkind: [oops\n"),
    );
    s.repo
        .write("configs/staging/README.md", "no manifests here\n");
    let sha = s.repo.commit("broken");
    s.bus
        .publish(&detected(&s.repo.url(), &sha, &["dev", "staging", "prod"]))
        .await;

    let dev = s.validation(&sha, "dev").await;
    let EventData::ValidationFailed(failed) = &dev.data else {
        panic!("expected failed, got {:?}", dev.data)
    };
    let f = &failed.findings[0];
    assert_eq!(f.file.as_deref(), Some("configs/dev/web/config.yaml"));
    assert_eq!(f.rule, "yaml.syntax");
    assert!(f.line.unwrap() >= 9, "{f:?}");

    let staging = s.validation(&sha, "staging").await;
    let EventData::ValidationFailed(failed) = &staging.data else {
        panic!("expected failed")
    };
    assert!(
        failed.findings[0].message.contains("has no manifests"),
        "{:?}",
        failed.findings
    );
    let prod = s.validation(&sha, "prod").await;
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
    s.repo.write("configs/dev/web/config.yaml", CONFIGMAP);
    std::os::unix::fs::symlink(
        "/etc/passwd",
        s.repo.path().join("configs/dev/web/passwd.yaml"),
    )
    .unwrap();
    let sha = s.repo.commit("sneaky");
    s.bus
        .publish(&detected(&s.repo.url(), &sha, &["dev"]))
        .await;
    let dev = s.validation(&sha, "dev").await;
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
    let repo = &s.repo;
    // dev: an unknown field, an unpinned image (baseline) and no `team` label (the
    // repository's own policy).
    repo.write(
        "configs/dev/web/deploy.yaml",
        &DEPLOYMENT
            .replace("  replicas: 1", "  replicaz: 1")
            .replace("nginx:1.27", "nginx"),
    );
    repo.write("policies/team.rego",
        "package team\nimport rego.v1\ndeny contains {\"id\": \"team.label\", \"msg\": \"every object needs a team label\", \"path\": \".metadata.labels\"} if {\n  not input.metadata.labels.team\n}\n",
    );
    // staging: a kustomization whose base lives outside configs/, adding the label.
    repo.write("base/web/deploy.yaml", DEPLOYMENT);
    repo.write("base/web/kustomization.yaml", "resources: [deploy.yaml]\n");
    repo.write(
        "configs/staging/kustomization.yaml",
        "resources: [../../base/web]\nlabels:\n- pairs: {team: shop}\n",
    );
    let sha = repo.commit("policies and a kustomization");
    s.bus
        .publish(&detected(&s.repo.url(), &sha, &["dev", "staging"]))
        .await;

    let dev = s.validation(&sha, "dev").await;
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

    let staging = s.validation(&sha, "staging").await;
    let EventData::ValidationPassed(passed) = &staging.data else {
        panic!("expected passed, got {:?}", staging.data)
    };
    assert_eq!(passed.objects.len(), 1);
    assert_eq!(passed.objects[0].name, "web");
    let bundle = s
        .bus
        .bundles()
        .await
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
    s.repo.write("configs/dev/web/deploy.yaml", DEPLOYMENT);
    s.repo.write("configs/dev/api/config.yaml", CONFIGMAP);
    s.repo.write(
        "configs/dev/api/app.yaml",
        "apiVersion: configsync.io/v1\nkind: App\nmetadata:\n  name: api\nneeds: [web]\n",
    );
    let sha = s.repo.commit("api needs web");
    s.bus
        .publish(&detected(&s.repo.url(), &sha, &["dev"]))
        .await;
    let ev = s.validation(&sha, "dev").await;
    let EventData::ValidationPassed(passed) = &ev.data else {
        panic!("expected passed, got {:?}", ev.data)
    };
    assert_eq!(passed.objects.len(), 2, "the App document is not an object");
    let bytes = s
        .bus
        .bundles()
        .await
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
    s.repo.write(
        "configs/dev/web/app.yaml",
        "apiVersion: configsync.io/v1\nkind: App\nmetadata:\n  name: web\nneeds: [api]\n",
    );
    let cyclic = s.repo.commit("web needs api");
    s.bus
        .publish(&detected(&s.repo.url(), &cyclic, &["dev"]))
        .await;
    let ev = s.validation(&cyclic, "dev").await;
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

/// With several sources, a commit is read from its own source: a sub-directory is the root
/// (its `configs/`, its `policies/`), another branch is fetched as such, and the
/// `gitsource` attribute carries over to the validation events.
#[tokio::test]
async fn each_commit_is_read_from_its_own_source_and_sub_directory() {
    let bus = Bus::start().await;
    let repo = GitRepo::init();
    let work = tempfile::tempdir().unwrap();
    // Team a keeps a valid environment under teams/a; the root's configs/ would fail.
    repo.write("teams/a/configs/dev/web/config.yaml", CONFIGMAP);
    repo.write("configs/dev/web/config.yaml", "not: [valid\n");
    let main_sha = repo.commit("team a");
    repo.git(&["checkout", "-q", "-b", "release"]);
    repo.write("configs/prod/web/config.yaml", CONFIGMAP);
    let release_sha = repo.commit("release only");
    let config = configsync_validator::Config::try_parse_from([
        "validator",
        "--nats-url",
        &bus.url(),
        "--ops-addr",
        &free_addr().to_string(),
        "--source",
        &format!("team-a={}#main:teams/a", repo.url()),
        "--source",
        &format!("release={}#release", repo.url()),
        "--work-dir",
        work.path().to_str().unwrap(),
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(configsync_validator::run(config, shutdown.clone()));

    let of = |sha: &str, source: &str, branch: &str, path: Option<&str>, env: &str| {
        let who = Person {
            name: "Test".into(),
            email: "test@example.com".into(),
            time: chrono::Utc::now(),
        };
        let payload = CommitDetected {
            repository: repo.url(),
            branch: branch.into(),
            source: Some(source.into()),
            path: path.map(str::to_string),
            trailers: Vec::new(),
            sha: sha.into(),
            parents: vec![],
            author: who.clone(),
            committer: who,
            message: "change".into(),
            signed: false,
            signature: None,
            environments: vec![EnvironmentChange {
                environment: env.into(),
                apps: vec![AppChange {
                    app: "web".into(),
                    paths: vec![],
                }],
            }],
            other_paths: vec![],
            whole_tree: false,
        };
        Outgoing::builder(&payload)
            .cause(sha)
            .cause(source)
            .build("configsync://git-watcher/test")
            .unwrap()
    };
    bus.publish(&of(&main_sha, "team-a", "main", Some("teams/a"), "dev"))
        .await;
    bus.publish(&of(&release_sha, "release", "release", None, "prod"))
        .await;
    // A source this validator does not follow is left alone (another validator's).
    bus.publish(&of(&main_sha, "team-b", "main", Some("teams/b"), "dev"))
        .await;

    for (sha, env, source) in [
        (&main_sha, "dev", "team-a"),
        (&release_sha, "prod", "release"),
    ] {
        let ev = bus
            .wait_for("configsync.evt.*.*.validation.>", |e| {
                (e.revision() == Some(sha.as_str()) && e.environment() == Some(env))
                    .then(|| e.clone())
            })
            .await;
        let EventData::ValidationPassed(passed) = &ev.data else {
            panic!("{source}: expected passed, got {:?}", ev.data)
        };
        assert_eq!(passed.objects.len(), 1, "{source}");
        assert_eq!(ev.git_source(), Some(source));
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let validations = bus.events_on("configsync.evt.*.*.validation.>").await;
    assert_eq!(
        validations.len(),
        2,
        "team b's commit was not validated here"
    );
}
