//! Turning observations into events, once: a target's currently drifted objects (seeded from
//! the log at start, so a restart does not report a drift again), `drift.detected` when an
//! object drifts in a new way, `drift.resolved` when it matches again.

use configsync_core::event::EventData;
use configsync_core::event::{
    DriftDetected, DriftKind, DriftResolved, EventPayload, FieldDrift, IgnoredField, ObjectRef,
    Outgoing, Received,
};
use configsync_core::fold::{DriftRecord, DriftedObjects};
use configsync_core::log::{PublishError, Publisher};

/// What a comparison found for one desired object.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    InSync,
    Drifted {
        kind: DriftKind,
        /// Sorted by path; already masked (`configsync_core::redact::mask_drift`).
        fields: Vec<FieldDrift>,
        changed_by: Option<String>,
        resource_version: Option<String>,
        /// Differing fields an ignore rule covers.
        ignored: Vec<IgnoredField>,
    },
}

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("building the event: {0}")]
    Build(String),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The drift reports of one target.
pub struct Reporter {
    environment: String,
    cluster: String,
    source: String,
    publisher: Publisher,
    /// What was reported and not resolved: the same drift seen again is not reported again.
    reported: DriftedObjects,
}

impl Reporter {
    pub fn new(environment: &str, cluster: &str, source: &str, publisher: Publisher) -> Self {
        Self {
            environment: environment.into(),
            cluster: cluster.into(),
            source: source.into(),
            publisher,
            reported: DriftedObjects::default(),
        }
    }

    /// Folds one event of the log into the set of drifted objects (events of other targets
    /// are ignored).
    pub fn seed(&mut self, event: &Received) {
        let ours = match &event.data {
            EventData::DriftDetected(d) => {
                d.environment == self.environment && d.cluster == self.cluster
            }
            EventData::DriftResolved(r) => {
                r.environment == self.environment && r.cluster == self.cluster
            }
            _ => false,
        };
        if ours {
            self.reported.apply(event);
        }
    }

    /// How many objects are currently reported as drifted.
    pub fn drifted(&self) -> usize {
        self.reported.len()
    }

    /// Records an observation of `object` against `revision`, emitting what changed.
    pub async fn observe(
        &mut self,
        object: &ObjectRef,
        revision: &str,
        observation: Observation,
    ) -> Result<(), ReportError> {
        match observation {
            Observation::InSync => {
                if let Some(reported) = self.reported.get(object) {
                    let resolved = DriftResolved {
                        environment: self.environment.clone(),
                        cluster: self.cluster.clone(),
                        revision: revision.into(),
                        object: object.clone(),
                    };
                    // The drift being resolved is a cause: the next drift of the object and its
                    // resolution get ids of their own.
                    let id = reported.event_id.clone();
                    self.emit(&resolved, object, [id.as_str()]).await?;
                    tracing::info!(environment = %self.environment, cluster = %self.cluster, kind = %object.kind, name = %object.name, revision, "drift resolved");
                    self.reported.remove(object);
                }
            }
            Observation::Drifted {
                kind,
                fields,
                changed_by,
                resource_version,
                ignored,
            } => {
                if self
                    .reported
                    .get(object)
                    .is_some_and(|r| r.revision == revision && r.kind == kind && r.fields == fields)
                {
                    return Ok(());
                }
                let paths: Vec<String> = fields.iter().map(|f| f.path.clone()).collect();
                tracing::info!(
                    environment = %self.environment, cluster = %self.cluster, kind = %object.kind, name = %object.name,
                    revision, drift = ?kind, paths = ?paths, changed_by = changed_by.as_deref().unwrap_or("unknown"),
                    "drift detected"
                );
                let detected = DriftDetected {
                    environment: self.environment.clone(),
                    cluster: self.cluster.clone(),
                    revision: revision.into(),
                    object: object.clone(),
                    kind,
                    fields: fields.clone(),
                    changed_by,
                    resource_version: resource_version.clone(),
                    ignored,
                };
                // The same drift of the same live version gets the same id from any replica or
                // after a restart, so JetStream stores it once.
                let kind_name = match kind {
                    DriftKind::Modified => "modified",
                    DriftKind::Deleted => "deleted",
                };
                let mut causes = vec![kind_name, resource_version.as_deref().unwrap_or("")];
                causes.extend(paths.iter().map(String::as_str));
                let id = self.emit(&detected, object, causes).await?;
                self.reported.record(DriftRecord {
                    object: object.clone(),
                    revision: revision.into(),
                    kind,
                    fields,
                    event_id: id,
                });
            }
        }
        Ok(())
    }

    /// Forgets drifts of objects that are no longer desired (they left the configuration), with
    /// a `drift.resolved` so that folds of the log do not keep them drifted forever.
    pub async fn forget_undesired(
        &mut self,
        desired: &impl Fn(&ObjectRef) -> bool,
        revision: &str,
    ) -> Result<(), ReportError> {
        let gone: Vec<ObjectRef> = self
            .reported
            .objects()
            .filter(|r| !desired(r))
            .cloned()
            .collect();
        for object in gone {
            self.observe(&object, revision, Observation::InSync).await?;
        }
        Ok(())
    }

    async fn emit<'c, P: EventPayload>(
        &self,
        payload: &P,
        object: &ObjectRef,
        causes: impl IntoIterator<Item = &'c str>,
    ) -> Result<String, ReportError> {
        let mut builder = Outgoing::builder(payload)
            .cause(&self.environment)
            .cause(&self.cluster)
            .cause(object_key(object))
            .cause(payload.routing().revision.unwrap_or_default());
        for cause in causes {
            builder = builder.cause(cause);
        }
        let event = builder
            .subject(format!(
                "{}/{}/{}",
                self.environment,
                self.cluster,
                object_key(object)
            ))
            .build(&self.source)
            .map_err(|e| ReportError::Build(e.to_string()))?;
        self.publisher.publish(&event).await?;
        Ok(event.id().to_string())
    }
}

/// `apiVersion/kind/namespace/name` (`_` for no namespace).
pub fn object_key(object: &ObjectRef) -> String {
    format!(
        "{}/{}/{}/{}",
        object.api_version,
        object.kind,
        object.namespace.as_deref().unwrap_or("_"),
        object.name
    )
}
