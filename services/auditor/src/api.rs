//! The search API: `GET /v1/events?q=QUERY&limit=N` and `GET /v1/status`.
//!
//! Errors are JSON (`{"error": "..."}`): a query that does not parse, or a bad parameter, is a
//! 400; searches run on the blocking pool, never on the runtime's threads.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::index::{AuditIndex, SearchError};

/// Results per search unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;

#[derive(Clone)]
struct ApiState {
    index: AuditIndex,
    indexed: watch::Receiver<u64>,
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

/// Binds `addr` and serves the API until `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    index: AuditIndex,
    indexed: watch::Receiver<u64>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/v1/events", get(search))
        .route("/v1/status", get(status))
        .with_state(ApiState { index, indexed });
    configsync_core::ops::serve_router(addr, app, "audit api", shutdown).await
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn search(
    State(state): State<ApiState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Response {
    let Query(params) = match params {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    let index = state.index.clone();
    let q = params.q;
    match tokio::task::spawn_blocking(move || index.search(&q, limit)).await {
        Ok(Ok(hits)) => Json(hits).into_response(),
        Ok(Err(e @ SearchError::Query(_))) => error(StatusCode::BAD_REQUEST, e),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "search failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
        Err(e) => {
            tracing::error!(error = %e, "search task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "search failed")
        }
    }
}

async fn status(State(state): State<ApiState>) -> Response {
    let indexed = *state.indexed.borrow();
    let index = state.index.clone();
    match tokio::task::spawn_blocking(move || index.documents()).await {
        Ok(documents) => Json(json!({
            "indexed_sequence": indexed,
            "documents": documents,
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "status unavailable")
        }
    }
}
