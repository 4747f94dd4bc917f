//! kubesim: a Kubernetes API server for tests, demos and benchmarks.
//!
//! Start one in-process with [`KubeSim::start`], point `kube::Client` or `kubectl` at
//! [`KubeSim::url`] or a kubeconfig from [`KubeSim::write_kubeconfig`], and stop it with
//! [`KubeSim::shutdown`] (or by dropping it). With [`Config::rbac`] it authorizes requests as
//! Kubernetes' RBAC does (the bearer token is the user; see [`rbac`]).

pub mod config;
pub mod discovery;
pub mod immutable;
pub mod metadata;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod query;
pub mod random;
pub mod rbac;
pub mod registry;
pub mod requests;
pub mod resource;
pub mod rollout;
pub mod scale;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod tls;
pub mod validate;
pub mod watch;

pub use config::{Config, Faults};
pub use requests::{DryRunCounts, RequestCounts};

use server::App;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use store::Store;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// How long [`KubeSim::shutdown`] waits for open connections to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A running server; it stops on [`KubeSim::shutdown`] or when dropped.
pub struct KubeSim {
    addr: SocketAddr,
    /// The self-signed certificate's PEM when serving HTTPS.
    ca_pem: Option<String>,
    store: Arc<Store>,
    dropped_watches: Arc<std::sync::atomic::AtomicU64>,
    requests: Arc<requests::Counters>,
    access: Arc<rbac::AccessLog>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl KubeSim {
    /// Serves on a free port of 127.0.0.1.
    pub async fn start(config: Config) -> Result<KubeSim, Error> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: Config) -> Result<KubeSim, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let tls = if config.tls {
            Some(tls::Tls::self_signed(addr)?)
        } else {
            None
        };
        let ca_pem = tls.as_ref().map(|t| t.cert_pem.clone());
        let (app, rollouts) = build(addr, config, shutdown.clone());
        let store = app.store.clone();
        let dropped_watches = app.dropped_watches.clone();
        let requests = app.requests.clone();
        let access = app.access.clone();
        let task = tokio::spawn(run(listener, app, rollouts, tls));
        tracing::info!(%addr, tls = ca_pem.is_some(), "kubesim serving");
        Ok(KubeSim {
            addr,
            ca_pem,
            store,
            dropped_watches,
            requests,
            access,
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM of the self-signed certificate, when serving with `tls`.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// How many watch connections the `drop_watch_after` fault has closed so far.
    pub fn dropped_watches(&self) -> u64 {
        self.dropped_watches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests served so far by verb, dry runs apart: `requests().writes() == 0` proves
    /// that nothing wrote (a dry-run write is counted in `dry_run`, not as a write).
    pub fn requests(&self) -> RequestCounts {
        self.requests.snapshot()
    }

    /// With RBAC on: every (user, verb, group, resource, allowed) asked so far, with how often.
    pub fn access(&self) -> std::collections::BTreeMap<rbac::Access, u64> {
        self.access.snapshot()
    }

    /// The number of stored objects (namespaces included), for benchmarks and tests.
    pub fn object_count(&self) -> usize {
        self.store.object_count()
    }

    pub fn kubeconfig_yaml(&self, context: &str) -> String {
        kubeconfig_yaml(&self.url(), context, self.ca_pem.as_deref())
    }

    /// A kubeconfig whose user presents `token`: the user name, under RBAC.
    pub fn kubeconfig_yaml_as(&self, context: &str, token: &str) -> String {
        let user = serde_json::json!({ "token": token }).to_string();
        kubeconfig_yaml_with(&self.url(), context, self.ca_pem.as_deref(), &user)
    }

    /// Writes the kubeconfig atomically (a temporary file renamed into place), so that a
    /// reader polling for the file never sees half of it.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) -> std::io::Result<()> {
        write_kubeconfig(path, &self.kubeconfig_yaml(context))
    }

    /// Stops serving: open watches end, in-flight requests finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(mut task) = self.task.take() {
            // Graceful shutdown waits for open connections; a client that never reads its
            // response must not keep the caller waiting past this.
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "kubesim stopped with an error"),
                Ok(Err(e)) => tracing::warn!(error = %e, "kubesim task failed"),
                Err(_) => {
                    tracing::warn!("connections still open after the grace period; closing them");
                    task.abort();
                }
            }
        }
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn build(
    addr: SocketAddr,
    config: Config,
    shutdown: CancellationToken,
) -> (
    Arc<App>,
    tokio::sync::mpsc::UnboundedReceiver<store::WorkloadRef>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let store = Arc::new(Store::new(config.watch_history, Some(tx)));
    let app = Arc::new(App {
        store,
        config,
        shutdown,
        address: addr.to_string(),
        dropped_watches: Arc::default(),
        requests: Arc::default(),
        access: Arc::default(),
    });
    (app, rx)
}

async fn run(
    listener: TcpListener,
    app: Arc<App>,
    rollouts: tokio::sync::mpsc::UnboundedReceiver<store::WorkloadRef>,
    tls: Option<tls::Tls>,
) -> Result<(), Error> {
    let shutdown = app.shutdown.clone();
    tokio::spawn(rollout::run(
        app.store.clone(),
        rollouts,
        app.config.rollout_delay,
        shutdown.clone(),
    ));
    let router = server::router(app);
    let stop = shutdown.clone().cancelled_owned();
    match tls {
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, tls, shutdown).map_err(Error::Serve)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
        }
    }
    .map_err(Error::Serve)
}

/// Serves on `listener` until `shutdown` is cancelled.
///
/// With `config.tls` the certificate is made here and not handed out: use
/// [`KubeSim::start_on`] when a client needs it (it is in [`KubeSim::kubeconfig_yaml`]).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let tls = if config.tls {
        Some(tls::Tls::self_signed(addr)?)
    } else {
        None
    };
    let (app, rollouts) = build(addr, config, shutdown);
    run(listener, app, rollouts, tls).await
}

/// A kubeconfig with one cluster, user and context named `context`; `ca_pem` is the
/// server certificate to trust when serving HTTPS.
pub fn kubeconfig_yaml(url: &str, context: &str, ca_pem: Option<&str>) -> String {
    // Over HTTPS kubectl prompts for a username when the user has no credentials; any
    // token stops that (kubesim does no authentication).
    let user = if ca_pem.is_some() {
        "{token: kubesim}"
    } else {
        "{}"
    };
    kubeconfig_yaml_with(url, context, ca_pem, user)
}

/// A kubeconfig with `user` (YAML flow or JSON) as its user's credentials.
fn kubeconfig_yaml_with(url: &str, context: &str, ca_pem: Option<&str>, user: &str) -> String {
    let quoted = serde_json::to_string(context).unwrap_or_else(|_| "\"kubesim\"".into());
    let server = serde_json::to_string(url).unwrap_or_default();
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                protobuf::base64(pem.as_bytes())
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {quoted}\n  cluster:\n    server: {server}\n{ca}contexts:\n- name: {quoted}\n  context:\n    cluster: {quoted}\n    user: {quoted}\n    namespace: default\ncurrent-context: {quoted}\nusers:\n- name: {quoted}\n  user: {user}\npreferences: {{}}\n"
    )
}

pub fn write_kubeconfig(path: &Path, yaml: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeconfig".into());
    let tmp = dir.join(format!(".{file}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, yaml)?;
    std::fs::rename(&tmp, path)
}
