//! Handling one validated revision: skip it if a later one exists, fetch its bundle, and apply
//! it to each cluster of the environment that does not already run it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use configsync_core::cluster::{
    ApplyError, ClusterAppliers, ClusterTarget, Clusters, mark, object_ref, order,
};
use configsync_core::event::{
    ApplyFailed, ApplyStarted, ApplySucceeded, EventData, EventPayload, ObjectAction, ObjectResult,
    Outgoing, Received, ValidationPassed,
};
use configsync_core::log::bundles::BundleStore;
use configsync_core::log::{EventLog, HandlerError, Publisher, last_event};
use configsync_core::subject;
use serde_json::Value;

pub struct Applier {
    log: EventLog,
    publisher: Publisher,
    bundles: BundleStore,
    clusters: Clusters,
    appliers: ClusterAppliers,
}

/// How applying to one cluster ended.
enum Outcome {
    Applied,
    /// The cluster could not be reached: the whole event is retried later.
    Unreachable,
}

impl Applier {
    pub fn new(
        log: EventLog,
        bundles: BundleStore,
        clusters: Clusters,
        allow_exec_auth: bool,
    ) -> Self {
        let publisher = log.publisher(Duration::from_secs(60));
        Self {
            log,
            publisher,
            bundles,
            clusters,
            appliers: ClusterAppliers::new(allow_exec_auth),
        }
    }

    pub async fn handle(self: Arc<Self>, event: Received) -> Result<(), HandlerError> {
        match &event.data {
            EventData::ValidationPassed(passed) => self.apply_revision(passed, &event).await,
            // Approvals and rollbacks arrive with their own issues; they change nothing yet.
            other => {
                tracing::debug!(r#type = other.type_name(), "event not acted on yet");
                Ok(())
            }
        }
    }

    async fn apply_revision(
        &self,
        passed: &ValidationPassed,
        event: &Received,
    ) -> Result<(), HandlerError> {
        let env = passed.environment.as_str();
        if self.superseded(passed, event).await? {
            tracing::info!(environment = env, revision = %passed.revision, "a later revision was validated; skipping this one");
            return Ok(());
        }
        let targets = self.clusters.of(env);
        if targets.is_empty() {
            tracing::warn!(environment = env, revision = %passed.revision, "no clusters configured for this environment; nothing applied");
            return Ok(());
        }
        let bundle = self.bundles.get_bundle(&passed.bundle_digest).await?;

        let mut waiting = Vec::new();
        for target in targets {
            if self.already_applied(target, passed).await? {
                continue;
            }
            if let Outcome::Unreachable = self
                .apply_to(target, passed, &bundle.objects, event)
                .await?
            {
                waiting.push(target.cluster.to_string());
            }
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(HandlerError::Transient(format!(
                "clusters unreachable: {}; the change waits for them",
                waiting.join(", ")
            )))
        }
    }

    /// Whether a later validation of the same environment exists: latest wins, so an older
    /// revision retried after a newer one never overwrites it.
    async fn superseded(
        &self,
        passed: &ValidationPassed,
        event: &Received,
    ) -> Result<bool, HandlerError> {
        let subject = subject::for_event(ValidationPassed::TYPE, Some(&passed.environment), None)
            .map_err(|e| HandlerError::Terminal(e.to_string()))?;
        let last = last_event(&self.log.js, self.log.stream(), &subject)
            .await
            .map_err(|e| HandlerError::Transient(e.to_string()))?;
        Ok(last.is_some_and(|l| l.stream_sequence > event.stream_sequence))
    }

    /// Whether this target's latest successful apply is already this bundle (a redelivery).
    async fn already_applied(
        &self,
        target: &ClusterTarget,
        passed: &ValidationPassed,
    ) -> Result<bool, HandlerError> {
        let subject = subject::for_event(
            ApplySucceeded::TYPE,
            Some(target.environment.as_str()),
            Some(target.cluster.as_str()),
        )
        .map_err(|e| HandlerError::Terminal(e.to_string()))?;
        let last = last_event(&self.log.js, self.log.stream(), &subject)
            .await
            .map_err(|e| HandlerError::Transient(e.to_string()))?;
        Ok(
            matches!(last.map(|l| l.data), Some(EventData::ApplySucceeded(s)) if s.revision == passed.revision && s.bundle_digest == passed.bundle_digest),
        )
    }

    async fn apply_to(
        &self,
        target: &ClusterTarget,
        passed: &ValidationPassed,
        objects: &[Value],
        cause: &Received,
    ) -> Result<Outcome, HandlerError> {
        let (env, cluster) = (target.environment.as_str(), target.cluster.as_str());
        let started = ApplyStarted {
            environment: env.into(),
            cluster: cluster.into(),
            revision: passed.revision.clone(),
            bundle_digest: passed.bundle_digest.clone(),
            objects: objects.len() as u32,
        };
        self.emit(&started, cause, cluster).await?;
        let clock = Instant::now();
        let applier = match self.appliers.get(target).await.map_err(|e| e.to_string()) {
            Ok(a) => a,
            Err(reason) => {
                // A broken kubeconfig will not fix itself: report it, do not retry forever.
                let failed = ApplyFailed {
                    environment: env.into(),
                    cluster: cluster.into(),
                    revision: passed.revision.clone(),
                    bundle_digest: passed.bundle_digest.clone(),
                    reason,
                    transient: false,
                    results: vec![],
                };
                tracing::error!(environment = env, cluster, reason = %failed.reason, "cannot build a client for the cluster");
                self.emit(&failed, cause, cluster).await?;
                return Ok(Outcome::Applied);
            }
        };
        let mut results = Vec::new();
        for object in order(objects) {
            let mut object = object.clone();
            mark(&mut object, env, &passed.revision);
            let Some(reference) = object_ref(&object) else {
                continue;
            };
            match applier.apply(&object).await {
                Ok(action) => results.push(ObjectResult {
                    object: reference,
                    action,
                    message: None,
                }),
                Err(ApplyError::Unreachable(reason)) => {
                    let failed = ApplyFailed {
                        environment: env.into(),
                        cluster: cluster.into(),
                        revision: passed.revision.clone(),
                        bundle_digest: passed.bundle_digest.clone(),
                        reason: format!("cluster unreachable, will retry: {reason}"),
                        transient: true,
                        results,
                    };
                    tracing::warn!(environment = env, cluster, %reason, "cluster unreachable; the change waits");
                    self.emit(&failed, cause, cluster).await?;
                    return Ok(Outcome::Unreachable);
                }
                Err(e) => {
                    tracing::warn!(environment = env, cluster, kind = %reference.kind, name = %reference.name, error = %e, "object refused");
                    results.push(ObjectResult {
                        object: reference,
                        action: ObjectAction::Failed,
                        message: Some(e.to_string()),
                    })
                }
            }
        }
        let failures: Vec<String> = results
            .iter()
            .filter(|r| r.action == ObjectAction::Failed)
            .map(|r| {
                format!(
                    "{} {}: {}",
                    r.object.kind,
                    r.object.name,
                    r.message.as_deref().unwrap_or_default()
                )
            })
            .collect();
        if failures.is_empty() {
            let ok = ApplySucceeded {
                environment: env.into(),
                cluster: cluster.into(),
                revision: passed.revision.clone(),
                bundle_digest: passed.bundle_digest.clone(),
                results,
                duration_ms: clock.elapsed().as_millis() as u64,
            };
            tracing::info!(environment = env, cluster, revision = %passed.revision, objects = ok.results.len(), "applied");
            self.emit(&ok, cause, cluster).await?;
        } else {
            let failed = ApplyFailed {
                environment: env.into(),
                cluster: cluster.into(),
                revision: passed.revision.clone(),
                bundle_digest: passed.bundle_digest.clone(),
                reason: format!(
                    "{} of {} objects refused: {}",
                    failures.len(),
                    results.len(),
                    failures.join("; ")
                ),
                transient: false,
                results,
            };
            self.emit(&failed, cause, cluster).await?;
        }
        Ok(Outcome::Applied)
    }

    async fn emit<P: EventPayload>(
        &self,
        payload: &P,
        cause: &Received,
        cluster: &str,
    ) -> Result<(), HandlerError> {
        let event = Outgoing::builder(payload)
            .caused_by(cause)
            .cause(cluster)
            .subject(format!(
                "{}/{}",
                payload.routing().environment.unwrap_or_default(),
                cluster
            ))
            .build(&self.log.source)?;
        self.publisher
            .publish(&event)
            .await
            .map(|_| ())
            .map_err(HandlerError::from)
    }
}
