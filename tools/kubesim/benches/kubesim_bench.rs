//! Benchmark: server-side apply, list and watch throughput and memory of a `kubesim`
//! process, through kube::Client and through kubectl, in the same run.
//!
//! `cargo bench -p kubesim` (sizes from KUBESIM_BENCH_SIZES, default "1000,10000").

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

const CONCURRENCY: usize = 16;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn config_map(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"bench": "true"}},
           "data": {"key": "value", "payload": "x".repeat(200)}})
}

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{n} objects in {:.2}s = {:.0} objects/s",
        d.as_secs_f64(),
        n as f64 / d.as_secs_f64()
    )
}

async fn kubectl(
    kubeconfig: &Path,
    cache: &Path,
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

/// Watches from resourceVersion 0 until `n` ADDED events arrived.
async fn watch_all(api: &Api<ConfigMap>, n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let stream = api.watch(&WatchParams::default().timeout(290), "0").await?;
    futures::pin_mut!(stream);
    let mut seen = 0;
    while let Some(ev) = stream.try_next().await? {
        if matches!(ev, WatchEvent::Added(_)) {
            seen += 1;
            if seen == n {
                return Ok(started.elapsed());
            }
        }
    }
    anyhow::bail!("watch ended after {seen} of {n} events")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("KUBESIM_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = tempfile::tempdir()?;
    let kubeconfig: PathBuf = dir.path().join("kubeconfig");
    let cache = dir.path().join("cache");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let pid = server
        .id()
        .ok_or_else(|| anyhow::anyhow!("server exited"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        anyhow::ensure!(Instant::now() < deadline, "no kubeconfig from kubesim");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kc = Kubeconfig::read_from(&kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?,
    )?;
    let has_kubectl = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();

    println!("kubesim benchmark");
    println!(
        "  conditions: {} CPUs, server build: {}, client concurrency {CONCURRENCY}, ConfigMaps of ~300 bytes, server in its own process (pid {pid})",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if cfg!(debug_assertions) {
            "debug (unoptimised)"
        } else {
            "release"
        }
    );
    println!(
        "  kubectl: {}",
        if has_kubectl {
            "present (one process per command, sequential requests)"
        } else {
            "absent: kubectl figures skipped"
        }
    );
    println!("  server RSS at start: {} KiB", rss_kib(pid).unwrap_or(0));

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for &n in &sizes {
        for tool in ["kube", "kubectl"] {
            if tool == "kubectl" && !has_kubectl {
                continue;
            }
            let ns = format!("bench-{tool}-{n}");
            namespaces
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
                )
                .await?;
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
            let started = Instant::now();
            if tool == "kube" {
                let pp = PatchParams::apply("bench");
                futures::stream::iter(0..n)
                    .map(|i| {
                        let api = api.clone();
                        let pp = pp.clone();
                        async move {
                            api.patch(
                                &format!("cm-{i}"),
                                &pp,
                                &Patch::Apply(config_map(&format!("cm-{i}"))),
                            )
                            .await
                        }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .try_collect::<Vec<_>>()
                    .await?;
            } else {
                let docs: Vec<String> = (0..n)
                    .map(|i| serde_yaml::to_string(&config_map(&format!("cm-{i}"))))
                    .collect::<Result<_, _>>()?;
                let file = dir.path().join(format!("{ns}.yaml"));
                std::fs::write(&file, docs.join("\n---\n"))?;
                kubectl(
                    &kubeconfig,
                    &cache,
                    &[
                        "apply",
                        "--server-side",
                        "-n",
                        &ns,
                        "-f",
                        file.to_str().unwrap_or_default(),
                    ],
                )
                .await?;
            }
            println!(
                "  [{tool}] server-side apply: {}",
                rate(n, started.elapsed())
            );
            println!(
                "  server RSS after applying {tool} {n}: {} KiB",
                rss_kib(pid).unwrap_or(0)
            );

            let started = Instant::now();
            let listed = if tool == "kube" {
                api.list(&ListParams::default()).await?.items.len()
            } else {
                let out = kubectl(
                    &kubeconfig,
                    &cache,
                    &[
                        "get",
                        "configmaps",
                        "-n",
                        &ns,
                        "-o",
                        "json",
                        "--chunk-size=0",
                    ],
                )
                .await?;
                serde_json::from_slice::<serde_json::Value>(&out.stdout)?["items"]
                    .as_array()
                    .map(Vec::len)
                    .unwrap_or(0)
            };
            anyhow::ensure!(listed == n, "listed {listed} of {n}");
            println!("  [{tool}] list: {}", rate(n, started.elapsed()));

            let took = if tool == "kube" {
                watch_all(&api, n).await?
            } else {
                let started = Instant::now();
                let url = format!(
                    "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion=0&timeoutSeconds=290"
                );
                let mut child = tokio::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "--raw", &url])
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()?;
                let mut lines = BufReader::new(
                    child
                        .stdout
                        .take()
                        .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
                )
                .lines();
                let mut seen = 0;
                while seen < n {
                    match lines.next_line().await? {
                        Some(l) if l.contains("\"ADDED\"") => seen += 1,
                        Some(_) => {}
                        None => anyhow::bail!("kubectl watch ended after {seen} of {n}"),
                    }
                }
                let _ = child.kill().await;
                started.elapsed()
            };
            println!("  [{tool}] watch from resourceVersion 0: {}", rate(n, took));
            println!(
                "  server RSS after list and watch of {tool} {n}: {} KiB",
                rss_kib(pid).unwrap_or(0)
            );
        }
    }
    let total: usize = sizes.iter().sum::<usize>() * if has_kubectl { 2 } else { 1 };
    println!(
        "  server RSS holding {total} ConfigMaps: {} KiB",
        rss_kib(pid).unwrap_or(0)
    );
    server.start_kill()?;
    let _ = server.wait().await;
    Ok(())
}
