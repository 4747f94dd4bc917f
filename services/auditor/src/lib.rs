//! The auditor service: indexes every log entry (events and dead-letter records) in a tantivy
//! index and serves audit search over HTTP.
//!
//! The index is a projection each replica keeps for itself, in `--index-dir`: there is no
//! durable consumer. At start the auditor reads the last indexed stream sequence from the
//! index's last commit, reads the log from the next one with an ordered reader and then
//! follows it live. It is ready (`/readyz`) once the index has caught up with the log as it was
//! at start. An index built from another log (the stream was recreated: the index is ahead
//! of the log, or the log holds another event at the index's last sequence) is rebuilt from
//! the start. Runs alone (the `auditor` binary) or inside `configsync up`, with the same code.
//! Modules: `schema` (the fields), `redact` (Secret values never reach the index), `record`
//! (an entry as indexed), `index` (tantivy, the writer thread, search), `follow` (the log
//! reader), `auth` (bearer tokens, read and admin scopes), `api` (HTTP).

pub mod api;
pub mod auth;
pub mod follow;
pub mod index;
pub mod record;
pub mod redact;
pub mod schema;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use configsync_core::config::ServiceArgs;
use configsync_core::log::replay::{self, ReplayError};
use configsync_core::service::{Service, ServiceConfig, ServiceError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::index::{AuditIndex, IndexError, IndexMetrics};

/// The service's name: its NATS user and event source.
pub const NAME: &str = "auditor";
/// Where /healthz, /readyz and /metrics are served unless --ops-addr says otherwise.
pub const DEFAULT_OPS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9106);
/// Where the search API is served unless --http-addr says otherwise.
pub const DEFAULT_HTTP_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The auditor's configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "auditor",
    version,
    about = "ConfigSync auditor: indexes every event for audit search."
)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Address of the search API, `GET /v1/events?q=...` (port 0 picks a free port).
    #[arg(long, env = "CONFIGSYNC_AUDIT_HTTP_ADDR", default_value_t = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Directory of this replica's search index (default: `<system temp>/configsync-auditor-index`).
    #[arg(long, env = "CONFIGSYNC_AUDIT_INDEX_DIR")]
    pub index_dir: Option<PathBuf>,
    /// File holding the bearer token of the API's read scope (search, status): one token of at
    /// least 32 characters, e.g. `openssl rand -hex 32`. A file, not a value, so that the token
    /// never shows in the process list.
    #[arg(long, env = "CONFIGSYNC_AUDIT_READ_TOKEN_FILE")]
    pub read_token_file: PathBuf,
    /// File holding the bearer token of the admin scope (reindex, and everything read allows).
    /// Without it, admin routes refuse every request.
    #[arg(long, env = "CONFIGSYNC_AUDIT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

impl Config {
    /// The index directory, defaulted.
    pub fn index_dir(&self) -> PathBuf {
        self.index_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("configsync-auditor-index"))
    }
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

/// Why the auditor could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AuditorError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Log(#[from] ReplayError),
    #[error(transparent)]
    Follow(#[from] follow::FollowError),
    #[error(transparent)]
    Token(#[from] auth::TokenError),
    #[error("cannot serve the audit api on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("audit task failed: {0}")]
    Task(String),
}

/// A started auditor.
pub struct Running {
    /// Where the search API is served.
    pub http_addr: SocketAddr,
    /// Where /healthz, /readyz and /metrics are served.
    pub ops_addr: SocketAddr,
    service: Service,
    stop: CancellationToken,
    follower: tokio::task::JoinHandle<Result<(), follow::FollowError>>,
    writer_done: tokio::sync::oneshot::Receiver<Result<(), IndexError>>,
    api: tokio::task::JoinHandle<()>,
}

/// Starts the auditor: opens the index, serves the API and follows the log until `shutdown`.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, AuditorError> {
    // Before anything else: an auditor that cannot protect its API does not start.
    let tokens = auth::Tokens::load(&config.read_token_file, config.admin_token_file.as_deref())?;
    if !tokens.has_admin() {
        tracing::info!("no admin token: the admin routes of the audit api refuse every request");
    }
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    // Stops everything on shutdown, or when one part fails.
    let stop = shutdown.child_token();
    let dir = config.index_dir();
    let (index, resume) = tokio::task::spawn_blocking(move || AuditIndex::open(&dir))
        .await
        .map_err(|e| AuditorError::Task(e.to_string()))??;
    let end = replay::last_sequence(&service.log.js, service.log.stream()).await?;
    // An index ahead of the log, or whose last event is not where the log has it, was built
    // from another stream (the store was wiped and the stream recreated): its sequences mean
    // nothing here, so it is rebuilt from the start of this log.
    let reset = resume.sequence > end || !follow::log_holds(&service.log, &resume).await;
    if reset {
        tracing::warn!(dir = %index.dir().display(), indexed = resume.sequence, log_end = end, "audit index was built from another log, rebuilding it");
    }
    let last = if reset { 0 } else { resume.sequence };
    let (indexed_tx, indexed) = watch::channel(last);
    let index::Writer {
        batches: writer,
        done: writer_done,
    } = {
        let index = index.clone();
        let metrics = IndexMetrics::default();
        metrics.register(&service.log.metrics);
        metrics
            .indexed_sequence
            .set(i64::try_from(last).unwrap_or(i64::MAX));
        tokio::task::spawn_blocking(move || index.start_writer(indexed_tx, reset, metrics))
            .await
            .map_err(|e| AuditorError::Task(e.to_string()))??
    };
    tracing::info!(dir = %index.dir().display(), indexed = last, log_end = end, "audit index open");

    let (rebuild_tx, rebuilds) = tokio::sync::mpsc::channel(1);
    let app = api::router(
        api::ApiState {
            index,
            indexed: indexed.clone(),
            rebuilds: rebuild_tx,
        },
        tokens,
        api::Open {
            readiness: service.readiness.clone(),
            metrics: service.log.metrics.clone(),
        },
    );
    let (http_addr, api) = api::serve(config.http_addr, app, stop.clone())
        .await
        .map_err(|source| AuditorError::Http {
            addr: config.http_addr,
            source,
        })?;

    // Ready once the index holds the log as it was at start.
    {
        let mut indexed = indexed.clone();
        let readiness = service.readiness.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                caught_up = indexed.wait_for(|seq| *seq >= end) => if caught_up.is_ok() {
                    tracing::info!(log_end = end, "audit index caught up");
                    readiness.set(true);
                },
            }
        });
    }
    let follower = tokio::spawn(follow::follow(
        service.log.clone(),
        last,
        end,
        writer,
        rebuilds,
        stop.clone(),
    ));
    Ok(Running {
        http_addr,
        ops_addr: service.ops_addr,
        service,
        stop,
        follower,
        writer_done,
        api,
    })
}

impl Running {
    /// Waits until the auditor stops (shutdown, or a failure), committing what is pending.
    pub async fn wait(self) -> Result<(), AuditorError> {
        let followed = self.follower.await;
        // Whatever ended the follower ends the rest; the writer commits the last batch when
        // the follower drops its channel.
        self.stop.cancel();
        let written = self.writer_done.await;
        let _ = self.api.await;
        self.service.stop().await;
        // The writer's own error explains a follower that found the writer gone.
        match written {
            Ok(result) => result?,
            Err(_) => return Err(AuditorError::Task("the index writer vanished".into())),
        }
        followed.map_err(|e| AuditorError::Task(e.to_string()))??;
        Ok(())
    }
}

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AuditorError> {
    start(config, shutdown).await?.wait().await
}
