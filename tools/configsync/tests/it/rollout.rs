//! `configsync diff`, `rollback`, `unpin` and `prune approve` as a person uses them: against a
//! running `configsync up` (found with `--state-dir`), a real Git repository and its kubesim
//! clusters.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use configsync::commands::scaffold;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::{configsync, terminate, text, wait_for_endpoints};

fn write_file(repo: &std::path::Path, path: &str, text: &str) {
    let file = repo.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

/// `configsync up` on a one-environment repository, drift repair off (so a diff can be seen).
struct Up {
    _dir: tempfile::TempDir,
    repo: std::path::PathBuf,
    state: String,
    kubeconfig: String,
    child: Child,
}

impl Up {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        scaffold::create(&repo, &["dev".to_string()]).unwrap();
        let state = dir.path().join("state");
        let mut child = Command::new(env!("CARGO_BIN_EXE_configsync"))
            .args(["up", "--state-dir"])
            .arg(&state)
            .arg("--repo")
            .arg(&repo)
            .args([
                "--environment",
                "dev",
                "--policy",
                "dev=off",
                "--poll-interval",
                "1s",
                "--health-timeout",
                "30s",
            ])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("configsync up starts");
        let endpoints = wait_for_endpoints(&state, &mut child).await;
        let kubeconfig = endpoints["kubeconfig"].as_str().unwrap().to_string();
        Self {
            _dir: dir,
            repo,
            state: state.to_str().unwrap().to_string(),
            kubeconfig,
            child,
        }
    }

    /// Runs `configsync ARGS... --state-dir STATE`.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--state-dir", &self.state]);
        configsync(&all)
    }

    /// Waits until `replay --target dev/local` satisfies `done`, and returns that state.
    async fn target_until(
        &self,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.cli(&["replay", "--target", "dev/local"]);
            if out.status.success() {
                let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                if done(&state) {
                    return state;
                }
            }
            assert!(Instant::now() < deadline, "{what}: {}", text(&out.stdout));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Objects of one kind in dev's `shop` namespace.
    async fn api(&self, group: &str, kind: &str) -> Api<DynamicObject> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let options = kube::config::KubeConfigOptions {
            context: Some("dev".into()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .unwrap();
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
        Api::namespaced_with(kube::Client::try_from(config).unwrap(), "shop", &ar)
    }

    async fn settings(&self) -> Api<DynamicObject> {
        self.api("", "ConfigMap").await
    }

    async fn color(&self) -> String {
        let cm = self.settings().await.get("web-settings").await.unwrap();
        cm.data["data"]["color"].as_str().unwrap().to_string()
    }

    async fn color_becomes(&self, color: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.color().await != color {
            assert!(
                Instant::now() < deadline,
                "web-settings never became {color}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn diff_rollback_unpin_and_prune_approve_against_a_running_up() {
    let mut up = Up::start().await;
    let first = scaffold::git(&up.repo, &["rev-parse", "HEAD"]).unwrap();
    up.target_until("the first commit healthy", |t| {
        t["deployed_revision"] == first.as_str() && t["healthy"] == true
    })
    .await;

    // Nothing to change: exit 0, and server-populated fields are not differences.
    let same = up.cli(&["diff", "--env", "dev"]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}{}",
        text(&same.stdout),
        text(&same.stderr)
    );
    assert!(text(&same.stdout).contains("ConfigMap shop/web-settings: unchanged"));

    // Someone changes the cluster: the diff shows it, as a unified diff, and exits 1.
    up.settings()
        .await
        .patch(
            "web-settings",
            &PatchParams {
                field_manager: Some("someone".into()),
                ..Default::default()
            },
            &Patch::Merge(serde_json::json!({"data": {"color": "red"}})),
        )
        .await
        .unwrap();
    let changed = up.cli(&["diff", "--env", "dev"]);
    assert_eq!(changed.status.code(), Some(1), "{}", text(&changed.stderr));
    let out = text(&changed.stdout);
    assert!(
        out.contains("ConfigMap shop/web-settings: changed"),
        "{out}"
    );
    assert!(
        out.contains("-  color: red") && out.contains("+  color: blue"),
        "{out}"
    );
    let json = up.cli(&["diff", "--env", "dev", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["changes"], 1);

    // A new commit, then a rollback to the first one (the default: the last healthy one
    // before it), pinned against the next poll.
    let second = scaffold::change(
        &up.repo,
        "configs/dev/web/config.yaml",
        "color: blue",
        "color: green",
        "green",
    )
    .unwrap();
    up.target_until("the second commit healthy", |t| {
        t["deployed_revision"] == second.as_str() && t["healthy"] == true
    })
    .await;
    assert_eq!(up.color().await, "green");
    let rollback = up.cli(&[
        "rollback",
        "--env",
        "dev",
        "--reason",
        "green is wrong",
        "--actor",
        "alice@example.com",
        "-o",
        "json",
    ]);
    assert!(rollback.status.success(), "{}", text(&rollback.stderr));
    let recorded: serde_json::Value = serde_json::from_slice(&rollback.stdout).unwrap();
    assert_eq!(recorded["data"]["toRevision"], first.as_str());
    assert_eq!(recorded["actor"], "alice@example.com");
    let pinned = up
        .target_until("rolled back", |t| t["deployed_revision"] == first.as_str())
        .await;
    assert_eq!(pinned["pin"]["revision"], first.as_str());
    assert_eq!(pinned["pin"]["actor"], "alice@example.com");
    up.color_becomes("blue").await;
    // Polls come and go; the pin holds.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(up.color().await, "blue");

    // Clear errors, and nothing changed.
    let never = up.cli(&["rollback", "--env", "dev", "--to", "0123456789abcdef"]);
    assert_eq!(never.status.code(), Some(1));
    assert!(
        text(&never.stderr).contains("never validated"),
        "{}",
        text(&never.stderr)
    );
    let unknown = up.cli(&["rollback", "--env", "qa"]);
    assert!(text(&unknown.stderr).contains("no revision was ever validated for environment qa"));
    let nothing_held = up.cli(&[
        "prune",
        "approve",
        "--env",
        "dev",
        "--cluster",
        "local",
        "--reason",
        "x",
    ]);
    assert_eq!(nothing_held.status.code(), Some(1));
    assert!(text(&nothing_held.stderr).contains("nothing is held"));

    // Unpinning returns to the newest commit.
    let unpin = up.cli(&["unpin", "--env", "dev", "--actor", "bob@example.com"]);
    assert!(unpin.status.success(), "{}", text(&unpin.stderr));
    up.target_until("back on the second commit", |t| {
        t["deployed_revision"] == second.as_str() && t["pin"].is_null()
    })
    .await;
    up.color_becomes("green").await;

    // Removing most of the environment is held until a person approves it.
    for path in [
        "configs/dev/api/config.yaml",
        "configs/dev/api/deployment.yaml",
        "configs/dev/api/service.yaml",
        "configs/dev/web/service.yaml",
    ] {
        scaffold::git(&up.repo, &["rm", "-q", path]).unwrap();
    }
    scaffold::git(&up.repo, &["commit", "-q", "-m", "retire api"]).unwrap();
    let held = up
        .target_until("the prune held", |t| !t["prune_held"].is_null())
        .await;
    assert_eq!(held["prune_held"]["would_delete"], 4);

    // The diff of a working tree with one new file: that object would be created, and the
    // held objects would be pruned.
    write_file(
        &up.repo,
        "configs/dev/web/extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: shop\n  labels:\n    app.kubernetes.io/name: extra\ndata:\n  k: v\n",
    );
    let repo = up.repo.to_str().unwrap().to_string();
    let pending = up.cli(&["diff", "--env", "dev", "--path", &repo]);
    assert_eq!(pending.status.code(), Some(1), "{}", text(&pending.stderr));
    let out = text(&pending.stdout);
    assert!(out.contains("ConfigMap shop/extra: created"), "{out}");
    assert!(out.contains("+  name: extra"), "{out}");
    assert!(
        out.contains("Deployment shop/api: would be pruned"),
        "{out}"
    );
    assert!(out.contains("Deployment shop/web: unchanged"), "{out}");
    std::fs::remove_file(up.repo.join("configs/dev/web/extra.yaml")).unwrap();
    let approve = up.cli(&[
        "prune",
        "approve",
        "--env",
        "dev",
        "--cluster",
        "local",
        "--reason",
        "api retired",
        "--actor",
        "carol@example.com",
    ]);
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    let deployments = up.api("apps", "Deployment").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while deployments.get_opt("api").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "the approved prune never deleted api"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(deployments.get_opt("web").await.unwrap().is_some());
    let inventory = up
        .target_until("the prune done", |t| t["prune_held"].is_null())
        .await;
    assert_eq!(
        inventory["inventory"].as_array().unwrap().len(),
        3,
        "{inventory}"
    );
    assert!(terminate(&mut up.child).success());
}
