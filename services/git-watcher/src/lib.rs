//! The git-watcher service: follows the Git remote and emits one commit-detected event per new commit.
//!
//! Runs alone (the `git-watcher` binary) or inside `configsync up`, with the same code.
//!
//! Its only state, the last commit seen on the tracked branch, is rebuilt at start by replaying
//! the log, so a restart neither repeats nor skips a commit. It has no durable consumer: it
//! reads its own past events by replay and otherwise only publishes.
//!
//! With `--webhook-addr` it also receives the forge's push webhooks (`webhook`), which only
//! wake the poll loop: polling stays the safety net.

mod events;
mod failures;
mod last_seen;
mod poll;
mod watcher;
pub mod webhook;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use configsync_core::config::{GitRemoteArgs, ServiceArgs};
use configsync_core::git;
use configsync_core::service::{Service, ServiceConfig, ServiceError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use last_seen::{LastSeen, last_seen};

/// The service's name: its NATS user and event source.
pub const NAME: &str = "git-watcher";
/// Where /healthz, /readyz and /metrics are served unless --ops-addr says otherwise.
pub const DEFAULT_OPS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9101);

/// The git-watcher's configuration.
#[derive(clap::Parser, Clone)]
#[command(
    name = "git-watcher",
    version,
    about = "ConfigSync git-watcher: follows the Git remote and emits one commit-detected event per new commit."
)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The Git remote to follow: `https://host/path`, `ssh://user@host/path` (or
    /// `user@host:path`), `git://host[:port]/path`, `file:///path` or a local path. A password
    /// in the URL is refused: see --http-password-file.
    #[arg(long, env = "CONFIGSYNC_REPO", hide_env_values = true)]
    pub repo: String,
    /// The branch to follow.
    #[arg(long, env = "CONFIGSYNC_BRANCH", default_value = "main")]
    pub branch: String,
    /// How often to fetch the remote.
    #[arg(long, env = "CONFIGSYNC_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Where the bare mirror of the remote lives (default: a directory under the system temp
    /// directory named after a hash of the URL). Losing it costs one full fetch, nothing more.
    #[arg(long, env = "CONFIGSYNC_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// The access policy (docs/security.md), whose keys commit signatures are checked
    /// against; each `commit.detected` records the verdict.
    #[arg(long = "access", env = "CONFIGSYNC_ACCESS")]
    pub access: Option<PathBuf>,
    #[command(flatten)]
    pub remote: GitRemoteArgs,
    /// Where to receive push webhooks (`POST /webhook`; GitHub, GitLab, Gitea/Forgejo or the
    /// generic signed form). Off unless given; port 0 picks a free port.
    #[arg(long, env = "CONFIGSYNC_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// File holding the webhook secret (at least 16 characters), as configured at the forge.
    #[arg(
        long,
        env = "CONFIGSYNC_WEBHOOK_SECRET_FILE",
        conflicts_with = "webhook_secret"
    )]
    pub webhook_secret_file: Option<PathBuf>,
    /// The webhook secret; prefer the environment variable or --webhook-secret-file to the flag.
    #[arg(long, env = "CONFIGSYNC_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
}

impl Config {
    /// The mirror directory: `--work-dir`, or the default for this remote.
    pub fn mirror_dir(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| git::default_mirror_dir(&std::env::temp_dir(), &self.repo))
    }
}

// Written by hand so that a URL with credentials never reaches a log through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("service", &self.service)
            .field(
                "repo",
                &configsync_core::credentials::redact_url(&self.repo),
            )
            .field("branch", &self.branch)
            .field("poll_interval", &self.poll_interval)
            .field("work_dir", &self.work_dir)
            .field("access", &self.access)
            .field("remote", &self.remote)
            .field("webhook_addr", &self.webhook_addr)
            .field("webhook_secret_file", &self.webhook_secret_file)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

impl Config {
    /// The webhook secret, when the receiver is on.
    fn webhook_secret(&self) -> Result<Option<webhook::WebhookSecret>, webhook::SecretError> {
        if self.webhook_addr.is_none() {
            return Ok(None);
        }
        match (&self.webhook_secret_file, &self.webhook_secret) {
            (Some(path), _) => webhook::WebhookSecret::from_file(path).map(Some),
            (None, Some(text)) => webhook::WebhookSecret::new(text).map(Some),
            (None, None) => Err(webhook::SecretError::Missing),
        }
    }
}

/// Runs the service until `shutdown` is cancelled: rebuilds the last seen commit from the log,
/// then polls the remote every `--poll-interval` (or at once when a webhook says so) and
/// publishes what is new.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let access = config
        .access
        .as_deref()
        .map(configsync_core::access::AccessPolicy::load)
        .transpose()?;
    let remote = config
        .remote
        .remote_options()
        .map_err(|e| ServiceError::setup("reading the Git remote options", e))?;
    let secret = config
        .webhook_secret()
        .map_err(|e| ServiceError::setup("reading the webhook secret", e))?;
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    let wake = Arc::new(Notify::new());
    let receiver = match (config.webhook_addr, secret) {
        (Some(addr), Some(secret)) => {
            let served = webhook::serve(
                addr,
                secret,
                wake.clone(),
                &service.log.metrics,
                shutdown.child_token(),
            )
            .await;
            match served {
                Ok((bound, task)) => {
                    tracing::info!(addr = %bound, path = webhook::PATH, "receiving push webhooks");
                    Some(task)
                }
                Err(e) => {
                    service.stop().await;
                    return Err(ServiceError::setup("serving the webhook receiver", e));
                }
            }
        }
        _ => None,
    };
    let result = watcher::Watcher::new(&config, &service, access, remote, wake)
        .run(&shutdown)
        .await;
    if let Some(task) = receiver {
        task.abort();
    }
    service.stop().await;
    result
}
