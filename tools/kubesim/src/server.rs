//! HTTP routing: discovery, OpenAPI, and the resource endpoints, with faults applied.

use crate::config::Config;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, json_response};
use crate::store::{PatchKind, Store, WriteOptions};
use crate::watch::{self, WatchParams};
use crate::{discovery, metadata, openapi, protobuf, random, scale, table};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
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
}

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if !app.config.faults.latency.is_zero() {
        tokio::time::sleep(app.config.faults.latency).await;
    }
    let response = match route(&app, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, reason = e.reason, message = %e.message, "request refused");
            e.into_response()
        }
    };
    tracing::trace!(%method, %path, status = response.status().as_u16(), "request served");
    response
}

fn ok(body: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

async fn route(app: &App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query = query_map(parts.uri.query());
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
            let accept = parts
                .headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
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
        ["api", "v1", rest @ ..] => {
            resource(
                app,
                parts.method,
                &parts.headers,
                &query,
                "",
                "v1",
                rest,
                body,
                &path,
            )
            .await
        }
        ["apis", g, v, rest @ ..] => {
            resource(
                app,
                parts.method,
                &parts.headers,
                &query,
                g,
                v,
                rest,
                body,
                &path,
            )
            .await
        }
        _ => Err(ApiError::not_found_path(&path)),
    }
}

#[derive(serde::Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

fn content_type(headers: &HeaderMap) -> String {
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

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

fn decode_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

fn decode_yaml(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_yaml::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
}

/// A create or replace body, as JSON or YAML.
fn decode_object(ct: &str, bytes: &[u8]) -> Result<Value, ApiError> {
    match ct {
        "application/json" => decode_json(bytes),
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(bytes),
        protobuf::CONTENT_TYPE => {
            protobuf::decode(bytes).map_err(|e| ApiError::new(415, "UnsupportedMediaType", e))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn write_options(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    subresource: Option<&str>,
) -> Result<WriteOptions, ApiError> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    let manager = match query.get("fieldManager") {
        Some(m) if m.len() > 128 => {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: may not be more than 128 bytes",
            ));
        }
        Some(m) if !m.is_empty() => m.clone(),
        // Kubernetes names an unnamed manager after the client's User-Agent.
        _ => headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    };
    let force = match query.get("force").map(String::as_str) {
        None | Some("false") | Some("") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "force: invalid value {other:?}"
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        manager,
        force,
        subresource: subresource.map(str::to_string),
    })
}

fn selectors(query: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn is_true(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true" | "1"))
}

fn wants_metadata(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(metadata::wanted)
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    app: &App,
    method: Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    group: &str,
    version: &str,
    rest: &[&str],
    body: Body,
    path: &str,
) -> Result<Response, ApiError> {
    // `namespaces/{ns}/...` is a namespace scope, except a namespace's own subresources.
    let (ns, rest) = match rest {
        ["namespaces", _, "status" | "finalize"] => (None, rest),
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some(*ns), tail),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::not_found_path(path)),
    };
    let res = app
        .store
        .resolve(group, version, plural)
        .ok_or_else(|| ApiError::not_found_path(path))?;
    if ns.is_some() && !res.namespaced {
        return Err(ApiError::not_found_path(path));
    }
    match sub {
        None => {}
        Some("status") if res.status_subresource => {}
        Some("scale") if scale::has_scale(&res) => {}
        Some(_) => return Err(ApiError::not_found_path(path)),
    }
    let is_write = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let rate = app.config.faults.write_error_rate;
    if is_write && rate > 0.0 && random::unit() < rate {
        return Err(ApiError::internal("kubesim: injected write fault"));
    }
    let ns_str = ns.unwrap_or("");
    // Namespaced objects are addressed inside their namespace; only lists span all of them.
    let needs_ns = res.namespaced
        && ns.is_none()
        && (name.is_some() || method != Method::GET && method != Method::DELETE);
    if needs_ns {
        return Err(ApiError::not_found_path(path));
    }
    let ct = content_type(headers);
    match (method, name) {
        (Method::GET, None) => {
            let (labels, fields) = selectors(query)?;
            if is_true(query.get("watch")) {
                let timeout = match query.get("timeoutSeconds") {
                    Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
                        ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}"))
                    })?)),
                    None => None,
                };
                let params = WatchParams {
                    namespace: ns.map(str::to_string),
                    start: watch::parse_start(query.get("resourceVersion").map(String::as_str))?,
                    labels,
                    fields,
                    bookmarks: is_true(query.get("allowWatchBookmarks")),
                    initial_events: is_true(query.get("sendInitialEvents")),
                    timeout,
                    bookmark_interval: app.config.bookmark_interval,
                    drop_after: app.config.faults.drop_watch_after,
                    dropped: app.dropped_watches.clone(),
                };
                let params = WatchParams {
                    start: if params.initial_events {
                        crate::store::WatchStart::Now
                    } else {
                        params.start
                    },
                    ..params
                };
                let table = wants_table(headers);
                let meta_only = wants_metadata(headers);
                let rx = watch::start(&app.store, res.clone(), params, app.shutdown.clone());
                let stream = futures::stream::unfold(rx, move |mut rx| {
                    let res = res.clone();
                    async move {
                        let chunk = rx.recv().await?;
                        let chunk = if meta_only {
                            metadata::watch_line(chunk)
                        } else if table {
                            table::watch_line(&res, chunk)
                        } else {
                            chunk
                        };
                        Some((Ok::<Bytes, std::convert::Infallible>(chunk), rx))
                    }
                });
                return Ok((
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from_stream(stream),
                )
                    .into_response());
            }
            let limit =
                match query.get("limit") {
                    Some(l) => Some(l.parse::<usize>().map_err(|_| {
                        ApiError::bad_request(format!("limit: invalid value {l:?}"))
                    })?),
                    None => None,
                };
            let page = app.store.list(
                &res,
                ns,
                &labels,
                &fields,
                limit,
                query
                    .get("continue")
                    .map(String::as_str)
                    .filter(|s| !s.is_empty()),
            )?;
            if wants_table(headers) {
                return ok(&table::list(&res, &page));
            }
            if wants_metadata(headers) {
                let mut meta = json!({"resourceVersion": page.rv.to_string()});
                if let Some(c) = &page.continue_token {
                    meta["continue"] = json!(c);
                }
                return ok(&metadata::list(page.items.iter().map(|i| i.as_ref()), meta));
            }
            let mut meta = json!({"resourceVersion": page.rv.to_string()});
            if let Some(c) = &page.continue_token {
                meta["continue"] = json!(c);
                meta["remainingItemCount"] = json!(page.remaining);
            }
            // Serialised straight from the stored objects: a 10k list makes no deep copies.
            let list = ListBody {
                kind: format!("{}List", res.kind),
                api_version: res.api_version(),
                metadata: meta,
                items: page.items.iter().map(|i| i.as_ref()).collect(),
            };
            let bytes = serde_json::to_vec(&list).map_err(|e| ApiError::internal(e.to_string()))?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response())
        }
        (Method::GET, Some(name)) => {
            let o = app.store.get(&res, ns_str, name)?;
            if sub == Some("scale") {
                return ok(&scale::scale_of(&o));
            }
            if wants_table(headers) {
                return ok(&table::single(&res, &o));
            }
            if wants_metadata(headers) {
                return ok(&metadata::partial(&o));
            }
            ok(&o)
        }
        (Method::POST, None) => {
            let opts = write_options(query, headers, None)?;
            let body = decode_object(&ct, &read_body(body).await?)?;
            let o = app.store.create(&res, ns_str, body, &opts)?;
            Ok(json_response(StatusCode::CREATED, &o))
        }
        (Method::PUT, Some(name)) => {
            let opts = write_options(query, headers, sub)?;
            let body = decode_object(&ct, &read_body(body).await?)?;
            if sub == Some("scale") {
                return ok(&scale::write(
                    &app.store, &res, ns_str, name, None, &body, &opts,
                )?);
            }
            ok(&app.store.replace(&res, ns_str, name, body, &opts)?)
        }
        (Method::PATCH, Some(name)) => {
            let opts = write_options(query, headers, sub)?;
            let kind = match ct.as_str() {
                "application/json-patch+json" => PatchKind::Json,
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/apply-patch+yaml" => PatchKind::Apply,
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                        ),
                    ));
                }
            };
            if kind == PatchKind::Apply && query.get("fieldManager").is_none_or(String::is_empty) {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply content type must specify a fieldManager",
                ));
            }
            if kind != PatchKind::Apply && opts.force {
                return Err(ApiError::bad_request(
                    "force may not be specified for non-apply patch",
                ));
            }
            let bytes = read_body(body).await?;
            let patch = if kind == PatchKind::Apply {
                decode_yaml(&bytes)?
            } else {
                decode_json(&bytes)?
            };
            if sub == Some("scale") {
                return ok(&scale::write(
                    &app.store,
                    &res,
                    ns_str,
                    name,
                    Some(kind),
                    &patch,
                    &opts,
                )?);
            }
            let (created, o) = app.store.patch(&res, ns_str, name, kind, &patch, &opts)?;
            Ok(json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &o,
            ))
        }
        (Method::DELETE, name) => {
            let mut opts = write_options(query, headers, None)?;
            let bytes = read_body(body).await?;
            let delete_options = if bytes.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                decode_json(&bytes)?
            };
            if delete_options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "All"))
            {
                opts.dry_run = true;
            }
            match name {
                Some(name) => ok(&app.store.delete(
                    &res,
                    ns_str,
                    name,
                    &opts,
                    delete_options.get("preconditions"),
                )?),
                None => {
                    let (labels, fields) = selectors(query)?;
                    let items = app
                        .store
                        .delete_collection(&res, ns, &labels, &fields, &opts)?;
                    ok(
                        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": {}, "items": items}),
                    )
                }
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({path})"
        ))),
    }
}
