//! kubesim: a Kubernetes API server for tests, demos and benchmarks.
//!
//! Start one in-process with [`KubeSim::start`], point `kube::Client` or `kubectl` at
//! [`KubeSim::url`] or a kubeconfig from [`KubeSim::write_kubeconfig`], and stop it with
//! [`KubeSim::shutdown`] (or by dropping it).

pub mod config;
pub mod discovery;
pub mod openapi;
pub mod patch;
pub mod random;
pub mod registry;
pub mod rollout;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod table;
pub mod validate;
pub mod watch;

pub use config::{Config, Faults};

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
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A running server; it stops on [`KubeSim::shutdown`] or when dropped.
pub struct KubeSim {
    addr: SocketAddr,
    store: Arc<Store>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl KubeSim {
    /// Serves on a free port of 127.0.0.1.
    pub async fn start(config: Config) -> Result<KubeSim, Error> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: Config) -> Result<KubeSim, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let (app, rollouts) = build(addr, config, shutdown.clone());
        let store = app.store.clone();
        let task = tokio::spawn(run(listener, app, rollouts));
        tracing::info!(%addr, "kubesim serving");
        Ok(KubeSim { addr, store, shutdown, task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The number of stored objects (namespaces included), for benchmarks and tests.
    pub fn object_count(&self) -> usize {
        self.store.object_count()
    }

    pub fn kubeconfig_yaml(&self, context: &str) -> String {
        kubeconfig_yaml(&self.url(), context)
    }

    /// Writes the kubeconfig atomically (a temporary file renamed into place), so that a
    /// reader polling for the file never sees half of it.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) -> std::io::Result<()> {
        write_kubeconfig(path, &self.kubeconfig_yaml(context))
    }

    /// Stops serving: open watches end, in-flight requests finish.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "kubesim stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "kubesim task failed"),
            }
        }
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn build(addr: SocketAddr, config: Config, shutdown: CancellationToken) -> (Arc<App>, tokio::sync::mpsc::UnboundedReceiver<store::WorkloadRef>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let store = Arc::new(Store::new(config.watch_history, Some(tx)));
    let app = Arc::new(App { store, config, shutdown, address: addr.to_string() });
    (app, rx)
}

async fn run(listener: TcpListener, app: Arc<App>, rollouts: tokio::sync::mpsc::UnboundedReceiver<store::WorkloadRef>) -> Result<(), Error> {
    let shutdown = app.shutdown.clone();
    tokio::spawn(rollout::run(app.store.clone(), rollouts, app.config.rollout_delay, shutdown.clone()));
    axum::serve(listener, server::router(app)).with_graceful_shutdown(shutdown.cancelled_owned()).await.map_err(Error::Serve)
}

/// Serves on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let (app, rollouts) = build(addr, config, shutdown);
    run(listener, app, rollouts).await
}

/// A kubeconfig for a plain-HTTP server, with one cluster, user and context named `context`.
pub fn kubeconfig_yaml(url: &str, context: &str) -> String {
    let quoted = serde_json::to_string(context).unwrap_or_else(|_| "\"kubesim\"".into());
    let server = serde_json::to_string(url).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {quoted}\n  cluster:\n    server: {server}\ncontexts:\n- name: {quoted}\n  context:\n    cluster: {quoted}\n    user: {quoted}\n    namespace: default\ncurrent-context: {quoted}\nusers:\n- name: {quoted}\n  user: {{}}\npreferences: {{}}\n"
    )
}

pub fn write_kubeconfig(path: &Path, yaml: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "kubeconfig".into());
    let tmp = dir.join(format!(".{file}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, yaml)?;
    std::fs::rename(&tmp, path)
}
