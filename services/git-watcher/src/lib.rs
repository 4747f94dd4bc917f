//! The git-watcher service: follows the Git remote and emits one commit-detected event per new commit.
//!
//! Runs alone (the `git-watcher` binary) or inside `configsync up`, with the same code.
//!
//! It follows one source (`--repo`/`--branch`) or several (`--source`, repeated), each a
//! branch of a repository, optionally only a sub-directory of it, polled at its own interval
//! by its own loop. Its only state, the last commit seen of each source, is rebuilt at start
//! by replaying the log, so a restart neither repeats nor skips a commit. It has no durable
//! consumer: it reads its own past events by replay and otherwise only publishes.
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

use configsync_core::config::{GitRemoteArgs, ServiceArgs, SourceSpec};
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
    /// The Git remote to follow (the one-source form; see --source for several):
    /// `https://host/path`, `ssh://user@host/path` (or `user@host:path`),
    /// `git://host[:port]/path`, `file:///path` or a local path. A password in the URL is
    /// refused: see --http-password-file. Its events name the source `default`.
    #[arg(
        long,
        env = "CONFIGSYNC_REPO",
        hide_env_values = true,
        required_unless_present = "sources",
        conflicts_with = "sources"
    )]
    pub repo: Option<String>,
    /// The branch of --repo to follow.
    #[arg(long, env = "CONFIGSYNC_BRANCH", default_value = "main")]
    pub branch: String,
    /// A source to follow, repeatable (or space-separated in the variable):
    /// `NAME=URL[#BRANCH[:SUBDIR]][,interval=DURATION]`, e.g.
    /// `team-a=https://git.example.com/mono.git#main:teams/a,interval=30s`. The branch
    /// defaults to `main`, the sub-directory to the whole repository (its `configs/` and
    /// `policies/` are then those under it), the interval to --poll-interval. NAME (one
    /// subject token) is the `gitsource` attribute of every event of the source.
    #[arg(
        long = "source",
        env = "CONFIGSYNC_SOURCES",
        hide_env_values = true,
        value_delimiter = ' '
    )]
    pub sources: Vec<SourceSpec>,
    /// How often to fetch each remote (at least 1s), unless its --source says otherwise.
    #[arg(long, env = "CONFIGSYNC_POLL_INTERVAL", default_value = "15s", value_parser = configsync_core::config::poll_interval)]
    pub poll_interval: Duration,
    /// Where the bare mirror of the remote lives (default: a directory under the system temp
    /// directory named after a hash of the URL); with --source, each source's mirror is the
    /// sub-directory named after it. Losing it costs one full fetch, nothing more.
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

/// The name of the one source that `--repo` gives.
pub const DEFAULT_SOURCE: &str = SourceSpec::DEFAULT_NAME;

/// One source as the watcher follows it: what to fetch, how often, and where its mirror is.
#[derive(Debug, Clone)]
pub struct Followed {
    pub spec: SourceSpec,
    pub interval: Duration,
    pub mirror_dir: PathBuf,
}

/// Why the sources given cannot be followed together.
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("two sources are named {0}")]
    DuplicateName(String),
    #[error("sources {0} and {1} follow the same branch and sub-directory")]
    DuplicateSource(String, String),
    #[error(transparent)]
    Name(#[from] configsync_core::names::InvalidName),
}

impl Config {
    /// The sources to follow: those of `--source`, or the one of `--repo` and `--branch`, each
    /// with its interval and mirror directory. Names and followed branches are unique.
    pub fn followed(&self) -> Result<Vec<Followed>, SourcesError> {
        let temp = std::env::temp_dir();
        if let Some(repo) = &self.repo {
            let spec = SourceSpec::single(repo, &self.branch);
            // The mirror keeps the directory it always had, so an upgrade costs no fetch.
            let mirror_dir = self
                .work_dir
                .clone()
                .unwrap_or_else(|| git::default_mirror_dir(&temp, repo));
            return Ok(vec![Followed {
                spec,
                interval: self.poll_interval,
                mirror_dir,
            }]);
        }
        let mut seen: Vec<(&str, configsync_core::names::SourceId)> = Vec::new();
        let mut out = Vec::new();
        for spec in &self.sources {
            let id = spec.id();
            if seen.iter().any(|(name, _)| *name == spec.name.as_str()) {
                return Err(SourcesError::DuplicateName(spec.name.to_string()));
            }
            if let Some((other, _)) = seen.iter().find(|(_, known)| *known == id) {
                return Err(SourcesError::DuplicateSource(
                    other.to_string(),
                    spec.name.to_string(),
                ));
            }
            seen.push((spec.name.as_str(), id.clone()));
            // One mirror per source: two loops must never fetch into the same directory.
            let mirror_dir = match &self.work_dir {
                Some(dir) => dir.join(spec.name.as_str()),
                None => git::default_mirror_dir(&temp, &id.to_string()),
            };
            out.push(Followed {
                spec: spec.clone(),
                interval: spec.interval.unwrap_or(self.poll_interval),
                mirror_dir,
            });
        }
        Ok(out)
    }
}

// Written by hand so that a URL with credentials never reaches a log through `{:?}`.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("service", &self.service)
            .field(
                "repo",
                &self
                    .repo
                    .as_deref()
                    .map(configsync_core::credentials::redact_url),
            )
            .field("branch", &self.branch)
            .field("sources", &self.sources)
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

/// Runs the service until `shutdown` is cancelled: for each source, rebuilds the last seen
/// commit from the log, then polls the remote at the source's interval (or at once when a
/// webhook says so) and publishes what is new.
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
    let followed = config
        .followed()
        .map_err(|e| ServiceError::setup("reading the sources", e))?;
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
    // A webhook cannot be trusted to say which source it is about (the payload is only a
    // trigger), so it wakes every source's loop: one fetch each that finds nothing is cheap.
    let wakes: Vec<Arc<Notify>> = followed.iter().map(|_| Arc::new(Notify::new())).collect();
    let fan_out = tokio::spawn({
        let wakes = wakes.clone();
        async move {
            loop {
                wake.notified().await;
                for w in &wakes {
                    w.notify_one();
                }
            }
        }
    });
    let loops = followed.into_iter().zip(wakes).map(|(followed, wake)| {
        watcher::Watcher::new(followed, &service, access.clone(), remote.clone(), wake)
            .run(&shutdown)
    });
    // Every loop runs until shutdown; the first to fail (its log cannot be replayed) ends
    // the service, since the others share its log.
    let result = futures::future::try_join_all(loops).await.map(|_| ());
    fan_out.abort();
    if let Some(task) = receiver {
        task.abort();
    }
    service.stop().await;
    result
}
