//! Benchmark: the applier's rollout of 1,000 and 10,000 objects to a kubesim cluster against
//! `kubectl apply --server-side` of the same objects to an identical kubesim, in the same run;
//! the second apply of an unchanged revision; the applier's peak RSS; and the time from a
//! never-ready commit to the rolled-back revision being healthy.
//!
//! `cargo bench -p configsync-applier --bench rollout [-- SIZES]` (default `1000,10000`).
//! Needs nats-server and kubectl on PATH (tools/test.sh installs both).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use configsync_core::config::NatsArgs;
use configsync_core::event::{EventData, Outgoing, ValidationPassed};
use configsync_core::harness::NatsServer;
use configsync_core::log::bundles::{self, BundleStore};
use configsync_core::log::{Entry, EventLog, Reader, Start, stream};
use configsync_core::metrics::Metrics;
use serde_json::{Value, json};

/// How long one measured step may take before the benchmark gives up.
const STEP: Duration = Duration::from_secs(900);

/// The objects of one size: a namespace, then ConfigMaps, Services and Deployments (3:1:1).
fn objects(n: usize) -> Vec<Value> {
    let mut out =
        vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})];
    for i in 0..n - 1 {
        let name = format!("app-{i:05}");
        out.push(match i % 5 {
            0 => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "bench"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": "nginx:1.27.3", "ports": [{"containerPort": 80}]}]}}}}),
            1 => json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "bench"},
                "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 80}]}}),
            _ => json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "bench"},
                "data": {"color": "blue", "payload": "x".repeat(200)}}),
        });
    }
    out
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn kubesim() -> anyhow::Result<(kubesim::KubeSim, tempfile::NamedTempFile)> {
    let sim = kubesim::KubeSim::start(kubesim::Config::default()).await?;
    let kubeconfig = tempfile::NamedTempFile::new()?;
    sim.write_kubeconfig(kubeconfig.path(), "bench")?;
    Ok((sim, kubeconfig))
}

/// `kubectl apply --server-side` of `file`, timed.
async fn kubectl_apply(kubeconfig: &Path, file: &Path) -> anyhow::Result<Duration> {
    let cache = tempfile::tempdir()?;
    let started = Instant::now();
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["apply", "--server-side", "--field-manager", "bench", "-f"])
        .arg(file)
        .stdout(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(started.elapsed())
}

/// Stores the bundle as the validator does, before the clock starts: storing it is the
/// validator's work, not the applier's.
async fn store(log: &EventLog, revision: &str, objects: &[Value]) -> anyhow::Result<String> {
    let bundle = json!({"environment": "bench", "revision": revision, "objects": objects});
    Ok(BundleStore::open(&log.js)
        .await?
        .put(&serde_json::to_vec(&bundle)?)
        .await?)
}

/// Publishes the validation of the stored bundle `digest`, as the validator does.
async fn validate(
    log: &EventLog,
    revision: &str,
    objects: &[Value],
    digest: String,
    commit_sequence: u64,
) -> anyhow::Result<()> {
    let passed = ValidationPassed {
        environment: "bench".into(),
        revision: revision.into(),
        bundle_digest: digest,
        objects: objects
            .iter()
            .filter_map(configsync_core::cluster::object_ref)
            .collect(),
        warnings: vec![],
        commit_sequence,
        author: None,
    };
    let event = Outgoing::builder(&passed)
        .cause(revision)
        .build("configsync://bench/1")?;
    log.publisher(Duration::from_secs(30))
        .publish(&event)
        .await?;
    Ok(())
}

/// Waits for the first event on `filter` that `pick` accepts.
async fn wait_for<T>(
    log: &EventLog,
    filter: &str,
    mut pick: impl FnMut(&EventData) -> Option<T>,
) -> anyhow::Result<T> {
    let mut reader = Reader::open(&log.js, log.stream(), Start::Beginning, Some(filter)).await?;
    tokio::time::timeout(STEP, async {
        loop {
            match reader.next().await {
                Some(Ok(Entry::Event(e))) => {
                    if let Some(found) = pick(&e.data) {
                        return Ok(found);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("reading the log: {e}")),
                None => return Err(anyhow::anyhow!("the log reader stopped")),
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("timed out waiting on {filter}"))?
}

/// The applier binary for cluster `bench/c1`, with `extra` flags.
fn applier(nats: &str, kubeconfig: &Path, extra: &[&str]) -> anyhow::Result<tokio::process::Child> {
    let ops = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    Ok(tokio::process::Command::new(env!("CARGO_BIN_EXE_applier"))
        .args([
            "--nats-url",
            nats,
            "--ops-addr",
            &ops.to_string(),
            "--cluster",
        ])
        .arg(format!("bench/c1={}#bench", kubeconfig.display()))
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_APPLIER_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stderr(if std::env::var_os("BENCH_APPLIER_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()?)
}

async fn bus() -> anyhow::Result<(NatsServer, EventLog)> {
    let server = NatsServer::start().await?;
    let client = NatsArgs::for_url(server.url()).connect("bench").await?;
    let log = EventLog::new(client, "configsync://bench/1", Metrics::new())?;
    stream::ensure(&log.js, &log.spec).await?;
    bundles::ensure(&log.js, 1).await?;
    Ok((server, log))
}

async fn size(n: usize) -> anyhow::Result<()> {
    let objects = objects(n);
    // One `List`, which kubectl applies object by object.
    let file = tempfile::Builder::new().suffix(".json").tempfile()?;
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(file.path(), serde_json::to_vec(&list)?)?;

    // Baseline: kubectl against its own kubesim.
    let (base_sim, base_kubeconfig) = kubesim().await?;
    let kubectl_first = kubectl_apply(base_kubeconfig.path(), file.path()).await?;
    let kubectl_second = kubectl_apply(base_kubeconfig.path(), file.path()).await?;
    base_sim.shutdown().await;

    // ConfigSync: the applier binary against an identical kubesim.
    let (sim, kubeconfig) = kubesim().await?;
    let (server, log) = bus().await?;
    let mut child = applier(&server.url(), kubeconfig.path(), &[])?;
    let digest = store(&log, "r1", &objects).await?;
    let started = Instant::now();
    validate(&log, "r1", &objects, digest, 1).await?;
    let first = wait_for(&log, "configsync.evt.bench.c1.apply.>", |d| match d {
        EventData::ApplySucceeded(a) if a.revision == "r1" => Some(a.counts),
        EventData::ApplyFailed(f) if f.revision == "r1" && !f.transient => {
            panic!("apply failed: {}", f.reason)
        }
        _ => None,
    })
    .await?;
    let first_time = started.elapsed();
    let rss_first = child.id().and_then(peak_rss_mib).unwrap_or(f64::NAN);
    let writes_before = sim.requests().writes();
    let digest = store(&log, "r2", &objects).await?;
    let started = Instant::now();
    validate(&log, "r2", &objects, digest, 2).await?;
    let second = wait_for(
        &log,
        "configsync.evt.bench.c1.apply.succeeded.v1",
        |d| match d {
            EventData::ApplySucceeded(a) if a.revision == "r2" => Some(a.counts),
            _ => None,
        },
    )
    .await?;
    let second_time = started.elapsed();
    let second_writes = sim.requests().writes() - writes_before;
    let rss = child.id().and_then(peak_rss_mib).unwrap_or(f64::NAN);
    child.kill().await?;

    let ratio = first_time.as_secs_f64() / kubectl_first.as_secs_f64();
    let second_share = second_time.as_secs_f64() / first_time.as_secs_f64();
    println!("\n{n} objects (1 Namespace, ConfigMaps:Services:Deployments 3:1:1)");
    println!(
        "  kubectl apply --server-side     first {:>8.2}s   again {:>8.2}s",
        kubectl_first.as_secs_f64(),
        kubectl_second.as_secs_f64()
    );
    println!(
        "  configsync applier              first {:>8.2}s   again {:>8.2}s ({} writes; {} created, {} unchanged)",
        first_time.as_secs_f64(),
        second_time.as_secs_f64(),
        second_writes,
        first.created,
        second.unchanged
    );
    println!(
        "  first apply / kubectl: {ratio:.2} (goal <= 1.0) {}",
        verdict(ratio <= 1.0)
    );
    println!(
        "  second apply / first: {:.0}% (goal <= 10%) {}",
        second_share * 100.0,
        verdict(second_share <= 0.10)
    );
    println!(
        "  applier peak RSS: {rss:.0} MiB (after the first apply: {rss_first:.0} MiB) (goal <= 150 MB) {}",
        verdict(rss * 1.048_576 <= 150.0)
    );
    sim.shutdown().await;
    Ok(())
}

/// Commit of a never-ready workload → automatic rollback → healthy again.
async fn rollback(kind: &str, health_timeout: Duration) -> anyhow::Result<()> {
    let workload = |image: &str, never_ready: bool| {
        let mut o = match kind {
            "Deployment" => json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}}}}),
            _ => json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": "default"},
                "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": image}]}}}}),
        };
        if never_ready {
            o["metadata"]["annotations"] = json!({"kubesim.configsync.io/never-ready": "true"});
        }
        o
    };
    let (sim, kubeconfig) = kubesim().await?;
    let (server, log) = bus().await?;
    let timeout = format!("{}s", health_timeout.as_secs());
    let mut child = applier(
        &server.url(),
        kubeconfig.path(),
        &["--auto-rollback", "bench", "--health-timeout", &timeout],
    )?;
    let good = [workload("app:1", false)];
    let digest = store(&log, "good", &good).await?;
    validate(&log, "good", &good, digest, 1).await?;
    wait_for(
        &log,
        "configsync.evt.bench.c1.health.ready.v1",
        |_| Some(()),
    )
    .await?;
    let bad = [workload("app:2", true)];
    let digest = store(&log, "bad", &bad).await?;
    let started = Instant::now();
    validate(&log, "bad", &bad, digest, 2).await?;
    let mut ready = 0;
    wait_for(
        &log,
        "configsync.evt.bench.c1.health.ready.v1",
        |d| match d {
            EventData::HealthReady(h) if h.revision == "good" => {
                ready += 1;
                (ready == 2).then_some(())
            }
            _ => None,
        },
    )
    .await?;
    let took = started.elapsed();
    let goal = health_timeout + Duration::from_secs(2);
    println!(
        "  never-ready {kind} (health timeout {}s): commit → rolled back and healthy in {:.2}s (goal <= {:.0}s) {}",
        health_timeout.as_secs(),
        took.as_secs_f64(),
        goal.as_secs_f64(),
        verdict(took <= goal)
    );
    child.kill().await?;
    sim.shutdown().await;
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let kubectl = std::process::Command::new("kubectl")
            .args(["version", "--client", "-o", "json"])
            .output()?;
        let kubectl: Value = serde_json::from_slice(&kubectl.stdout).unwrap_or_default();
        println!("rollout benchmark: release build, {} cores, sizes {sizes:?}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
        println!(
            "baseline: kubectl {} (`apply --server-side`), each tool against its own in-process kubesim; the applier is its own process (concurrency 16; every object that may change is dry-run before any write)",
            kubectl["clientVersion"]["gitVersion"].as_str().unwrap_or("?")
        );
        for n in &sizes {
            size(*n).await?;
        }
        println!("\nrollback");
        rollback("Deployment", Duration::from_secs(30)).await?;
        rollback("StatefulSet", Duration::from_secs(5)).await?;
        Ok(())
    })
}
