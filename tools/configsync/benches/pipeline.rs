//! Pipeline latency benchmark: commit → applied and drift → repaired through the whole stack
//! (nats-server, kubesim, the six services), beside a plain `kubectl apply --server-side` of
//! the same objects to the same kubesim, in the same run.
//!
//! `cargo bench -p configsync --bench pipeline -- [CHANGES]`

use std::time::{Duration, Instant};

use configsync::commands::scaffold::git;
use configsync::commands::stack::{Stack, StackOptions};
use configsync_core::event::{EventData, Received};
use configsync_core::log::{Entry, Reader, Start};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const POLL: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_secs(60);

fn configmap(color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  color: {color}\n"
    )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27.3\n";

fn write(repo: &std::path::Path, path: &str, text: &str) {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().expect("nested")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// Waits on a live reader for the first event that matches.
async fn next_matching(reader: &mut Reader, matches: impl Fn(&Received) -> bool) -> Instant {
    tokio::time::timeout(STEP, async {
        loop {
            if let Some(Ok(Entry::Event(e))) = reader.next().await
                && matches(&e)
            {
                return Instant::now();
            }
        }
    })
    .await
    .expect("the pipeline answers within the step timeout")
}

async fn kubectl(kubeconfig: &str, args: &[&str]) {
    let out = Command::new("kubectl")
        .args(["--kubeconfig", kubeconfig, "--context", "dev"])
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| {
        ms(v[((v.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(v.len() - 1)])
    };
    (at(0.50), at(0.95), ms(*v.last().expect("samples")))
}

#[tokio::main]
async fn main() {
    let changes: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    git(&repo, &["init", "-q"]).expect("git init");
    write(&repo, "configs/dev/web/config.yaml", &configmap("c0"));
    write(&repo, "configs/dev/web/deploy.yaml", DEPLOYMENT);
    git(&repo, &["add", "-A"]).expect("add");
    git(&repo, &["commit", "-q", "-m", "initial"]).expect("commit");
    let first = git(&repo, &["rev-parse", "HEAD"]).expect("sha");

    let options = StackOptions {
        state_dir: dir.path().join("state"),
        repo: repo.display().to_string(),
        branch: "main".into(),
        poll_interval: POLL,
        nats: None,
        clusters: Vec::new(),
        environments: vec!["dev".into()],
        policies: vec!["dev=auto".into()],
        applier_flags: Vec::new(),
        access: None,
    };
    let stack = Stack::start(&options, CancellationToken::new())
        .await
        .expect("stack starts");
    let kubeconfig = stack.endpoints.kubeconfig.clone().expect("local cluster");
    let client = stack
        .connect(configsync_core::nats_auth::OPERATOR, "pipeline-bench")
        .await
        .expect("nats");
    let js = async_nats::jetstream::new(client);
    let mut reader = Reader::open(
        &js,
        "CONFIGSYNC_EVENTS",
        Start::Beginning,
        Some(configsync_core::subject::EVERYTHING),
    )
    .await
    .expect("reader");
    next_matching(
        &mut reader,
        |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.revision == first),
    )
    .await;

    println!("# pipeline latency benchmark");
    println!(
        "conditions: {changes} changes each, {} cores, profile {}, one kubesim cluster (in process), local nats-server, git-watcher polling every {} ms (detection by polling: a commit waits up to one interval), 2 objects (ConfigMap + Deployment)",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(0),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        POLL.as_millis()
    );

    // Commit → applied.
    let mut commit_to_applied = Vec::new();
    for i in 1..=changes {
        write(
            &repo,
            "configs/dev/web/config.yaml",
            &configmap(&format!("c{i}")),
        );
        let started = Instant::now();
        git(&repo, &["commit", "-q", "-am", &format!("change {i}")]).expect("commit");
        let sha = git(&repo, &["rev-parse", "HEAD"]).expect("sha");
        let done = next_matching(
            &mut reader,
            |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.revision == sha),
        )
        .await;
        commit_to_applied.push(done - started);
    }

    // A change behind ConfigSync's back → repaired (policy auto). The change is made in process
    // with kubectl's field manager, so that the clock starts exactly when it is live.
    let configmaps = {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
        let options = kube::config::KubeConfigOptions {
            context: Some("dev".into()),
            ..Default::default()
        };
        let client = kube::Client::try_from(
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .expect("config"),
        )
        .expect("client");
        let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "",
            "v1",
            "ConfigMap",
        ));
        kube::Api::<kube::api::DynamicObject>::namespaced_with(client, "default", &ar)
    };
    let params = kube::api::PatchParams {
        field_manager: Some("kubectl-patch".into()),
        ..Default::default()
    };
    let mut drift_to_repaired = Vec::new();
    for i in 1..=changes {
        let patch = serde_json::json!({"data": {"color": format!("drift{i}")}});
        let started = Instant::now();
        configmaps
            .patch("settings", &params, &kube::api::Patch::Merge(&patch))
            .await
            .expect("drift");
        let done = next_matching(&mut reader, |e| matches!(&e.data, EventData::RemediationSucceeded(r) if r.object.name == "settings")).await;
        drift_to_repaired.push(done - started);
    }

    // Baseline: kubectl apply --server-side of the same objects to the same cluster, in a
    // namespace of their own so that ConfigSync's drift repair does not interfere.
    let manifests = dir.path().join("manifests");
    write(
        &dir.path().join("ns"),
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: baseline\n",
    );
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "-f",
            dir.path().join("ns/ns.yaml").to_str().expect("utf-8 path"),
        ],
    )
    .await;
    let mut kubectl_apply = Vec::new();
    for i in 1..=changes {
        write(
            &manifests,
            "config.yaml",
            &configmap(&format!("k{i}")).replace("namespace: default", "namespace: baseline"),
        );
        write(
            &manifests,
            "deploy.yaml",
            &DEPLOYMENT.replace("namespace: default", "namespace: baseline"),
        );
        let started = Instant::now();
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "--server-side",
                "-f",
                manifests.to_str().expect("utf-8 path"),
            ],
        )
        .await;
        kubectl_apply.push(started.elapsed());
    }
    assert!(!stack.stop().await, "services stopped cleanly");

    let row = |name: &str, v: Vec<Duration>| {
        let (p50, p95, max) = percentiles(v);
        println!("| {name} | {p50:.0} | {p95:.0} | {max:.0} |");
    };
    println!("| measure ({changes} samples) | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    row("commit → apply succeeded (ConfigSync)", commit_to_applied);
    row(
        "change by another field manager → remediation succeeded (ConfigSync, policy auto)",
        drift_to_repaired,
    );
    row(
        "kubectl apply --server-side of the same objects (baseline)",
        kubectl_apply,
    );
}
