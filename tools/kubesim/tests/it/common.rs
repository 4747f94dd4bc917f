//! Shared test helpers: start a server, build clients, run kubectl, raw HTTP, polling.

use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::{Config, KubeSim};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CONTEXT: &str = "kubesim-test";
pub use configsync_core::harness::{WAIT, eventually};

pub fn test_config() -> Config {
    Config {
        rollout_delay: Duration::from_millis(50),
        ..Config::default()
    }
}

pub async fn start() -> KubeSim {
    start_with(test_config()).await
}

pub async fn start_with(config: Config) -> KubeSim {
    tokio::time::timeout(WAIT, KubeSim::start(config))
        .await
        .expect("server starts in time")
        .expect("server starts")
}

pub async fn client(sim: &KubeSim) -> kube::Client {
    let kubeconfig =
        Kubeconfig::from_yaml(&sim.kubeconfig_yaml(CONTEXT)).expect("kubeconfig parses");
    let options = KubeConfigOptions {
        context: Some(CONTEXT.into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

/// The shared corpus's root, which must hold `part`; fails the test naming where it was
/// looked for when it does not (tests that call this are ignored without it, outside CI).
pub fn corpus(part: &str) -> PathBuf {
    configsync_prereq::require_corpus(part)
}

/// The real kubectl against a server, with its own kubeconfig and discovery cache.
pub struct Kubectl {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    /// Fails the test, naming the installer, when kubectl is not on PATH (tests that call
    /// this are ignored without it, outside CI).
    pub fn new(sim: &KubeSim) -> Kubectl {
        configsync_prereq::require_tool("kubectl");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, CONTEXT)
            .expect("kubeconfig written");
        Kubectl { dir, kubeconfig }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::time::timeout(WAIT, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} finishes in time"))
            .expect("kubectl runs");
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and requires success.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed: {}\n{}",
            out.stderr, out.stdout
        );
        out.stdout
    }

    pub async fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).await;
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl {args:?} printed no JSON ({e}): {out}"))
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("file written");
        p
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One raw HTTP/1.1 exchange, so tests can send what no well-behaved client would.
pub struct Raw {
    pub status: u16,
    pub body: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn raw(
    sim: &KubeSim,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Raw {
    raw_at(sim.addr(), method, path, content_type, body).await
}

pub async fn raw_at(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Raw {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("head sent");
        // The server may answer (413) before reading all of a large body and close.
        let _ = stream.write_all(body).await;
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf).await;
        buf
    };
    let buf = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("raw request finishes in time");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Raw { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
