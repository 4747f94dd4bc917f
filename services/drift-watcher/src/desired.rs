//! A target's desired objects as the drift-watcher compares them: the latest applied bundle
//! (`configsync_core::cluster::DesiredSource`) keyed by each object's effective namespace.

use std::collections::{BTreeMap, BTreeSet};

use configsync_core::cluster::{
    ANNOTATION_REVISION, AppliedBundle, ApplyError, ClusterApplier, object_ref,
};
use configsync_core::event::ObjectRef;
use serde_json::Value;

/// A target's desired objects keyed by their reference with the effective namespace (what the
/// live object reports), as the applier applied them.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub revision: String,
    pub objects: BTreeMap<ObjectRef, Value>,
}

impl Desired {
    /// The (apiVersion, kind) pairs to watch.
    pub fn kinds(&self) -> BTreeSet<(String, String)> {
        self.objects
            .keys()
            .map(|r| (r.api_version.clone(), r.kind.clone()))
            .collect()
    }

    /// Resolves each object's effective namespace with the cluster's discovery (`default` for
    /// a namespaced object that names none, as the applier does).
    pub async fn resolve(
        applier: &ClusterApplier,
        bundle: &AppliedBundle,
    ) -> Result<Self, ApplyError> {
        let mut objects = BTreeMap::new();
        for object in &bundle.objects {
            let Some(mut reference) = object_ref(object) else {
                continue;
            };
            let (_, namespace) = match applier.api_for(&reference).await {
                Ok(found) => found,
                // A kind the cluster does not serve was refused at apply time too: nothing to watch.
                Err(ApplyError::Refused { .. }) => continue,
                Err(e) => return Err(e),
            };
            let mut object = object.clone();
            if let Some(ns) = &namespace {
                object["metadata"]["namespace"] = Value::String(ns.clone());
            }
            // The applier writes the revision annotation only when it changes an object, so it
            // names the revision that last changed it: bookkeeping, not desired state.
            if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
                annotations.remove(ANNOTATION_REVISION);
            }
            reference.namespace = namespace;
            objects.insert(reference, object);
        }
        Ok(Self {
            revision: bundle.revision.clone(),
            objects,
        })
    }
}
