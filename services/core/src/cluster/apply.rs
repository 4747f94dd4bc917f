//! Server-side apply of ConfigSync's objects: field manager `configsync`, forced (Git is the
//! source of truth, so ConfigSync takes back fields others changed), every object marked as
//! managed; server-side dry runs, deletes, and the comparison that tells whether an apply would
//! change anything.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Scope;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::event::{ObjectAction, ObjectRef};

/// The field manager of every ConfigSync write.
pub const FIELD_MANAGER: &str = "configsync";
/// The label that marks an object as managed by ConfigSync.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "configsync");
/// The environment an object was applied for.
pub const ANNOTATION_ENVIRONMENT: &str = "configsync.io/environment";
/// The Git revision an object was last applied from.
pub const ANNOTATION_REVISION: &str = "configsync.io/revision";
/// `configsync.io/prune: disabled` keeps an object in the cluster when it leaves Git.
pub const ANNOTATION_PRUNE: &str = "configsync.io/prune";

/// Why an apply failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApplyError {
    /// The cluster could not be reached or answered with a server error: retry later.
    #[error("cluster unreachable: {0}")]
    Unreachable(String),
    /// The cluster refused this object (e.g. its namespace does not exist).
    #[error("{code}: {message}")]
    Refused { code: u16, message: String },
    /// The object itself is malformed.
    #[error("invalid object: {0}")]
    Invalid(String),
}

impl ApplyError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }

    fn from_kube(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) if status.code >= 500 || status.code == 429 => {
                Self::Unreachable(format!("{} {}", status.code, status.message))
            }
            kube::Error::Api(status) => Self::Refused {
                code: status.code,
                message: status.message.clone(),
            },
            other => Self::Unreachable(other.to_string()),
        }
    }
}

/// Adds the managed-by label and the environment and revision annotations.
pub fn mark(object: &mut Value, environment: &str, revision: &str) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(MANAGED_BY_LABEL.0.into(), MANAGED_BY_LABEL.1.into());
    }
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(ANNOTATION_ENVIRONMENT.into(), environment.into());
        annotations.insert(ANNOTATION_REVISION.into(), revision.into());
    }
}

/// The reference of a manifest object (namespace as written; see [`ClusterApplier`] for the
/// default namespace).
pub fn object_ref(object: &Value) -> Option<ObjectRef> {
    let s = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    Some(ObjectRef {
        api_version: s(&object["apiVersion"])?,
        kind: s(&object["kind"])?,
        namespace: s(&object["metadata"]["namespace"]),
        name: s(&object["metadata"]["name"])?,
    })
}

/// The metadata the server writes on every request, never compared.
const SERVER_METADATA: [&str; 6] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "uid",
    "selfLink",
];

/// `object` without what the server writes on every request (managedFields,
/// resourceVersion, generation, timestamps), without `status`, and without ConfigSync's
/// revision annotation: what is left changes only when an apply changes the object. The
/// revision annotation is left out so that a new revision rewrites only the objects it
/// changes; on those it records the revision that last changed them.
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(ANNOTATION_REVISION);
            }
            for field in SERVER_METADATA {
                metadata.remove(field);
            }
        }
    }
    object
}

/// Whether applying (with the dry-run result `after`) would change the live object `before`.
pub fn would_change(before: &Value, after: &Value) -> bool {
    comparable(before) != comparable(after)
}

/// Whether every field `declared` sets has the same value in `live` (lists item by item;
/// ConfigSync's revision annotation, `apiVersion` and `kind` left out: list items carry no
/// type). A strict, literal test: a value the server normalises (`1000m` stored as `1`) does
/// not match, which only sends the object down the slower, exact path of a dry run.
pub fn declared_match(declared: &Value, live: &Value) -> bool {
    fn matches(declared: &Value, live: &Value) -> bool {
        match (declared, live) {
            (Value::Object(d), Value::Object(l)) => d
                .iter()
                .all(|(k, v)| l.get(k).is_some_and(|lv| matches(v, lv))),
            (Value::Array(d), Value::Array(l)) => {
                d.len() == l.len() && d.iter().zip(l).all(|(a, b)| matches(a, b))
            }
            (d, l) => d == l,
        }
    }
    /// `matches` on the fields of `declared` but those in `skip`.
    fn matches_but(
        declared: &serde_json::Map<String, Value>,
        live: &Value,
        skip: &[&str],
        mut nested: impl FnMut(&str, &Value, &Value) -> Option<bool>,
    ) -> bool {
        declared
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| {
                live.get(k)
                    .is_some_and(|lv| nested(k, v, lv).unwrap_or_else(|| matches(v, lv)))
            })
    }
    // What `comparable` leaves out, skipped in place rather than on a copy: at 10,000 objects
    // the copies were a tenth of an unchanged rollout.
    let Value::Object(top) = declared else {
        return matches(declared, live);
    };
    matches_but(top, live, &["status", "apiVersion", "kind"], |key, d, l| {
        let (Value::Object(metadata), "metadata") = (d, key) else {
            return None;
        };
        Some(matches_but(metadata, l, &SERVER_METADATA, |key, d, l| {
            let (Value::Object(annotations), "annotations") = (d, key) else {
                return None;
            };
            Some(matches_but(
                annotations,
                l,
                &[ANNOTATION_REVISION],
                |_, _, _| None,
            ))
        }))
    })
}

/// Whether the live object may be deleted by ConfigSync for `environment`: it carries the
/// managed-by label and this environment's annotation, and no `configsync.io/prune: disabled`.
/// Anything else was created or taken over by someone else and is left alone.
pub fn may_prune(live: &Value, environment: &str) -> Result<(), &'static str> {
    let metadata = &live["metadata"];
    if metadata["labels"][MANAGED_BY_LABEL.0] != MANAGED_BY_LABEL.1 {
        return Err("not managed by configsync (no managed-by label)");
    }
    if metadata["annotations"][ANNOTATION_ENVIRONMENT] != environment {
        return Err("applied for another environment");
    }
    if metadata["annotations"][ANNOTATION_PRUNE] == "disabled" {
        return Err("configsync.io/prune: disabled");
    }
    Ok(())
}

/// Objects per page when listing.
pub const LIST_PAGE: u32 = 500;

/// What of a listed object is read. `metadata.managedFields`, often the larger part of an
/// object, is never read: nothing that lists needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Everything else but the pod template, `status` included (health).
    Status,
    /// What a manifest can declare: no `status` either (comparison with the declared object,
    /// which never looks at it).
    Declared,
}

/// A list item typed by hand: list items carry no `apiVersion` or `kind`.
trait ItemType {
    fn set_type(&mut self, api_version: &str, kind: &str);
}

/// A live object read without `metadata.managedFields` and, if `STATUS` is false, without
/// `status` (if true, without `spec.template`): the parser skips them instead of building values that would be dropped at once
/// (at 10,000 objects, most of the bytes of a list).
#[derive(Clone)]
struct Listed<const STATUS: bool>(Value);

impl<const STATUS: bool> ItemType for Listed<STATUS> {
    fn set_type(&mut self, api_version: &str, kind: &str) {
        self.0["apiVersion"] = api_version.into();
        self.0["kind"] = kind.into();
    }
}

impl<'de, const STATUS: bool> serde::Deserialize<'de> for Listed<STATUS> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::DeserializeSeed;
        // Health reads `spec` only for counts and types, never the pod template.
        let nested: &[_] = if STATUS {
            &[("metadata", "managedFields"), ("spec", "template")]
        } else {
            &[("metadata", "managedFields")]
        };
        Without {
            skip: (!STATUS).then_some("status"),
            nested,
        }
        .deserialize(deserializer)
        .map(|map| Listed(Value::Object(map)))
    }
}

/// A JSON object without the key `skip`, and, under each key `nested[i].0`, without
/// `nested[i].1`.
struct Without {
    skip: Option<&'static str>,
    nested: &'static [(&'static str, &'static str)],
}

impl<'de> serde::de::DeserializeSeed<'de> for Without {
    type Value = serde_json::Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Without {
    type Value = serde_json::Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.skip == Some(key.as_str()) {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else if let Some(&(under, skip)) = self.nested.iter().find(|(u, _)| key == *u) {
                let inner = map.next_value_seed(Without {
                    skip: Some(skip),
                    nested: &[],
                })?;
                out.insert(under.to_string(), Value::Object(inner));
            } else {
                out.insert(key, map.next_value()?);
            }
        }
        Ok(out)
    }
}

/// Applies objects to one cluster, caching what discovery says about each kind.
pub struct ClusterApplier {
    client: kube::Client,
    kinds: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

impl ClusterApplier {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The resource and scope of `apiVersion`/`kind`. A kind whose CRD was applied moments ago
    /// may take a little while to be served, so a miss is retried briefly.
    async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), ApplyError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.kinds.lock().await.get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let mut attempt = 0;
        let (resource, caps) = loop {
            match kube::discovery::pinned_kind(&self.client, &gvk).await {
                Ok(found) => break found,
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 0 => {
                    attempt += 1;
                    if attempt >= 10 {
                        return Err(ApplyError::Refused {
                            code: 404,
                            message: format!("the cluster does not serve {api_version} {kind}"),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(kube::Error::Discovery(e)) => {
                    attempt += 1;
                    if attempt >= 10 {
                        return Err(ApplyError::Refused {
                            code: 404,
                            message: format!(
                                "the cluster does not serve {api_version} {kind}: {e}"
                            ),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(ApplyError::from_kube(e)),
            }
        };
        let found = (resource, caps.scope == Scope::Namespaced);
        self.kinds.lock().await.insert(key, found.clone());
        Ok(found)
    }

    /// The API for an object, with its effective namespace (`default` when a namespaced
    /// object names none).
    pub async fn api_for(
        &self,
        reference: &ObjectRef,
    ) -> Result<(Api<DynamicObject>, Option<String>), ApplyError> {
        let (resource, namespaced) = self
            .resource(&reference.api_version, &reference.kind)
            .await?;
        if namespaced {
            let ns = reference
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            Ok((
                Api::namespaced_with(self.client.clone(), &ns, &resource),
                Some(ns),
            ))
        } else {
            Ok((Api::all_with(self.client.clone(), &resource), None))
        }
    }

    /// Server-side applies `object` (already marked) and says what changed.
    pub async fn apply(&self, object: &Value) -> Result<ObjectAction, ApplyError> {
        let reference = reference_of(object)?;
        let before = self.get(&reference).await?;
        let after = self.patch(object, false).await?;
        Ok(match before {
            None => ObjectAction::Created,
            Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                ObjectAction::Unchanged
            }
            Some(_) => ObjectAction::Configured,
        })
    }

    /// Server-side applies `object` (already marked), for real or as a dry run
    /// (`dryRun=All`: admission and validation run, nothing is stored), and returns the object
    /// as the server has (or would have) it.
    pub async fn patch(&self, object: &Value, dry_run: bool) -> Result<DynamicObject, ApplyError> {
        let reference = reference_of(object)?;
        let (api, namespace) = self.api_for(&reference).await?;
        let mut object = object.clone();
        if let Some(ns) = &namespace {
            object["metadata"]["namespace"] = Value::String(ns.clone());
        }
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = dry_run;
        api.patch(&reference.name, &params, &Patch::Apply(&object))
            .await
            .map_err(ApplyError::from_kube)
    }

    /// Calls `each` with every object of a kind that carries ConfigSync's managed-by label, in
    /// all namespaces, as JSON with its `apiVersion` and `kind`: a few requests however many
    /// objects (pages of [`LIST_PAGE`]), and only one page held at a time. `parts` says
    /// whether the server's own fields (`status`, `managedFields`) are needed: skipped while
    /// parsing, they cost nothing.
    pub async fn for_each_managed(
        &self,
        api_version: &str,
        kind: &str,
        parts: Parts,
        mut each: impl FnMut(Value),
    ) -> Result<(), ApplyError> {
        match parts {
            Parts::Status => {
                self.pages::<Listed<true>>(api_version, kind, |v| each(v.0))
                    .await
            }
            Parts::Declared => {
                self.pages::<Listed<false>>(api_version, kind, |v| each(v.0))
                    .await
            }
        }
    }

    async fn pages<T: serde::de::DeserializeOwned + Clone + ItemType>(
        &self,
        api_version: &str,
        kind: &str,
        mut each: impl FnMut(T),
    ) -> Result<(), ApplyError> {
        let (resource, _) = self.resource(api_version, kind).await?;
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let mut params = ListParams::default()
            .labels(&format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1))
            .limit(LIST_PAGE);
        let request = kube::core::Request::new(api.resource_url());
        loop {
            // Straight into JSON values: through `DynamicObject` each item would be converted
            // twice, which at 10,000 objects is most of the cost of the list.
            let page: kube::core::ObjectList<T> = self
                .client
                .request(request.list(&params).map_err(|e| {
                    ApplyError::Invalid(format!("list request for {api_version} {kind}: {e}"))
                })?)
                .await
                .map_err(ApplyError::from_kube)?;
            let next = page.metadata.continue_.filter(|c| !c.is_empty());
            for mut item in page.items {
                // List items carry no type.
                item.set_type(api_version, kind);
                each(item);
            }
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(()),
            }
        }
    }

    /// The live object, if it exists.
    pub async fn get(&self, reference: &ObjectRef) -> Result<Option<DynamicObject>, ApplyError> {
        let (api, _) = self.api_for(reference).await?;
        api.get_opt(&reference.name)
            .await
            .map_err(ApplyError::from_kube)
    }

    /// Deletes the object (background propagation, as kubectl does); gone already is fine.
    pub async fn delete(&self, reference: &ObjectRef) -> Result<(), ApplyError> {
        let (api, _) = self.api_for(reference).await?;
        match api
            .delete(&reference.name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(ApplyError::from_kube(e)),
        }
    }
}

fn reference_of(object: &Value) -> Result<ObjectRef, ApplyError> {
    object_ref(object)
        .ok_or_else(|| ApplyError::Invalid("missing apiVersion, kind or metadata.name".into()))
}

/// One [`ClusterApplier`] per target, built on first use and kept (a kube client reconnects by
/// itself, so a cluster that was down needs no new client).
pub struct ClusterAppliers {
    allow_exec: bool,
    /// Each request's limit: a cluster that accepts connections and never answers must delay
    /// only its own target, never every environment.
    request_timeout: Option<Duration>,
    by_target: Mutex<HashMap<crate::names::Target, std::sync::Arc<ClusterApplier>>>,
}

impl ClusterAppliers {
    /// `allow_exec`: accept kubeconfigs whose users run `exec` plugins or auth providers.
    pub fn new(allow_exec: bool) -> Self {
        Self {
            allow_exec,
            request_timeout: None,
            by_target: Mutex::new(HashMap::new()),
        }
    }

    /// Requests that take longer than `timeout` fail as unreachable (not for watches).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The applier of `target`.
    pub async fn get(
        &self,
        target: &super::ClusterTarget,
    ) -> Result<std::sync::Arc<ClusterApplier>, super::ClusterError> {
        let key = target.target();
        let mut by_target = self.by_target.lock().await;
        if let Some(applier) = by_target.get(&key) {
            return Ok(applier.clone());
        }
        let client = target
            .client_with(self.allow_exec, self.request_timeout)
            .await?;
        let applier = std::sync::Arc::new(ClusterApplier::new(client));
        by_target.insert(key, applier.clone());
        Ok(applier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn declared_fields_match_whatever_the_server_adds_and_a_change_does_not() {
        let declared = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "1", "creationTimestamp": null,
                "annotations": {ANNOTATION_REVISION: "new", "team": "x"}},
            "data": {"k": "v"}, "status": {"ignored": true}});
        let live = json!({"metadata": {"name": "a", "namespace": "default", "uid": "u",
                "resourceVersion": "7", "managedFields": [],
                "annotations": {ANNOTATION_REVISION: "old", "team": "x", "other": "y"}},
            "data": {"k": "v", "extra": "w"}});
        assert!(declared_match(&declared, &live));
        let mut changed = declared.clone();
        changed["data"]["k"] = json!("changed");
        assert!(!declared_match(&changed, &live));
        let mut annotated = declared.clone();
        annotated["metadata"]["annotations"]["team"] = json!("y");
        assert!(!declared_match(&annotated, &live));
        let mut listed = declared;
        listed["data"] = json!({"k": "v", "missing": "z"});
        assert!(!declared_match(&listed, &live));
    }

    #[test]
    fn a_listed_object_skips_managed_fields_and_status_only_when_asked() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"a": "b"}, "managedFields": [{"manager": "x"}]},
            "spec": {"replicas": 2, "status": "a spec field named status is kept", "template": {"spec": {}}},
            "status": {"readyReplicas": 2}});
        let Listed::<false>(read) = serde_json::from_value(live.clone()).unwrap();
        assert_eq!(
            read,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"a": "b"}},
                "spec": {"replicas": 2, "status": "a spec field named status is kept", "template": {"spec": {}}}})
        );
        let Listed::<true>(read) = serde_json::from_value(live).unwrap();
        assert_eq!(read["spec"]["replicas"], 2);
        assert!(read["spec"].get("template").is_none());
        assert_eq!(read["status"], json!({"readyReplicas": 2}));
        assert!(read["metadata"].get("managedFields").is_none());
        assert!(serde_json::from_value::<Listed<false>>(json!([1])).is_err());
    }

    #[test]
    fn comparison_ignores_what_the_server_writes_on_every_request() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "7", "generation": 1, "managedFields": [{"manager": "x"}]},
            "data": {"k": "v"}, "status": {"x": 1}});
        let after = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "8", "generation": 2, "managedFields": [{"manager": "configsync"}]},
            "data": {"k": "v"}});
        assert!(!would_change(&live, &after));
        let mut changed = after.clone();
        changed["data"]["k"] = "w".into();
        assert!(would_change(&live, &changed));
    }

    #[test]
    fn only_objects_marked_for_this_environment_may_be_pruned() {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        assert!(may_prune(&o, "dev").is_err(), "unmarked: someone else's");
        mark(&mut o, "dev", "r1");
        assert_eq!(may_prune(&o, "dev"), Ok(()));
        assert!(may_prune(&o, "prod").is_err(), "another environment's");
        o["metadata"]["annotations"][ANNOTATION_PRUNE] = "disabled".into();
        assert!(may_prune(&o, "dev").is_err(), "prune disabled");
    }

    #[test]
    fn mark_adds_label_and_annotations_without_losing_existing_ones() {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "web"}}});
        mark(&mut o, "dev", "abc");
        assert_eq!(o["metadata"]["labels"]["app"], "web");
        assert_eq!(o["metadata"]["labels"][MANAGED_BY_LABEL.0], "configsync");
        assert_eq!(o["metadata"]["annotations"][ANNOTATION_REVISION], "abc");
        assert_eq!(object_ref(&o).unwrap().name, "a");
    }
}
