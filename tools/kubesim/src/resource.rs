//! The resource endpoints: a request is routed to its resource, counted, exposed to the
//! write fault, and served by one function per verb.

use crate::query::Params;
use crate::registry::Resource;
use crate::requests::Verb;
use crate::server::{
    App, content_type, decode_json, decode_object, decode_yaml, ok, read_body, wants_metadata,
    wants_table,
};
use crate::status::{ApiError, json_response};
use crate::store::{PatchKind, WatchStart};
use crate::watch::{self, WatchParams};
use crate::{metadata, random, scale, table};
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

/// A request under `/api/v1` or `/apis/{group}/{version}`, before routing.
pub struct Call<'a> {
    pub app: &'a App,
    pub method: Method,
    pub headers: &'a HeaderMap,
    pub group: &'a str,
    pub version: &'a str,
    /// The path after the version, percent-decoded.
    pub rest: &'a [&'a str],
    pub path: &'a str,
}

/// A routed request: what every verb function gets.
struct Ctx<'a> {
    app: &'a App,
    headers: &'a HeaderMap,
    query: Params,
    res: Resource,
    /// The namespace of the URL, if it has one.
    ns: Option<&'a str>,
    name: Option<&'a str>,
    /// `status` or `scale`, already checked to exist for the resource.
    sub: Option<&'a str>,
}

impl Ctx<'_> {
    /// Under RBAC, refuses the request unless its user may `verb` this resource.
    fn authorize(&self, verb: &str) -> Result<(), ApiError> {
        let Some(rbac) = &self.app.config.rbac else {
            return Ok(());
        };
        let user = crate::rbac::user_of(self.headers);
        let resource = match self.sub {
            Some(sub) => format!("{}/{sub}", self.res.plural),
            None => self.res.plural.clone(),
        };
        crate::rbac::authorize(
            rbac,
            &self.app.access,
            &crate::rbac::Attributes {
                user: &user,
                verb,
                group: &self.res.group,
                resource: &resource,
                namespace: self.ns,
                name: self.name,
            },
        )
    }

    /// The namespace as the store keys it ("" for cluster-scoped objects and all-namespace lists).
    fn ns(&self) -> &str {
        self.ns.unwrap_or("")
    }

    fn name(&self) -> &str {
        self.name.unwrap_or("")
    }
}

/// Serves one resource request.
pub async fn serve(call: Call<'_>, query: Params, body: Body) -> Result<Response, ApiError> {
    let ctx = route(&call, query)?;
    let verb = verb(&call.method, ctx.name, &ctx.query).ok_or_else(|| {
        ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({})",
            call.path
        ))
    })?;
    // DeleteOptions in the body can ask for a dry run too, so a delete's body is read
    // before it is counted.
    let (delete_options, body) = if verb == Verb::Delete {
        (
            Some(delete_options(&read_body(body).await?)?),
            Body::empty(),
        )
    } else {
        (None, body)
    };
    let dry_run = ctx.query.is_dry_run() || delete_options.as_ref().is_some_and(asks_dry_run);
    call.app.requests.count(verb, dry_run);
    // Dry runs are authorized like the writes they stand for, as in Kubernetes.
    let rbac_verb = match (verb, ctx.name) {
        (Verb::Delete, None) => "deletecollection",
        _ => verb.rbac_name(),
    };
    ctx.authorize(rbac_verb)?;
    let rate = call.app.config.faults.write_error_rate;
    if verb.is_write() && rate > 0.0 && random::unit() < rate {
        return Err(ApiError::internal("kubesim: injected write fault"));
    }
    match (verb, ctx.sub) {
        (Verb::Get, Some("scale")) => get_scale(&ctx),
        (Verb::Get, _) => get(&ctx),
        (Verb::List, _) => list(&ctx),
        (Verb::Watch, _) => watch(&ctx),
        (Verb::Create, _) => create(&ctx, body).await,
        (Verb::Update, Some("scale")) => update_scale(&ctx, body).await,
        (Verb::Update, _) => update(&ctx, body).await,
        (Verb::Patch, _) => patch(&ctx, body).await,
        (Verb::Delete, _) => {
            let options = delete_options.unwrap_or(Value::Null);
            match ctx.name {
                Some(_) => delete(&ctx, &options),
                None => delete_collection(&ctx, &options),
            }
        }
    }
}

/// Resolves the resource, namespace, name and subresource of the URL; anything that does
/// not name a served resource is a 404, as in Kubernetes.
fn route<'a>(call: &Call<'a>, query: Params) -> Result<Ctx<'a>, ApiError> {
    let not_found = || ApiError::not_found_path(call.path);
    let rest = call.rest;
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
        _ => return Err(not_found()),
    };
    let res = call
        .app
        .store
        .resolve(call.group, call.version, plural)
        .ok_or_else(not_found)?;
    if ns.is_some() && !res.namespaced {
        return Err(not_found());
    }
    match sub {
        None => {}
        Some("status") if res.status_subresource => {}
        Some("scale") if scale::has_scale(&res) => {}
        Some(_) => return Err(not_found()),
    }
    // Namespaced objects are addressed inside their namespace; only lists (and deletes of
    // collections) span all of them.
    let method = &call.method;
    if res.namespaced
        && ns.is_none()
        && (name.is_some() || method != Method::GET && method != Method::DELETE)
    {
        return Err(not_found());
    }
    Ok(Ctx {
        app: call.app,
        headers: call.headers,
        query,
        res,
        ns,
        name,
        sub,
    })
}

/// The verb of a method on a collection (`name` None) or an object; None is a 405.
fn verb(method: &Method, name: Option<&str>, query: &Params) -> Option<Verb> {
    Some(match (method.clone(), name) {
        (Method::GET, None) if query.watch => Verb::Watch,
        (Method::GET, None) => Verb::List,
        (Method::GET, Some(_)) => Verb::Get,
        (Method::POST, None) => Verb::Create,
        (Method::PUT, Some(_)) => Verb::Update,
        (Method::PATCH, Some(_)) => Verb::Patch,
        (Method::DELETE, _) => Verb::Delete,
        _ => return None,
    })
}

/// A DELETE body: DeleteOptions, or nothing.
fn delete_options(bytes: &Bytes) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        decode_json(bytes)
    }
}

fn asks_dry_run(options: &Value) -> bool {
    options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x == "All"))
}

fn get(ctx: &Ctx) -> Result<Response, ApiError> {
    let o = ctx.app.store.get(&ctx.res, ctx.ns(), ctx.name())?;
    if wants_table(ctx.headers) {
        return ok(&table::single(&ctx.res, &o));
    }
    if wants_metadata(ctx.headers) {
        return ok(&metadata::partial(&o));
    }
    ok(&o)
}

fn get_scale(ctx: &Ctx) -> Result<Response, ApiError> {
    let o = ctx.app.store.get(&ctx.res, ctx.ns(), ctx.name())?;
    ok(&scale::scale_of(&o))
}

#[derive(serde::Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Vec<&'a Value>,
}

fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let (labels, fields) = ctx.query.selectors()?;
    let limit = ctx.query.limit()?;
    let page = ctx.app.store.list(
        &ctx.res,
        ctx.ns,
        &labels,
        &fields,
        limit,
        ctx.query.continue_from(),
    )?;
    if wants_table(ctx.headers) {
        return ok(&table::list(&ctx.res, &page));
    }
    let mut meta = json!({"resourceVersion": page.rv.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if wants_metadata(ctx.headers) {
        return ok(&metadata::list(page.items.iter().map(|i| i.as_ref()), meta));
    }
    if let (Some(_), Some(remaining)) = (&page.continue_token, page.remaining) {
        meta["remainingItemCount"] = json!(remaining);
    }
    // Serialised straight from the stored objects: a 10k list makes no deep copies.
    let list = ListBody {
        kind: format!("{}List", ctx.res.kind),
        api_version: ctx.res.api_version(),
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

fn watch(ctx: &Ctx) -> Result<Response, ApiError> {
    let (labels, fields) = ctx.query.selectors()?;
    let timeout = ctx.query.timeout()?;
    let start = watch::parse_start(ctx.query.resource_version.as_deref())?;
    let initial_events = ctx.query.send_initial_events;
    let params = WatchParams {
        namespace: ctx.ns.map(str::to_string),
        // A streaming list starts from now: the initial events are the current objects.
        start: if initial_events {
            WatchStart::Now
        } else {
            start
        },
        labels,
        fields,
        bookmarks: ctx.query.allow_watch_bookmarks,
        initial_events,
        timeout,
        bookmark_interval: ctx.app.config.bookmark_interval,
        drop_after: ctx.app.config.faults.drop_watch_after,
        dropped: ctx.app.dropped_watches.clone(),
    };
    let table = wants_table(ctx.headers);
    let meta_only = wants_metadata(ctx.headers);
    let res = ctx.res.clone();
    let rx = watch::start(
        &ctx.app.store,
        res.clone(),
        params,
        ctx.app.shutdown.clone(),
    );
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
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn create(ctx: &Ctx<'_>, body: Body) -> Result<Response, ApiError> {
    let opts = ctx.query.write_options(ctx.headers, None)?;
    let body = decode_object(&content_type(ctx.headers), &read_body(body).await?)?;
    let o = ctx.app.store.create(&ctx.res, ctx.ns(), body, &opts)?;
    Ok(json_response(StatusCode::CREATED, &o))
}

/// PUT of the object or of its `/status`.
async fn update(ctx: &Ctx<'_>, body: Body) -> Result<Response, ApiError> {
    let opts = ctx.query.write_options(ctx.headers, ctx.sub)?;
    let body = decode_object(&content_type(ctx.headers), &read_body(body).await?)?;
    ok(&ctx
        .app
        .store
        .replace(&ctx.res, ctx.ns(), ctx.name(), body, &opts)?)
}

/// PUT of a Scale.
async fn update_scale(ctx: &Ctx<'_>, body: Body) -> Result<Response, ApiError> {
    let opts = ctx.query.write_options(ctx.headers, ctx.sub)?;
    let body = decode_object(&content_type(ctx.headers), &read_body(body).await?)?;
    ok(&scale::write(
        &ctx.app.store,
        &ctx.res,
        ctx.ns(),
        ctx.name(),
        None,
        &body,
        &opts,
    )?)
}

/// The patch flavour of a PATCH's content type.
fn patch_kind(ct: &str) -> Result<PatchKind, ApiError> {
    match ct {
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        "application/apply-patch+yaml" => Ok(PatchKind::Apply),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ),
        )),
    }
}

/// PATCH in any of the four flavours, of the object, its `/status` or its `/scale`.
async fn patch(ctx: &Ctx<'_>, body: Body) -> Result<Response, ApiError> {
    let opts = ctx.query.write_options(ctx.headers, ctx.sub)?;
    let kind = patch_kind(&content_type(ctx.headers))?;
    if kind == PatchKind::Apply && !ctx.query.names_manager() {
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
    let (res, ns, name) = (&ctx.res, ctx.ns(), ctx.name());
    // A server-side apply that creates its object needs `create` too.
    if kind == PatchKind::Apply
        && ctx.sub.is_none()
        && ctx.app.config.rbac.is_some()
        && ctx.app.store.get(res, ns, name).is_err()
    {
        ctx.authorize("create")?;
    }
    if ctx.sub == Some("scale") {
        let store = &ctx.app.store;
        return ok(&scale::write(
            store,
            res,
            ns,
            name,
            Some(kind),
            &patch,
            &opts,
        )?);
    }
    let (created, o) = ctx.app.store.patch(res, ns, name, kind, &patch, &opts)?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(code, &o))
}

/// The write options of a DELETE: the query's, with DeleteOptions' dryRun on top.
fn delete_write_options(
    ctx: &Ctx,
    options: &Value,
) -> Result<crate::store::WriteOptions, ApiError> {
    let mut opts = ctx.query.write_options(ctx.headers, None)?;
    if asks_dry_run(options) {
        opts.dry_run = true;
    }
    Ok(opts)
}

fn delete(ctx: &Ctx, options: &Value) -> Result<Response, ApiError> {
    let opts = delete_write_options(ctx, options)?;
    ok(&ctx.app.store.delete(
        &ctx.res,
        ctx.ns(),
        ctx.name(),
        &opts,
        options.get("preconditions"),
    )?)
}

fn delete_collection(ctx: &Ctx, options: &Value) -> Result<Response, ApiError> {
    let opts = delete_write_options(ctx, options)?;
    let (labels, fields) = ctx.query.selectors()?;
    let items = ctx
        .app
        .store
        .delete_collection(&ctx.res, ctx.ns, &labels, &fields, &opts)?;
    ok(&json!({
        "kind": format!("{}List", ctx.res.kind),
        "apiVersion": ctx.res.api_version(),
        "metadata": {},
        "items": items,
    }))
}
