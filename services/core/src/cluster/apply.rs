//! Server-side apply of ConfigSync's objects: field manager `configsync`, forced (Git is the
//! source of truth, so ConfigSync takes back fields others changed), every object marked as
//! managed, Namespaces and CRDs first.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
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

/// Namespaces first, then CustomResourceDefinitions, then everything else in bundle order:
/// objects need their namespace, custom resources their definition.
pub fn order(objects: &[Value]) -> Vec<&Value> {
    let rank = |o: &Value| match o["kind"].as_str() {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| rank(o));
    ordered
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
        let reference = object_ref(object).ok_or_else(|| {
            ApplyError::Invalid("missing apiVersion, kind or metadata.name".into())
        })?;
        let (api, namespace) = self.api_for(&reference).await?;
        let mut object = object.clone();
        if let Some(ns) = &namespace {
            object["metadata"]["namespace"] = Value::String(ns.clone());
        }
        let before = api
            .get_opt(&reference.name)
            .await
            .map_err(ApplyError::from_kube)?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let after = api
            .patch(&reference.name, &params, &Patch::Apply(&object))
            .await
            .map_err(ApplyError::from_kube)?;
        Ok(match before {
            None => ObjectAction::Created,
            Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                ObjectAction::Unchanged
            }
            Some(_) => ObjectAction::Configured,
        })
    }

    /// The live object, if it exists.
    pub async fn get(&self, reference: &ObjectRef) -> Result<Option<DynamicObject>, ApplyError> {
        let (api, _) = self.api_for(reference).await?;
        api.get_opt(&reference.name)
            .await
            .map_err(ApplyError::from_kube)
    }
}

/// One [`ClusterApplier`] per target, built on first use and kept (a kube client reconnects by
/// itself, so a cluster that was down needs no new client).
pub struct ClusterAppliers {
    allow_exec: bool,
    by_target: Mutex<HashMap<String, std::sync::Arc<ClusterApplier>>>,
}

impl ClusterAppliers {
    /// `allow_exec`: accept kubeconfigs whose users run `exec` plugins or auth providers.
    pub fn new(allow_exec: bool) -> Self {
        Self {
            allow_exec,
            by_target: Mutex::new(HashMap::new()),
        }
    }

    /// The applier of `target`.
    pub async fn get(
        &self,
        target: &super::ClusterTarget,
    ) -> Result<std::sync::Arc<ClusterApplier>, super::ClusterError> {
        let key = format!("{}/{}", target.environment, target.cluster);
        let mut by_target = self.by_target.lock().await;
        if let Some(applier) = by_target.get(&key) {
            return Ok(applier.clone());
        }
        let applier =
            std::sync::Arc::new(ClusterApplier::new(target.client(self.allow_exec).await?));
        by_target.insert(key, applier.clone());
        Ok(applier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaces_and_crds_go_first_keeping_the_rest_in_order() {
        let objects = vec![
            json!({"kind": "ConfigMap", "n": 1}),
            json!({"kind": "CustomResourceDefinition"}),
            json!({"kind": "Deployment", "n": 2}),
            json!({"kind": "Namespace"}),
        ];
        let kinds: Vec<_> = order(&objects)
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ConfigMap",
                "Deployment"
            ]
        );
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
