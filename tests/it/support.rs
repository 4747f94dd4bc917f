//! A whole ConfigSync on one machine (the same stack `configsync up` runs) with a real Git
//! repository, plus helpers to commit, wait for events and act on clusters with kubectl.

use std::time::Duration;

use configsync::commands::stack::{Stack, StackOptions};
use configsync_core::event::Received;
pub use configsync_core::harness::WAIT;
use configsync_core::harness::{GitRepo, events_so_far, wait_for_event_named};
use configsync_core::subject;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

pub struct Pipeline {
    pub stack: Stack,
    pub repo: GitRepo,
    pub js: async_nats::jetstream::Context,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    /// A repository with `files`, committed, and the stack running on it: dev and staging
    /// repaired automatically, prod only alerted.
    pub async fn start(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = GitRepo::init();
        for (path, text) in files {
            repo.write(path, text);
        }
        repo.commit("Initial configuration");
        let options = StackOptions {
            state_dir: dir.path().join("state"),
            repo: repo.path().display().to_string(),
            branch: "main".into(),
            poll_interval: Duration::from_secs(1),
            nats: None,
            clusters: Vec::new(),
            environments: vec!["dev".into(), "prod".into()],
            policies: vec!["dev=auto".into(), "prod=alert".into()],
            applier_flags: Vec::new(),
            access: None,
        };
        let stack = tokio::time::timeout(WAIT, Stack::start(&options, CancellationToken::new()))
            .await
            .expect("stack starts in time")
            .expect("stack starts");
        // The tests read the log as a person would: the operator.
        let client = stack
            .connect(configsync_core::nats_auth::OPERATOR, "e2e-test")
            .await
            .expect("the operator connects");
        Self {
            stack,
            repo,
            js: async_nats::jetstream::new(client),
            _dir: dir,
        }
    }

    /// The first event (from the start of the log) that matches, waiting for it.
    pub async fn event(&self, what: &str, matches: impl Fn(&Received) -> bool) -> Received {
        wait_for_event_named(&self.js, subject::EVERYTHING, what, |e| {
            matches(e).then(|| e.clone())
        })
        .await
    }

    /// Every event so far that matches (reads up to the end of the log).
    pub async fn all(&self, matches: impl Fn(&Received) -> bool) -> Vec<Received> {
        let mut all = events_so_far(&self.js, subject::EVERYTHING).await;
        all.retain(|e| matches(e));
        all
    }

    /// Runs kubectl against one environment's cluster. Asynchronously: the clusters are served
    /// by this very process, so a blocking wait would starve them.
    pub async fn kubectl(&self, env: &str, args: &[&str]) -> String {
        let kubeconfig = self
            .stack
            .endpoints
            .kubeconfig
            .clone()
            .expect("local clusters");
        let cache = tempfile::tempdir().unwrap();
        let out = Command::new("kubectl")
            .args([
                "--kubeconfig",
                &kubeconfig,
                "--context",
                env,
                "--cache-dir",
                cache.path().to_str().unwrap(),
            ])
            .args(args)
            .output()
            .await
            .expect("kubectl runs (tools/install-kubectl.sh installs it)");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls a kubectl jsonpath until it prints `expected`.
    pub async fn eventually_live(&self, env: &str, args: &[&str], expected: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let kubeconfig = self.stack.endpoints.kubeconfig.clone().unwrap();
            let out = Command::new("kubectl")
                .args(["--kubeconfig", &kubeconfig, "--context", env])
                .args(args)
                .output()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && text == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "kubectl {args:?} in {env} never printed {expected:?} (last: {text:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The audit API's token of `scope`, as `configsync up` keeps it in its state directory.
    pub fn audit_token(&self, scope: configsync_auditor::auth::Scope) -> String {
        let dir = self
            .stack
            .endpoints_file
            .parent()
            .expect("a state directory");
        let file = configsync::commands::state_dir::audit_token_file(dir, scope);
        std::fs::read_to_string(file)
            .expect("configsync up keeps the audit tokens")
            .trim()
            .to_string()
    }

    pub async fn stop(self) {
        assert!(!self.stack.stop().await, "every service stopped cleanly");
    }
}

pub fn configmap(name: &str, color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  color: {color}\n"
    )
}

pub const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27.3\n";
