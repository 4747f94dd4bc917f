//! HTTP routing: discovery, OpenAPI, and the resource endpoints (in `resource.rs`), with
//! the latency fault applied.

use crate::config::Config;
use crate::query::Params;
use crate::requests::Counters;
use crate::resource;
use crate::status::{ApiError, json_response};
use crate::store::Store;
use crate::{discovery, metadata, openapi, protobuf};
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use serde_json::Value;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Bodies over this size get 413, as the Kubernetes API server limits them.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct App {
    pub store: Arc<Store>,
    pub config: Config,
    pub shutdown: CancellationToken,
    pub address: String,
    /// Watches ended by the drop fault.
    pub dropped_watches: Arc<std::sync::atomic::AtomicU64>,
    /// Resource requests by verb, for [`crate::KubeSim::requests`].
    pub requests: Arc<Counters>,
    /// RBAC decisions, for [`crate::KubeSim::access`] (kept only when RBAC is on).
    pub access: Arc<crate::rbac::AccessLog>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// The query is extracted for every path; only the resource endpoints read it, so a
/// query that does not parse is refused only there.
async fn handle(
    State(app): State<Arc<App>>,
    query: Result<Query<Params>, QueryRejection>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if !app.config.faults.latency.is_zero() {
        tokio::time::sleep(app.config.faults.latency).await;
    }
    let query = query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(e.body_text()));
    let response = match route(&app, query, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, reason = e.reason, message = %e.message, "request refused");
            e.into_response()
        }
    };
    tracing::trace!(%method, %path, status = response.status().as_u16(), "request served");
    response
}

pub(crate) fn ok(body: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

async fn route(
    app: &App,
    query: Result<Params, ApiError>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let resources = || app.store.resources();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let get_only = |body: Option<Value>| -> Result<Response, ApiError> {
        if parts.method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({path})"
            )));
        }
        body.map(|b| json_response(StatusCode::OK, &b))
            .ok_or_else(|| ApiError::not_found_path(&path))
    };
    let call = |group, version, rest| resource::Call {
        app,
        method: parts.method.clone(),
        headers: &parts.headers,
        group,
        version,
        rest,
        path: &path,
    };
    match segs.as_slice() {
        ["version"] => get_only(Some(discovery::version())),
        ["healthz" | "readyz" | "livez"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api" | "apis"] if parts.method == Method::GET && discovery::wants_aggregated(accept) => {
            let body = discovery::aggregated(&resources(), segs[0] == "api");
            Ok((
                [(header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE)],
                serde_json::to_vec(&body).unwrap_or_default(),
            )
                .into_response())
        }
        ["api"] => get_only(Some(discovery::core_versions(&app.address))),
        ["apis"] => get_only(Some(discovery::group_list(&resources()))),
        ["api", "v1"] => get_only(discovery::resource_list(&resources(), "", "v1")),
        ["apis", g] => get_only(discovery::group(&resources(), g)),
        ["apis", g, v] => get_only(discovery::resource_list(&resources(), g, v)),
        ["openapi", "v2"] if parts.method == Method::GET => {
            if accept.contains("protobuf") {
                Ok((
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    openapi::v2_protobuf(),
                )
                    .into_response())
            } else {
                ok(&openapi::v2_json())
            }
        }
        ["openapi", "v3"] => get_only(Some(openapi::v3_index(
            &resources(),
            app.store.current_rv(),
        ))),
        ["openapi", "v3", rest @ ..] => {
            get_only(openapi::v3_document(&resources(), &rest.join("/")))
        }
        ["api", "v1", rest @ ..] => resource::serve(call("", "v1", rest), query?, body).await,
        ["apis", g, v, rest @ ..] => resource::serve(call(g, v, rest), query?, body).await,
        _ => Err(ApiError::not_found_path(&path)),
    }
}

pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

pub(crate) fn decode_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

pub(crate) fn decode_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_yaml::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}

/// A create or replace body, as JSON or YAML.
pub(crate) fn decode_object(ct: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    match ct {
        "application/json" => decode_json(bytes),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(bytes),
        protobuf::CONTENT_TYPE => {
            protobuf::decode(bytes).map_err(|e| ApiError::new(415, "UnsupportedMediaType", e))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

pub(crate) fn wants_metadata(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(metadata::wanted)
}

pub(crate) fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}
