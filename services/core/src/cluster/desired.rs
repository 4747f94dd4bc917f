//! The desired state of a target: the bundle of its latest successful apply, marked exactly as
//! the applier marked it, read from the log (the latest `apply.succeeded` on the target's
//! subject) and the bundle store. The drift-watcher compares live objects with it; the
//! remediator re-applies from it.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::OnceCell;

use super::mark;
use crate::event::{ApplySucceeded, EventData, EventPayload};
use crate::log::bundles::{BundleError, BundleStore};
use crate::log::{EventLog, last_event};
use crate::subject;

/// Why the desired state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("reading the log: {0}")]
    Log(String),
    #[error("reading bundle {digest}: {source}")]
    Bundle { digest: String, source: BundleError },
    #[error("invalid target: {0}")]
    Target(String),
}

impl DesiredError {
    /// Whether reading again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Log(_) => true,
            Self::Bundle { source, .. } => source.is_transient(),
            Self::Target(_) => false,
        }
    }
}

impl From<DesiredError> for crate::log::HandlerError {
    fn from(e: DesiredError) -> Self {
        if e.is_transient() {
            Self::Transient(e.to_string())
        } else {
            Self::Terminal(e.to_string())
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
        let bundle = self
            .bundles()
            .await
            .map_err(bundle_error)?
            .get_bundle(&digest)
            .await
            .map_err(bundle_error)?;
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
