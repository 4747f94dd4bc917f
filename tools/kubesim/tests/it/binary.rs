//! The `kubesim` binary's contract: kubeconfig written once ready, real port for port 0,
//! named context, clean stop on SIGTERM.

use std::path::{Path, PathBuf};

use crate::common::{WAIT, eventually, raw_at};

/// A running `kubesim` binary and the kubeconfig it wrote once ready.
struct Binary {
    child: tokio::process::Child,
    kubeconfig: PathBuf,
    addr: std::net::SocketAddr,
}

/// Starts the binary on port 0 with context `demo`, and waits for its kubeconfig.
async fn start_binary(dir: &Path) -> Binary {
    let kubeconfig = dir.join("kubeconfig");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubesim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--context",
            "demo",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("kubesim starts");
    let text = eventually("kubeconfig written", || async {
        std::fs::read_to_string(&kubeconfig)
            .ok()
            .filter(|t| t.contains("current-context"))
    })
    .await;
    let config: serde_json::Value = serde_yaml::from_str(&text).expect("kubeconfig is YAML");
    assert_eq!(config["current-context"], "demo");
    let server = config["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server url")
        .to_string();
    let addr: std::net::SocketAddr = server
        .trim_start_matches("http://")
        .parse()
        .expect("host:port");
    Binary {
        child,
        kubeconfig,
        addr,
    }
}

/// SIGTERM, then a clean exit in time.
async fn stop(mut binary: Binary) {
    let pid = binary.child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(WAIT, binary.child.wait())
        .await
        .expect("exits in time")
        .expect("waits");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn binary_writes_kubeconfig_when_ready_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = start_binary(dir.path()).await;
    assert_ne!(binary.addr.port(), 0, "the real port is written");
    // Ready means serving: the first request after the file appears is answered.
    let version = raw_at(binary.addr, "GET", "/version", None, b"").await;
    assert_eq!(version.status, 200);
    stop(binary).await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn binary_kubeconfig_works_with_kubectl() {
    configsync_prereq::require_tool("kubectl");
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = start_binary(dir.path()).await;
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&binary.kubeconfig)
        .args(["--context", "demo", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .args(["get", "namespaces", "-o", "name"])
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("namespace/kube-system"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(binary).await;
}
