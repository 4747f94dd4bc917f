//! Shared setup: a `git daemon`, the service under test, and reading its commits back; the bus,
//! the repositories and the deadline are `configsync_core::harness`'s.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use configsync_core::event::{CommitDetected, EventData, Received, SourceFailed};
use configsync_core::harness::{ALICE, Bus, GitRepo, WAIT};
use configsync_core::service::ServiceError;
use configsync_git_watcher::Config;
use tokio_util::sync::CancellationToken;

/// Waits until the log holds `n` commit-detected events and returns their payloads.
pub async fn wait_for_commits(bus: &Bus, n: usize) -> Vec<CommitDetected> {
    let events = bus
        .wait_until(&format!("{n} commit-detected events"), |events| {
            commits(events).len() >= n
        })
        .await;
    commits(&events)
}

/// A commit by Alice touching one file with `n` in it.
pub fn simple_commit(repo: &GitRepo, n: u32) -> String {
    let content = format!("n: {n}\n");
    repo.commit_as(
        &[("configs/dev/web/values.yaml", Some(&content))],
        &format!("commit {n}"),
        ALICE,
        ALICE,
    )
}

/// The commit-detected payloads among `events`, in log order.
pub fn commits(events: &[Received]) -> Vec<CommitDetected> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CommitDetected(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The source-failed payloads among `events`.
pub fn failures(events: &[Received]) -> Vec<SourceFailed> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::SourceFailed(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// The git-watcher running in this process.
pub struct Watcher {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServiceError>>,
}

/// Flags for the service under test: a fast poll, a private work dir, a free ops port, and
/// remotes on loopback allowed (every remote of these tests is on this machine).
pub fn config(bus: &Bus, repo_url: &str, work_dir: &Path) -> Config {
    config_with(bus, repo_url, work_dir, &["--allow-private-hosts"])
}

/// [`config`] with `extra` flags instead of `--allow-private-hosts`; a flag of the defaults
/// given in `extra` (`--ops-addr`, `--poll-interval`) replaces the default.
pub fn config_with(bus: &Bus, repo_url: &str, work_dir: &Path, extra: &[&str]) -> Config {
    let work_dir = work_dir.display().to_string();
    let nats_url = bus.url();
    let defaults = [
        ("--nats-url", nats_url.as_str()),
        ("--connect-deadline", "10s"),
        ("--ops-addr", "127.0.0.1:0"),
        ("--instance", "it"),
        ("--repo", repo_url),
        ("--poll-interval", "1s"),
        ("--work-dir", work_dir.as_str()),
    ];
    let mut args = vec!["git-watcher"];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    Config::try_parse_from(args).expect("flags parse")
}

impl Watcher {
    pub fn start(config: Config) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(configsync_git_watcher::run(config, shutdown.clone()));
        Self { shutdown, task }
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Ends the service the way a crash does: its task is dropped at whatever await it was
    /// in (mid-publish, or while a fetch runs), with no shutdown path taken.
    pub async fn kill(self) {
        self.task.abort();
        let ended = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("an aborted task ends");
        assert!(
            ended.as_ref().is_err_and(|e| e.is_cancelled()),
            "the service was still running when killed"
        );
    }

    /// Stops the service and checks that it stopped promptly and cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the service stops promptly on shutdown")
            .expect("the service task does not panic")
            .expect("the service stops without error");
    }
}

/// A `git daemon` serving every repository under a directory; killed on drop.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    /// Serves `base` on `port` and waits until it accepts connections.
    ///
    /// The `git-daemon` program is started itself, not through `git daemon`: `git` runs it as
    /// a child, so killing `git` left the daemon running for ever, holding the port and every
    /// descriptor it inherited (such as a build lock held by the process that ran the tests).
    pub async fn start(base: &Path, port: u16) -> Self {
        let child = Command::new(configsync_prereq::require_git_daemon())
            .arg("--export-all")
            .arg("--informative-errors")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let daemon = Self { child, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        tokio::time::timeout(WAIT, async {
            while TcpStream::connect(addr).is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("git daemon listens");
        daemon
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
