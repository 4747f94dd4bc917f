//! The git-watcher service: follows the Git remote and emits one commit-detected event per new commit.
//!
//! Runs alone (the `git-watcher` binary) or inside `configsync up`, with the same code.
//!
//! Its only state, the last commit seen on the tracked branch, is rebuilt at start by replaying
//! the log, so a restart neither repeats nor skips a commit. It has no durable consumer: it
//! reads its own past events by replay and otherwise only publishes.

mod events;
mod failures;
mod last_seen;
mod poll;
mod watcher;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use configsync_core::config::ServiceArgs;
use configsync_core::git;
use configsync_core::service::{Service, ServiceConfig, ServiceError};
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
    /// The Git remote to follow: `file:///path`, a local path, or `git://host[:port]/path`.
    /// Credentials in the URL are never logged or published.
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
            .finish()
    }
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

/// Runs the service until `shutdown` is cancelled: rebuilds the last seen commit from the log,
/// then polls the remote every `--poll-interval` and publishes what is new.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let access = config
        .access
        .as_deref()
        .map(configsync_core::access::AccessPolicy::load)
        .transpose()?;
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    let result = watcher::Watcher::new(&config, &service, access)
        .run(&shutdown)
        .await;
    service.stop().await;
    result
}
