//! Writes: create, update, patch (four flavours), delete, and the rollout's status writes.

use super::kinds::{self, on_write};
use super::{Event, EventType, Inner, Store, WorkloadRef, now, object_name, object_rv, present};
use crate::immutable;
use crate::patch::apply::{
    Writer, conflict_causes, conflict_message, record_update, server_side_apply, spec_changed,
};
use crate::patch::{json::json_patch, merge::merge_patch, strategic::strategic_merge};
use crate::random;
use crate::registry::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::validate::{check_metadata, name_rule};
use serde_json::{Value, json};
use std::sync::Arc;

/// How a write is made.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub manager: String,
    pub force: bool,
    /// `Some("status")` for the status subresource.
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// The managedFields writer of a request; status is tracked only on the status endpoint.
fn writer<'a>(opts: &'a WriteOptions, api_version: &'a str, time: &'a str) -> Writer<'a> {
    Writer {
        manager: &opts.manager,
        api_version,
        now: time,
        keep_status: opts.subresource.as_deref() == Some("status"),
    }
}

/// The metadata map, created if missing. Callers pass objects (validated before); a
/// non-object is replaced rather than indexed, since indexing one would panic.
fn meta_mut(o: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !o.is_object() {
        *o = json!({});
    }
    let Value::Object(map) = o else {
        unreachable!("just made an object")
    };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let Value::Object(meta) = meta else {
        unreachable!("just made an object")
    };
    meta
}

/// apiVersion and kind must match the URL; absent ones are filled in.
fn check_type(res: &Resource, body: &mut Value, name: &str) -> Result<(), ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    };
    let want_av = res.api_version();
    let mut causes = Vec::new();
    match obj.get("apiVersion") {
        None => {
            obj.insert("apiVersion".into(), json!(want_av));
        }
        Some(Value::String(av)) if *av == want_av => {}
        Some(other) => causes.push((
            "apiVersion".to_string(),
            format!("Invalid value: {other}: must be {want_av:?} to match the request URL"),
        )),
    }
    match obj.get("kind") {
        None => {
            obj.insert("kind".into(), json!(res.kind));
        }
        Some(Value::String(k)) if *k == res.kind => {}
        Some(other) => causes.push((
            "kind".to_string(),
            format!(
                "Invalid value: {other}: must be {:?} to match the request URL",
                res.kind
            ),
        )),
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&res.kind, &res.group, name, causes))
    }
}

fn check_namespace(res: &Resource, body: &mut Value, ns: &str) -> Result<(), ApiError> {
    let meta = meta_mut(body);
    if !res.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    match meta.get("namespace").and_then(Value::as_str) {
        Some(n) if !n.is_empty() && n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            meta.insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

fn validate(res: &Resource, o: &Value) -> Result<(), ApiError> {
    let causes = check_metadata(o, name_rule(&res.kind));
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &res.kind,
            &res.group,
            object_name(o),
            causes,
        ))
    }
}

/// Objects compared without their resourceVersion and the times in managedFields: a write
/// that changes nothing else is not stored, as in Kubernetes.
fn same_content(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| {
        let mut v = v.clone();
        let meta = meta_mut(&mut v);
        meta.remove("resourceVersion");
        if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
            for e in mf.iter_mut() {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
        v
    };
    norm(a) == norm(b)
}

/// What an update body must be before anything is taken from it: an object whose
/// resourceVersion, if it names one, is the stored one.
fn check_update(res: &Resource, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    // A JSON patch can replace the whole document with anything.
    if !new.is_object() {
        return Err(ApiError::invalid(
            &res.kind,
            &res.group,
            name,
            vec![(
                "<root>".into(),
                "Invalid value: the object must be a JSON object".into(),
            )],
        ));
    }
    if !new.get("metadata").is_none_or(Value::is_object) {
        return Err(ApiError::invalid(
            &res.kind,
            &res.group,
            name,
            vec![("metadata".into(), "Invalid value: must be an object".into())],
        ));
    }
    if let Some(rv) = new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        let rv: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
        if rv != object_rv(old) {
            return Err(ApiError::conflict(
                &res.group,
                &res.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
    }
    Ok(())
}

/// apiVersion, kind and the server-owned metadata come from the stored object, whatever
/// the update says.
fn keep_server_fields(res: &Resource, old: &Value, new: &mut Value) {
    if let Some(o) = new.as_object_mut() {
        o.insert(
            "apiVersion".into(),
            old.get("apiVersion")
                .cloned()
                .unwrap_or_else(|| json!(res.api_version())),
        );
        o.insert("kind".into(), json!(res.kind));
    }
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let meta = meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "name",
        "namespace",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match old_meta.get(k) {
            Some(v) => meta.insert(k.into(), v.clone()),
            None => meta.remove(k),
        };
    }
}

/// A write to `/status`: the stored object with the new status (and, after server-side
/// apply, the managedFields it computed); nothing else changes.
fn status_only(old: &Value, new: Value, managed_done: bool) -> Value {
    let status = new.get("status").cloned();
    let managed = new.pointer("/metadata/managedFields").cloned();
    let mut out = old.clone();
    set_status(&mut out, status);
    if managed_done && let Some(m) = managed {
        meta_mut(&mut out).insert("managedFields".into(), m);
    }
    out
}

/// A main-resource write of a kind with a status subresource keeps the stored status.
fn keep_status(old: &Value, new: &mut Value) {
    set_status(new, old.get("status").cloned());
}

fn set_status(o: &mut Value, status: Option<Value>) {
    match status {
        Some(s) => o["status"] = s,
        None => {
            if let Some(o) = o.as_object_mut() {
                o.remove("status");
            }
        }
    }
}

/// A change of spec is a new generation.
fn bump_generation(old: &Value, new: &mut Value) {
    if spec_changed(old, new) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        meta_mut(new).insert("generation".into(), json!(g + 1));
    }
}

/// The object after a JSON, merge or strategic merge patch.
fn patched(
    res: &Resource,
    current: &Value,
    kind: PatchKind,
    patch: &Value,
) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            Ok(merge_patch(current, patch))
        }
        PatchKind::Json => json_patch(current, patch).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        }),
        PatchKind::Strategic => {
            if res.custom {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            strategic_merge(current, patch).map_err(ApiError::bad_request)
        }
        PatchKind::Apply => Err(ApiError::internal("apply is not a patch of the object")),
    }
}

/// An apply patch as checked before merging: an object of the URL's name, type and
/// namespace.
fn applied_config(res: &Resource, ns: &str, name: &str, patch: &Value) -> Result<Value, ApiError> {
    let mut applied = patch.clone();
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "an apply patch must be a YAML or JSON object",
        ));
    }
    let body_name = object_name(&applied).to_string();
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if applied.get("apiVersion").is_none() || applied.get("kind").is_none() {
        return Err(ApiError::bad_request(
            "apiVersion and kind are required in an apply patch",
        ));
    }
    check_type(res, &mut applied, name)?;
    check_namespace(res, &mut applied, ns)?;
    Ok(applied)
}

impl Store {
    fn notify_rollout(&self, res: &Resource, o: &Value) {
        if let Some(tx) = &self.rollouts
            && res.is_workload()
        {
            let _ = tx.send(WorkloadRef {
                resource: res.clone(),
                namespace: o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                name: object_name(o).to_string(),
                generation: o
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
            });
        }
    }

    pub fn create(
        &self,
        res: &Resource,
        ns: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        self.create_locked(&mut inner, res, ns, body, opts, false)
    }

    pub(super) fn create_locked(
        &self,
        inner: &mut Inner,
        res: &Resource,
        ns: &str,
        mut body: Value,
        opts: &WriteOptions,
        managed_done: bool,
    ) -> Result<Value, ApiError> {
        check_type(res, &mut body, "")?;
        check_namespace(res, &mut body, ns)?;
        let key = res.storage_key();
        let ns_key = if res.namespaced {
            ns.to_string()
        } else {
            String::new()
        };
        let meta = meta_mut(&mut body);
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            if let Some(prefix) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .map(str::to_string)
            {
                let taken = |n: &str| {
                    inner
                        .objects
                        .get(&key)
                        .is_some_and(|m| m.contains_key(&(ns_key.clone(), n.to_string())))
                };
                let mut name = format!("{prefix}{}", random::name_suffix());
                while taken(&name) {
                    name = format!("{prefix}{}", random::name_suffix());
                }
                meta.insert("name".into(), json!(name));
            } else {
                meta.remove("name");
            }
        }
        validate(res, &body)?;
        let name = object_name(&body).to_string();
        if res.namespaced
            && !inner
                .objects
                .get("/namespaces")
                .is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
        {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        if inner
            .objects
            .get(&key)
            .is_some_and(|m| m.contains_key(&(ns_key.clone(), name.clone())))
        {
            return Err(ApiError::already_exists(&res.group, &res.plural, &name));
        }
        let time = now();
        if res.status_subresource
            && let Some(o) = body.as_object_mut()
        {
            o.remove("status");
        }
        let served = on_write(res, &mut body, &time)?;
        if let Some(served) = &served
            && let Some(taken) = served.iter().find(|s| {
                inner
                    .resources
                    .iter()
                    .any(|r| r.group == s.group && r.plural == s.plural)
            })
        {
            return Err(ApiError::invalid(
                &res.kind,
                &res.group,
                &name,
                vec![(
                    "spec.names.plural".into(),
                    format!("Invalid value: {:?}: already served", taken.plural),
                )],
            ));
        }
        let meta = meta_mut(&mut body);
        meta.insert("uid".into(), json!(random::uuid()));
        meta.insert("creationTimestamp".into(), json!(time));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("resourceVersion");
        meta.remove("selfLink");
        if !managed_done {
            meta.remove("managedFields");
            let av = res.api_version();
            record_update(None, &mut body, &writer(opts, &av, &time), None);
        }
        if opts.dry_run {
            return Ok(present(res, &body));
        }
        inner.rv += 1;
        let rv = inner.rv;
        meta_mut(&mut body).insert("resourceVersion".into(), json!(rv.to_string()));
        let object = Arc::new(body);
        inner
            .objects
            .entry(key.clone())
            .or_default()
            .insert((ns_key.clone(), name.clone()), object.clone());
        if let Some(served) = served {
            inner.resources.extend(served);
        }
        self.emit(
            inner,
            Event {
                kind: EventType::Added,
                storage_key: key,
                namespace: ns_key,
                rv,
                object: object.clone(),
                old: None,
            },
        );
        tracing::debug!(resource = %res.plural, namespace = ns, name = %name, rv, "created");
        self.notify_rollout(res, &object);
        Ok(present(res, &object))
    }

    /// PUT: replaces the object (or its status).
    pub fn replace(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_type(res, &mut body, name)?;
        check_namespace(res, &mut body, ns)?;
        let body_name = object_name(&body).to_string();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut inner = self.lock();
        let old = self.existing(&inner, res, ns, name)?;
        self.update_locked(&mut inner, res, old, body, opts, false)
    }

    fn existing(
        &self,
        inner: &Inner,
        res: &Resource,
        ns: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let ns = if res.namespaced { ns } else { "" };
        inner
            .objects
            .get(&res.storage_key())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    /// Stores a new version of `old`; everything server-owned comes from `old`.
    fn update_locked(
        &self,
        inner: &mut Inner,
        res: &Resource,
        old: Arc<Value>,
        mut new: Value,
        opts: &WriteOptions,
        managed_done: bool,
    ) -> Result<Value, ApiError> {
        let name = object_name(&old).to_string();
        check_update(res, &name, &old, &new)?;
        keep_server_fields(res, &old, &mut new);
        let status_write = opts.subresource.as_deref() == Some("status");
        if status_write {
            new = status_only(&old, new, managed_done);
        } else if res.status_subresource {
            keep_status(&old, &mut new);
        }
        validate(res, &new)?;
        if !status_write {
            // Before the dry-run return: a dry run is refused the same way.
            immutable::check(res, &old, &new)?;
        }
        let time = now();
        let served = if status_write {
            None
        } else {
            on_write(res, &mut new, &time)?
        };
        bump_generation(&old, &mut new);
        if !managed_done {
            meta_mut(&mut new).remove("managedFields");
            let av = res.api_version();
            record_update(
                Some(&old),
                &mut new,
                &writer(opts, &av, &time),
                opts.subresource.as_deref(),
            );
        }
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if same_content(&old, &new) && !finalized {
            return Ok(present(res, &old));
        }
        if opts.dry_run {
            return Ok(present(res, &new));
        }
        if finalized {
            return self.remove_locked(inner, res, &old, Some(new));
        }
        Ok(self.store_update(inner, res, old, new, served, status_write))
    }

    /// Stores an update that changes something, with its event, the resources a CRD now
    /// serves, and the rollout a new generation starts.
    fn store_update(
        &self,
        inner: &mut Inner,
        res: &Resource,
        old: Arc<Value>,
        mut new: Value,
        served: Option<Vec<Resource>>,
        status_write: bool,
    ) -> Value {
        inner.rv += 1;
        let rv = inner.rv;
        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv.to_string()));
        let key = res.storage_key();
        let ns_key = old
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let object = Arc::new(new);
        inner.objects.entry(key.clone()).or_default().insert(
            (ns_key.clone(), object_name(&old).to_string()),
            object.clone(),
        );
        if let Some(served) = served {
            // What the CRD served before goes, even if it now serves no version at all.
            let group = old
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = old
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            inner
                .resources
                .retain(|r| !(r.custom && r.group == group && r.plural == plural));
            inner.resources.extend(served);
        }
        let generation_changed = old.pointer("/metadata/generation")
            != object.pointer("/metadata/generation")
            || old.pointer("/metadata/annotations") != object.pointer("/metadata/annotations");
        self.emit(
            inner,
            Event {
                kind: EventType::Modified,
                storage_key: key,
                namespace: ns_key,
                rv,
                object: object.clone(),
                old: Some(old),
            },
        );
        if generation_changed && !status_write {
            self.notify_rollout(res, &object);
        }
        present(res, &object)
    }

    /// PATCH in any of the four flavours; server-side apply creates a missing object.
    pub fn patch(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        kind: PatchKind,
        patch: &Value,
        opts: &WriteOptions,
    ) -> Result<(bool, Value), ApiError> {
        let mut inner = self.lock();
        if kind == PatchKind::Apply {
            return self.apply_locked(&mut inner, res, ns, name, patch, opts);
        }
        let old = self.existing(&inner, res, ns, name)?;
        let current = present(res, &old);
        let mut new = patched(res, &current, kind, patch)?;
        // A patch that does not carry a resourceVersion must not trip the precondition.
        if patch.pointer("/metadata/resourceVersion").is_none()
            && let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.remove("resourceVersion");
        }
        self.update_locked(&mut inner, res, old, new, opts, false)
            .map(|o| (false, o))
    }

    /// Server-side apply: merges the applied configuration into the object (or into
    /// nothing, creating it), with field ownership and conflicts.
    fn apply_locked(
        &self,
        inner: &mut Inner,
        res: &Resource,
        ns: &str,
        name: &str,
        patch: &Value,
        opts: &WriteOptions,
    ) -> Result<(bool, Value), ApiError> {
        let mut applied = applied_config(res, ns, name, patch)?;
        // A resourceVersion in the applied configuration is a precondition, as on the API
        // server (the write is refused if the object changed since), never a managed field.
        let precondition = meta_mut(&mut applied)
            .remove("resourceVersion")
            .and_then(|v| v.as_str().map(str::to_string))
            .filter(|v| !v.is_empty());
        let modified = || {
            ApiError::conflict(
                &res.group,
                &res.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        };
        let time = now();
        let av = res.api_version();
        let w = writer(opts, &av, &time);
        let conflict = |c: Vec<_>| {
            ApiError::new(409, "Conflict", conflict_message(&c))
                .with_details(json!({"name": name, "group": res.group, "kind": res.plural, "causes": conflict_causes(&c)}))
        };
        match self.existing(inner, res, ns, name) {
            Err(e) if e.code == 404 => {
                if opts.subresource.is_some() {
                    return Err(e);
                }
                if precondition.is_some() {
                    return Err(modified());
                }
                let merged =
                    server_side_apply(&json!({}), &applied, &w, opts.force).map_err(conflict)?;
                self.create_locked(inner, res, ns, merged, opts, true)
                    .map(|o| (true, o))
            }
            Err(e) => Err(e),
            Ok(old) => {
                if precondition.is_some_and(|rv| rv != object_rv(&old).to_string()) {
                    return Err(modified());
                }
                let merged = server_side_apply(&present(res, &old), &applied, &w, opts.force)
                    .map_err(conflict)?;
                self.update_locked(inner, res, old, merged, opts, true)
                    .map(|o| (false, o))
            }
        }
    }

    /// DELETE: removes the object, or marks it for deletion while finalizers remain.
    pub fn delete(
        &self,
        res: &Resource,
        ns: &str,
        name: &str,
        opts: &WriteOptions,
        preconditions: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let old = self.existing(&inner, res, ns, name)?;
        if let Some(p) = preconditions {
            for (field, path) in [
                ("uid", "/metadata/uid"),
                ("resourceVersion", "/metadata/resourceVersion"),
            ] {
                if let Some(want) = p.get(field).and_then(Value::as_str) {
                    let have = old
                        .pointer(path)
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if want != have {
                        return Err(ApiError::conflict(
                            &res.group,
                            &res.plural,
                            name,
                            &format!(
                                "Precondition failed: {field} in precondition: {want}, {field} in object meta: {have}"
                            ),
                        ));
                    }
                }
            }
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(present(res, &old));
            }
            let mut marked = (*old).clone();
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(now()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if opts.dry_run {
                return Ok(present(res, &marked));
            }
            inner.rv += 1;
            let rv = inner.rv;
            meta_mut(&mut marked).insert("resourceVersion".into(), json!(rv.to_string()));
            if res.kind == "Namespace" {
                marked["status"] = json!({"phase": "Terminating"});
            }
            let ns_key = if res.namespaced {
                ns.to_string()
            } else {
                String::new()
            };
            let object = Arc::new(marked);
            inner
                .objects
                .entry(res.storage_key())
                .or_default()
                .insert((ns_key.clone(), name.to_string()), object.clone());
            self.emit(
                &mut inner,
                Event {
                    kind: EventType::Modified,
                    storage_key: res.storage_key(),
                    namespace: ns_key,
                    rv,
                    object: object.clone(),
                    old: Some(old),
                },
            );
            return Ok(present(res, &object));
        }
        if opts.dry_run {
            return Ok(present(res, &old));
        }
        self.remove_locked(&mut inner, res, &old, None)
    }

    /// Removes an object for good, with what goes with it (a namespace's objects, a CRD's).
    fn remove_locked(
        &self,
        inner: &mut Inner,
        res: &Resource,
        old: &Arc<Value>,
        last: Option<Value>,
    ) -> Result<Value, ApiError> {
        let ns_key = old
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = object_name(old).to_string();
        let key = res.storage_key();
        if let Some(m) = inner.objects.get_mut(&key) {
            m.remove(&(ns_key.clone(), name.clone()));
        }
        inner.rv += 1;
        let rv = inner.rv;
        let mut gone = last.unwrap_or_else(|| (**old).clone());
        meta_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
        let object = Arc::new(gone);
        self.emit(
            inner,
            Event {
                kind: EventType::Deleted,
                storage_key: key,
                namespace: ns_key,
                rv,
                object: object.clone(),
                old: Some(old.clone()),
            },
        );
        tracing::debug!(resource = %res.plural, name = %name, rv, "deleted");
        if res.kind == "Namespace" && res.group.is_empty() {
            self.purge(inner, |k, (ns, _)| {
                !k.starts_with("/namespaces") && *ns == name && !ns.is_empty()
            });
        }
        if res.kind == "CustomResourceDefinition" {
            let group = old
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let plural = old
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let crd_key = format!("{group}/{plural}");
            self.purge(inner, |k, _| k == crd_key);
            inner
                .resources
                .retain(|r| !(r.custom && r.group == group && r.plural == plural));
        }
        Ok(present(res, &object))
    }

    /// Removes every object that `doomed` selects, each with a DELETED event.
    fn purge(&self, inner: &mut Inner, doomed: impl Fn(&str, &(String, String)) -> bool) {
        let mut victims = Vec::new();
        for (k, m) in inner.objects.iter_mut() {
            let keys: Vec<_> = m.keys().filter(|key| doomed(k, key)).cloned().collect();
            for key in keys {
                if let Some(o) = m.remove(&key) {
                    victims.push((k.clone(), key.0, o));
                }
            }
        }
        for (k, ns, o) in victims {
            inner.rv += 1;
            let rv = inner.rv;
            let mut gone = (*o).clone();
            meta_mut(&mut gone).insert("resourceVersion".into(), json!(rv.to_string()));
            self.emit(
                inner,
                Event {
                    kind: EventType::Deleted,
                    storage_key: k,
                    namespace: ns,
                    rv,
                    object: Arc::new(gone),
                    old: Some(o),
                },
            );
        }
    }

    /// DELETE on a collection: deletes each selected object.
    pub fn delete_collection(
        &self,
        res: &Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &WriteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self.list(res, ns, labels, fields, None, None)?;
        let mut out = Vec::new();
        for o in page.items {
            let ons = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match self.delete(res, ons, object_name(&o), opts, None) {
                Ok(v) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Moves a workload's status to where its rollout ends, if it is still at `generation`.
    pub fn converge(&self, w: &WorkloadRef) {
        let mut inner = self.lock();
        let Ok(old) = self.existing(&inner, &w.resource, &w.namespace, &w.name) else {
            return;
        };
        if old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            != w.generation
        {
            return;
        }
        let Some(status) = kinds::rollout_status(&w.resource, &old, &now()) else {
            return;
        };
        if old.get("status") == Some(&status) {
            return;
        }
        let mut new = (*old).clone();
        new["status"] = status;
        let opts = WriteOptions {
            manager: "kube-controller-manager".into(),
            subresource: Some("status".into()),
            ..Default::default()
        };
        if let Err(e) = self.update_locked(&mut inner, &w.resource, old, new, &opts, false) {
            tracing::warn!(name = %w.name, error = %e, "rollout status write failed");
        }
    }
}
