//! The desired state of a target: the bundle of its latest successful apply, marked exactly as
//! the applier marked it, read from the log (the latest `apply.succeeded` on the target's
//! subject) and the bundle store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use configsync_core::cluster::{ApplyError, ClusterApplier, mark, object_ref};
use configsync_core::event::{ApplySucceeded, EventData, EventPayload, ObjectRef};
use configsync_core::log::bundles::{BundleError, BundleStore};
use configsync_core::log::{EventLog, last_event};
use configsync_core::subject;
use serde_json::Value;
use tokio::sync::OnceCell;

/// Why the desired state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("reading the log: {0}")]
    Log(String),
    #[error("reading bundle {digest}: {source}")]
    Bundle { digest: String, source: BundleError },
    #[error("bundle {digest} is not readable: {reason}")]
    Unreadable { digest: String, reason: String },
    #[error("invalid target: {0}")]
    Target(String),
}

impl DesiredError {
    /// Whether reading again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Log(_) => true,
            Self::Bundle { source, .. } => source.is_transient(),
            Self::Unreadable { .. } | Self::Target(_) => false,
        }
    }
}

/// The objects of a target's latest successful apply, marked, as found in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedBundle {
    pub revision: String,
    pub bundle_digest: String,
    /// The stream sequence of the `apply.succeeded` event (later is newer).
    pub sequence: u64,
    pub objects: Vec<Value>,
}

/// The bundle as the validator stored it (only the objects matter here).
#[derive(serde::Deserialize)]
struct Bundle {
    objects: Vec<Value>,
}

/// Reads desired states from the log.
#[derive(Clone)]
pub struct DesiredSource {
    log: EventLog,
    /// Opened on first use: the bucket is only needed once a target has been applied, and may
    /// be created after this service starts.
    bundles: Arc<OnceCell<BundleStore>>,
}

impl DesiredSource {
    pub fn new(log: EventLog) -> Self {
        Self {
            log,
            bundles: Arc::new(OnceCell::new()),
        }
    }

    async fn bundles(&self) -> Result<&BundleStore, BundleError> {
        self.bundles
            .get_or_try_init(|| BundleStore::open(&self.log.js))
            .await
    }

    /// The latest applied bundle of `environment`/`cluster`, or `None` before any apply.
    pub async fn latest(
        &self,
        environment: &str,
        cluster: &str,
    ) -> Result<Option<AppliedBundle>, DesiredError> {
        let subject = subject::for_event(ApplySucceeded::TYPE, Some(environment), Some(cluster))
            .map_err(|e| DesiredError::Target(e.to_string()))?;
        let last = last_event(&self.log.js, self.log.stream(), &subject)
            .await
            .map_err(|e| DesiredError::Log(e.to_string()))?;
        let Some(last) = last else { return Ok(None) };
        let EventData::ApplySucceeded(applied) = &last.data else {
            return Ok(None);
        };
        let digest = applied.bundle_digest.clone();
        let bundle_error = |source| DesiredError::Bundle {
            digest: digest.clone(),
            source,
        };
        let bytes = self
            .bundles()
            .await
            .map_err(bundle_error)?
            .get(&digest)
            .await
            .map_err(bundle_error)?;
        let bundle: Bundle =
            serde_json::from_slice(&bytes).map_err(|e| DesiredError::Unreadable {
                digest: digest.clone(),
                reason: e.to_string(),
            })?;
        let objects = bundle
            .objects
            .into_iter()
            .map(|mut o| {
                mark(&mut o, environment, &applied.revision);
                o
            })
            .collect();
        Ok(Some(AppliedBundle {
            revision: applied.revision.clone(),
            bundle_digest: digest,
            sequence: last.stream_sequence,
            objects,
        }))
    }
}

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
            reference.namespace = namespace;
            objects.insert(reference, object);
        }
        Ok(Self {
            revision: bundle.revision.clone(),
            objects,
        })
    }
}
