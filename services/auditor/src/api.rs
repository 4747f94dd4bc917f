//! The audit API on `--http-addr`:
//!
//! | route | scope | what |
//! |---|---|---|
//! | `GET /v1/events?q=QUERY&limit=N` | read | search, newest first |
//! | `GET /v1/status` | read | the last indexed sequence and the number of documents |
//! | `POST /v1/admin/reindex` | admin | empties the index and reads the log again from its start |
//! | `GET /healthz`, `/readyz`, `/metrics` | none | the ops endpoint's routes, also served here |
//!
//! Every route but the last three needs `Authorization: Bearer TOKEN` (see `auth`): 401 without
//! a valid token, 403 with a read token on an admin route. Errors are JSON
//! (`{"error": "..."}`): a query that does not parse, or a bad parameter, is a 400; searches
//! run on the blocking pool, never on the runtime's threads.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use configsync_core::metrics::Metrics;
use configsync_core::ops::{self, Readiness};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::{self, Gate, Scope, Tokens};
use crate::follow::Rebuild;
use crate::index::{AuditIndex, SearchError};

/// Results per search unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// How long a reindex request waits for the log reader to start over.
const REBUILD_START: Duration = Duration::from_secs(10);

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    pub index: AuditIndex,
    pub indexed: watch::Receiver<u64>,
    pub rebuilds: mpsc::Sender<Rebuild>,
}

/// The open routes: the ops endpoint's.
pub struct Open {
    pub readiness: Readiness,
    pub metrics: Metrics,
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

/// The API's routes.
pub fn router(state: ApiState, tokens: Tokens, open: Open) -> Router {
    let gate = |needs: Scope| {
        axum::middleware::from_fn_with_state(
            Gate {
                tokens: tokens.clone(),
                needs,
            },
            auth::require,
        )
    };
    let read = Router::new()
        .route("/v1/events", get(search))
        .route("/v1/status", get(status))
        .route_layer(gate(Scope::Read));
    let admin = Router::new()
        .route("/v1/admin/reindex", post(reindex))
        .route_layer(gate(Scope::Admin));
    read.merge(admin)
        .with_state(state)
        .merge(ops::router(open.readiness, open.metrics))
}

/// Binds `addr` and serves the API until `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
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

/// Empties the index and starts reading the log again. 202 once that has started
/// (`/v1/status` shows the rebuild's progress), or, when the log reader is busy reconnecting,
/// once it is queued; 409 while another request waits to start.
async fn reindex(State(state): State<ApiState>) -> Response {
    let (started, answer) = oneshot::channel();
    match state.rebuilds.try_send(Rebuild { started }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return error(
                StatusCode::CONFLICT,
                "a rebuild of the index is already waiting to start",
            );
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the log reader has stopped",
            );
        }
    }
    tracing::warn!("audit index rebuild requested through the api");
    let rebuilding = match tokio::time::timeout(REBUILD_START, answer).await {
        Ok(Ok(())) => "started",
        Ok(Err(_)) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the log reader stopped before the rebuild started",
            );
        }
        Err(_) => "queued",
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({ "rebuilding": rebuilding })),
    )
        .into_response()
}
