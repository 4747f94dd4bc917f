//! Shared setup: a nats-server with the stream, repositories driven by the `git` CLI, a
//! `git daemon`, the service under test, and reading the log back.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use configsync_core::config::NatsArgs;
use configsync_core::event::{EventData, Received};
use configsync_core::harness::NatsServer;
use configsync_core::log::{EventLog, Fold, Start, Until, replay, stream};
use configsync_core::metrics::Metrics;
use configsync_core::service::ServiceError;
use configsync_git_watcher::Config;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

/// A nats-server with the event stream.
pub struct Bus {
    pub server: NatsServer,
    pub log: EventLog,
}

impl Bus {
    pub async fn start() -> Self {
        let server = NatsServer::start().await.expect("nats-server starts");
        let mut args = NatsArgs::for_url(server.url());
        args.connect_deadline = Duration::from_secs(10);
        let client = args.connect("git-watcher-test").await.expect("connects");
        let log = EventLog::new(client, "configsync://test/it", Metrics::new())
            .expect("stream definition parses");
        stream::ensure(&log.js, &log.spec)
            .await
            .expect("stream is created");
        Self { server, log }
    }

    /// Every event in the log, in order.
    pub async fn events(&self) -> Vec<Received> {
        struct All(Vec<Received>);
        impl Fold for All {
            fn apply(&mut self, event: &Received) {
                self.0.push(event.clone());
            }
        }
        let mut all = All(Vec::new());
        replay(
            &self.log.js,
            self.log.stream(),
            Start::Beginning,
            Until::End,
            &mut all,
        )
        .await
        .expect("log replays");
        all.0
    }

    /// Polls the log until `done` holds, then returns the events; fails after [`WAIT`].
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                let events = self.events().await;
                if done(&events) {
                    return events;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        match waited {
            Ok(events) => events,
            Err(_) => {
                // Say what the log holds: usually a source failure explains the wait.
                let types: Vec<String> = self
                    .events()
                    .await
                    .iter()
                    .map(|e| format!("{:?}", e.data))
                    .collect();
                panic!("timed out waiting for: {what}; the log holds {types:#?}")
            }
        }
    }

    /// Waits until the log holds `n` commit-detected events and returns their payloads.
    pub async fn wait_for_commits(&self, n: usize) -> Vec<configsync_core::event::CommitDetected> {
        let events = self
            .wait_for(&format!("{n} commit-detected events"), |events| {
                commits(events).len() >= n
            })
            .await;
        commits(&events)
    }
}

/// The commit-detected payloads among `events`, in log order.
pub fn commits(events: &[Received]) -> Vec<configsync_core::event::CommitDetected> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CommitDetected(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The source-failed payloads among `events`.
pub fn failures(events: &[Received]) -> Vec<configsync_core::event::SourceFailed> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::SourceFailed(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// A repository driven by the `git` CLI, isolated from the user's and system's configuration.
pub struct Repo {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// Who made a commit and when (seconds since the epoch).
#[derive(Clone, Copy)]
pub struct Who {
    pub name: &'static str,
    pub email: &'static str,
    pub time: i64,
}

pub const ALICE: Who = Who {
    name: "Alice Example",
    email: "alice@example.com",
    time: 1_700_000_000,
};

impl Repo {
    /// A fresh repository (non-bare, branch `main`) in a temporary directory, named `name`.
    pub fn init(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).expect("repo dir");
        let repo = Self { _dir: dir, path };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// Makes a repository in an existing directory.
    pub fn init_in(path: &Path) {
        git_in(path, &["init", "-q", "-b", "main"], &[]);
    }

    /// `file://<path>`.
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// The directory holding the repository (for `git daemon --base-path`).
    pub fn parent(&self) -> &Path {
        self.path.parent().expect("repo has a parent")
    }

    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.path, args, &[])
    }

    /// Writes `files` (content `None` deletes), commits everything and returns the SHA.
    pub fn commit(
        &self,
        files: &[(&str, Option<&str>)],
        message: &str,
        author: Who,
        committer: Who,
    ) -> String {
        write_files(&self.path, files);
        self.git(&["add", "-A"]);
        let author_date = format!("@{} +0000", author.time);
        let committer_date = format!("@{} +0200", committer.time);
        git_in(
            &self.path,
            &["commit", "-q", "--allow-empty", "-m", message],
            &[
                ("GIT_AUTHOR_NAME", author.name),
                ("GIT_AUTHOR_EMAIL", author.email),
                ("GIT_AUTHOR_DATE", &author_date),
                ("GIT_COMMITTER_NAME", committer.name),
                ("GIT_COMMITTER_EMAIL", committer.email),
                ("GIT_COMMITTER_DATE", &committer_date),
            ],
        );
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// A commit by Alice touching one file with `n` in it.
    pub fn simple_commit(&self, n: u32) -> String {
        let content = format!("n: {n}\n");
        self.commit(
            &[("configs/dev/web/values.yaml", Some(&content))],
            &format!("commit {n}"),
            ALICE,
            ALICE,
        )
    }
}

pub fn write_files(root: &Path, files: &[(&str, Option<&str>)]) {
    for (path, content) in files {
        let full = root.join(path);
        match content {
            Some(content) => {
                std::fs::create_dir_all(full.parent().expect("file has a parent")).expect("dirs");
                std::fs::write(&full, content).expect("file written");
            }
            None => std::fs::remove_file(&full).expect("file removed"),
        }
    }
}

pub fn git_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .envs(env.iter().copied())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The git-watcher running in this process.
pub struct Watcher {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ServiceError>>,
}

/// Flags for the service under test: a fast poll, a private work dir, a free ops port.
pub fn config(bus: &Bus, repo_url: &str, work_dir: &Path) -> Config {
    Config::try_parse_from([
        "git-watcher",
        "--nats-url",
        &bus.server.url(),
        "--connect-deadline",
        "10s",
        "--ops-addr",
        "127.0.0.1:0",
        "--instance",
        "it",
        "--repo",
        repo_url,
        "--poll-interval",
        "100ms",
        "--work-dir",
        &work_dir.display().to_string(),
    ])
    .expect("flags parse")
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

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A `git daemon` serving every repository under a directory; killed on drop.
pub struct GitDaemon {
    child: Child,
    pub port: u16,
}

impl GitDaemon {
    /// Whether this machine's git has the daemon.
    pub fn available() -> bool {
        Command::new("git")
            .args(["daemon", "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
            && Self::binary().is_some_and(|p| p.exists())
    }

    /// The `git-daemon` program itself (`git daemon` is a wrapper that runs it as a child).
    fn binary() -> Option<PathBuf> {
        Command::new("git")
            .arg("--exec-path")
            .output()
            .ok()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("git-daemon"))
    }

    /// Serves `base` on `port` and waits until it accepts connections.
    pub async fn start(base: &Path, port: u16) -> Self {
        // `git-daemon` directly, not the `git daemon` wrapper: killing the wrapper on drop left
        // its git-daemon child running, orphaned, with every inherited descriptor open (such as
        // a build lock held by the test runner's parent).
        let child = Command::new(Self::binary().expect("git --exec-path"))
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
