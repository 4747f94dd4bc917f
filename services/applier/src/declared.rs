//! What the applier keeps of a bundle once it has read it: per object its reference and a
//! digest of its declared content, not the object. The next rollout compares digests to find
//! what a revision left as it was, the prune finds what a revision dropped, and the health
//! watch finds what to wait for, without reading or holding the objects again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use configsync_core::cluster::health::needs_status;
use configsync_core::cluster::object_ref;
use configsync_core::event::ObjectRef;
use configsync_core::log::bundles::{BundleError, BundleStore};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One object of a bundle.
pub(crate) struct Declared {
    /// Its place in the bundle.
    pub index: usize,
    pub reference: ObjectRef,
    /// SHA-256 of the object as the bundle declares it, before ConfigSync marks it. Bundles
    /// are stored canonical (sorted keys), so equal declarations give equal digests.
    pub digest: [u8; 32],
    /// Whether its health needs its status read (workloads, claims, load balancers, ...).
    pub needs_status: bool,
}

/// The objects of one bundle, in bundle order (objects without a reference, which the
/// validator never passes, are left out).
pub(crate) struct Summary {
    pub objects: Vec<Declared>,
}

impl Summary {
    pub fn of(objects: &[Value]) -> Self {
        let objects = objects
            .iter()
            .enumerate()
            .filter_map(|(index, o)| {
                Some(Declared {
                    index,
                    reference: object_ref(o)?,
                    digest: Sha256::digest(serde_json::to_vec(o).unwrap_or_default()).into(),
                    needs_status: needs_status(o),
                })
            })
            .collect();
        Self { objects }
    }
}

/// How many summaries are kept: each target's deployed bundle and the one being rolled out,
/// for a few environments. At 10,000 objects a summary is about 2 MB.
const KEPT: usize = 8;

/// The summaries of the bundles used last, read from the bundle store on a miss.
pub(crate) struct Summaries {
    store: BundleStore,
    recent: Mutex<VecDeque<(String, Arc<Summary>)>>,
}

impl Summaries {
    pub fn new(store: BundleStore) -> Self {
        Self {
            store,
            recent: Mutex::new(VecDeque::with_capacity(KEPT)),
        }
    }

    /// The summary of the bundle `digest`, reading the bundle only if it is not kept.
    pub async fn get(&self, digest: &str) -> Result<Arc<Summary>, BundleError> {
        if let Some(found) = self.kept(digest) {
            return Ok(found);
        }
        let bundle = self.store.get_bundle(digest).await?;
        let summary = Arc::new(Summary::of(&bundle.objects));
        self.keep(digest, summary.clone());
        Ok(summary)
    }

    /// Keeps `summary` as the most recently used.
    pub fn keep(&self, digest: &str, summary: Arc<Summary>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|(d, _)| d != digest);
        if recent.len() == KEPT {
            recent.pop_back();
        }
        recent.push_front((digest.to_string(), summary));
    }

    fn kept(&self, digest: &str) -> Option<Arc<Summary>> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let at = recent.iter().position(|(d, _)| d == digest)?;
        let entry = recent.remove(at)?;
        let summary = entry.1.clone();
        recent.push_front(entry);
        Some(summary)
    }
}

/// An object's identity across revisions: its group (not version: a move from `v1beta1` to
/// `v1` is the same object), kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub group: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    pub fn of(reference: &ObjectRef) -> Self {
        Self {
            group: reference
                .api_version
                .split_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default(),
            kind: reference.kind.clone(),
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
        }
    }

    pub fn of_value(object: &Value) -> Option<Self> {
        object_ref(object).as_ref().map(Self::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_declarations_have_equal_digests_and_a_change_shows() {
        let a = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "1"}});
        let b = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "2"}});
        let first = Summary::of(&[a.clone(), b.clone()]);
        let again = Summary::of(&[a]);
        assert_eq!(first.objects[0].digest, again.objects[0].digest);
        assert_ne!(first.objects[0].digest, first.objects[1].digest);
        assert!(!first.objects[0].needs_status);
    }

    #[test]
    fn objects_without_a_reference_are_left_out_and_indexes_kept() {
        let s = Summary::of(&[
            json!({"kind": "ConfigMap"}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}),
        ]);
        assert_eq!(s.objects.len(), 1);
        assert_eq!(s.objects[0].index, 1);
        assert!(s.objects[0].needs_status);
    }

    #[test]
    fn the_group_not_the_version_identifies_an_object() {
        let old = json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"}});
        let new = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"}});
        assert_eq!(Key::of_value(&old), Key::of_value(&new));
    }
}
