//! What every service does before its own work: serve the ops endpoint, connect to NATS
//! (retrying up to the deadline), and bind to the event stream. Also the shared `main` of the
//! service binaries (signals → shutdown token → `run` → exit code).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{ConnectError, ServiceArgs};
use crate::log::{ConsumeError, EventLog, StreamError};
use crate::metrics::Metrics;
use crate::ops::{self, Readiness};
use crate::telemetry;

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error("cannot serve the ops endpoint on {addr}: {source}")]
    Ops {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The access policy does not load: nothing may run without it (it would approve all).
    #[error("access policy: {0}")]
    Access(#[from] crate::access::PolicyError),
    #[error(transparent)]
    Bundles(#[from] crate::log::bundles::BundleError),
    /// Start-up work run off the runtime (opening a repository, compiling schemas) panicked.
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Setting up something the service needs failed; the cause is kept.
    #[error("{what}: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ServiceError {
    /// Failed setting up `what` (the cluster list, the repository mirror, ...), because of
    /// `source`.
    pub fn setup(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Setup {
            what,
            source: source.into(),
        }
    }

    /// A low-cardinality label for metrics and structured logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Stream(_) => "stream",
            Self::Consume(_) => "consume",
            Self::Ops { .. } => "ops",
            Self::Access(_) => "access",
            Self::Bundles(_) => "bundles",
            Self::Task(_) => "task",
            Self::Setup { .. } => "setup",
        }
    }
}

/// A started service's shared parts.
pub struct Service {
    pub name: &'static str,
    pub log: EventLog,
    pub readiness: Readiness,
    /// Where /healthz, /readyz and /metrics are served.
    pub ops_addr: SocketAddr,
    ops_task: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Serves the ops endpoint (alive from the start, ready once the service says so),
    /// connects to NATS and waits for the event stream, all within the connect deadline.
    pub async fn start(
        name: &'static str,
        args: &ServiceArgs,
        default_ops: SocketAddr,
        shutdown: &CancellationToken,
    ) -> Result<Self, ServiceError> {
        let metrics = Metrics::new();
        let readiness = Readiness::default();
        let addr = args.ops_addr.unwrap_or(default_ops);
        let (ops_addr, ops_task) = ops::serve(
            addr,
            readiness.clone(),
            metrics.clone(),
            shutdown.child_token(),
        )
        .await
        .map_err(|source| ServiceError::Ops { addr, source })?;
        let instance = args.instance_name();
        let client = args
            .nats
            .connect(&format!("configsync-{name}-{instance}"))
            .await?;
        let log = EventLog::new(client, format!("configsync://{name}/{instance}"), metrics)?;
        log.wait_for_stream(args.nats.connect_deadline).await?;
        tracing::info!(service = name, instance = %instance, ops = %ops_addr, "service started");
        Ok(Self {
            name,
            log,
            readiness,
            ops_addr,
            ops_task,
        })
    }

    /// Marks the service not ready and waits for the ops endpoint to stop.
    pub async fn stop(self) {
        self.readiness.set(false);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ops_task).await;
        tracing::info!(service = self.name, "service stopped");
    }
}

/// Binaries' configuration: the shared flags are reachable for logging setup.
pub trait ServiceConfig: clap::Parser {
    fn service_args(&self) -> &ServiceArgs;
}

/// The whole `main` of a service binary: parse flags, set up logging, turn SIGINT/SIGTERM
/// into a shutdown token, call `run`, and map its result to an exit code.
pub fn main<C, F, Fut, E>(run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let config = C::parse();
    telemetry::init(config.service_args().log_format, "info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match run(config, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "service failed");
                ExitCode::FAILURE
            }
        }
    })
}

/// Cancels `token` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}
