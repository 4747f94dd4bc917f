//! The operations endpoint every service serves: `/healthz` (the process is alive),
//! `/readyz` (it is connected and consuming) and Prometheus `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Whether the service is ready; flipped by the service once it consumes.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct OpsState {
    ready: Readiness,
    metrics: Metrics,
}

/// Serves the operations endpoint on `addr` until `shutdown`; returns the bound address
/// (port 0 picks a free one) and the server task.
pub async fn serve(
    addr: SocketAddr,
    ready: Readiness,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_router(addr, router(ready, metrics), "ops endpoint", shutdown).await
}

/// The routes of the operations endpoint, for a service that also serves them beside its own
/// API (the auditor: a load balancer in front of the API probes the API's own port).
pub fn router(ready: Readiness, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(OpsState { ready, metrics })
}

/// Serves `app` on `addr` until `shutdown` (the operations endpoint, and any other HTTP API
/// of a service); returns the bound address (port 0 picks a free one) and the server task.
/// `what` names the server in its log lines.
pub async fn serve_router(
    addr: SocketAddr,
    app: Router,
    what: &'static str,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, server = what, "HTTP server failed");
        }
    });
    tracing::info!(addr = %bound, server = what, "listening");
    Ok((bound, task))
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    if state.ready.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics_text(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
