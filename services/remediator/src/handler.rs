//! Handling one drift: under `auto`, re-apply the target's desired object (the one of its
//! latest successful apply) with forced server-side apply and record the outcome; under
//! `alert` or `off`, the drift event is the whole record. Under `auto`, an object another
//! controller keeps changing back is left alone after a `remediation.conflict` (`fights`).

use std::sync::Arc;
use std::time::Duration;

use configsync_core::cloudevents::AttributesReader;
use configsync_core::cluster::{ApplyError, ClusterAppliers, Clusters, DesiredSource, object_ref};
use configsync_core::event::{
    DriftDetected, DriftKind, EventData, EventPayload, ObjectRef, Outgoing, Received,
    RemediationConflict, RemediationFailed, RemediationPolicy, RemediationStarted,
    RemediationSucceeded,
};
use configsync_core::log::replay::{Start, Until, replay_filtered};
use configsync_core::log::{EventLog, HandlerError, Publisher};
use configsync_core::names::Target;
use configsync_core::subject;
use serde_json::Value;

use crate::fights::{FightRule, Repairs, Verdict};
use crate::policy::Policies;

pub struct Remediator {
    log: EventLog,
    publisher: Publisher,
    /// The targets' desired states (the bundle store is opened on first use: only `auto`
    /// needs it, and the bucket may be created after start).
    desired: DesiredSource,
    clusters: Clusters,
    policies: Policies,
    appliers: ClusterAppliers,
    fights: FightRule,
}

/// The desired object to re-apply, and the revision it comes from.
struct Desired {
    revision: String,
    object: Value,
}

impl Remediator {
    pub fn new(
        log: EventLog,
        clusters: Clusters,
        policies: Policies,
        allow_exec_auth: bool,
        fights: FightRule,
    ) -> Self {
        let publisher = log.publisher(Duration::from_secs(60));
        Self {
            desired: DesiredSource::new(log.clone()),
            log,
            publisher,
            clusters,
            policies,
            appliers: ClusterAppliers::new(allow_exec_auth),
            fights,
        }
    }

    pub async fn handle(self: Arc<Self>, event: Received) -> Result<(), HandlerError> {
        let EventData::DriftDetected(drift) = &event.data else {
            tracing::debug!(r#type = event.type_name(), "event not acted on");
            return Ok(());
        };
        let (env, cluster, object) = (
            drift.environment.as_str(),
            drift.cluster.as_str(),
            &drift.object,
        );
        match self.policies.of(env) {
            RemediationPolicy::Off => {
                tracing::debug!(environment = env, cluster, kind = %object.kind, name = %object.name, "policy off: drift ignored");
                Ok(())
            }
            RemediationPolicy::Alert => {
                // The drift event is the record; nothing else is written.
                tracing::info!(environment = env, cluster, kind = %object.kind, name = %object.name, changed_by = drift.changed_by.as_deref().unwrap_or("unknown"), "policy alert: drift reported, not repaired");
                Ok(())
            }
            // Repaired unless another controller keeps undoing the repairs (`fights`).
            RemediationPolicy::Auto => self.remediate(drift, &event).await,
        }
    }

    async fn remediate(&self, drift: &DriftDetected, event: &Received) -> Result<(), HandlerError> {
        let (env, cluster, object) = (
            drift.environment.as_str(),
            drift.cluster.as_str(),
            &drift.object,
        );
        let Some(target) = self
            .clusters
            .of(env)
            .iter()
            .find(|t| t.cluster.as_str() == cluster)
        else {
            tracing::warn!(
                environment = env,
                cluster,
                "drift on a cluster not configured here; not repaired"
            );
            return Ok(());
        };
        let Some(desired) = self.desired(drift).await? else {
            return Ok(());
        };
        match self.repairs(&target.target()).await?.verdict(
            &desired.revision,
            object,
            chrono::Utc::now(),
            self.fights,
        ) {
            Verdict::Repair => {}
            Verdict::AlreadyInConflict => {
                tracing::info!(environment = env, cluster, kind = %object.kind, name = %object.name, "in conflict with another controller: not repaired");
                return Ok(());
            }
            Verdict::Fight { repairs } => {
                let other = drift.changed_by.clone().unwrap_or_else(|| "unknown".into());
                tracing::warn!(environment = env, cluster, kind = %object.kind, name = %object.name, other_manager = %other, repairs, "another controller keeps undoing repairs: stopping");
                let conflict = RemediationConflict {
                    environment: env.into(),
                    cluster: cluster.into(),
                    revision: desired.revision.clone(),
                    object: object.clone(),
                    other_manager: other,
                    occurrences: repairs,
                    window_seconds: self.fights.window.as_secs(),
                };
                return self.emit(&conflict, event).await;
            }
        }
        let started = RemediationStarted {
            environment: env.into(),
            cluster: cluster.into(),
            revision: desired.revision.clone(),
            object: object.clone(),
            policy: RemediationPolicy::Auto,
            drift_event: event.id().to_string(),
        };
        self.emit(&started, event).await?;
        let failed = |reason: String, transient: bool| RemediationFailed {
            environment: env.into(),
            cluster: cluster.into(),
            revision: desired.revision.clone(),
            object: object.clone(),
            drift_event: event.id().to_string(),
            reason,
            transient,
        };
        let applier = match self.appliers.get(target).await.map_err(|e| e.to_string()) {
            Ok(a) => a,
            Err(reason) => {
                // A broken kubeconfig will not fix itself: report it, do not retry forever.
                tracing::error!(environment = env, cluster, %reason, "cannot build a client for the cluster");
                return self.emit(&failed(reason, false), event).await;
            }
        };
        // Fields an ignore rule covers stay as they are: left out of what is applied, so the
        // repair neither resets them nor takes them back from their owner.
        let ignored: Vec<String> = drift.ignored.iter().map(|f| f.path.clone()).collect();
        let mut applied = configsync_core::ignore::without_fields(desired.object.clone(), &ignored);
        // The fence: the repair is written only over the version the drift was seen on (the
        // API server's resourceVersion precondition, atomic with the write). Between reading
        // the latest apply and writing, the applier may have written a newer revision, or
        // someone changed the object again; then the write is refused and nothing stale
        // lands, and a drift that remains is reported again at its new version.
        let fence = drift
            .resource_version
            .as_deref()
            .filter(|_| drift.kind == DriftKind::Modified);
        if let (Some(rv), Some(metadata)) = (fence, applied.get_mut("metadata")) {
            metadata["resourceVersion"] = Value::String(rv.to_string());
        }
        match applier.apply(&applied).await {
            Ok(action) => {
                let succeeded = RemediationSucceeded {
                    environment: env.into(),
                    cluster: cluster.into(),
                    revision: desired.revision.clone(),
                    object: object.clone(),
                    drift_event: event.id().to_string(),
                };
                tracing::info!(environment = env, cluster, kind = %object.kind, name = %object.name, revision = %desired.revision, ?action, "drift repaired");
                self.emit(&succeeded, event).await
            }
            Err(e @ ApplyError::Unreachable(_)) => {
                tracing::warn!(environment = env, cluster, kind = %object.kind, name = %object.name, error = %e, "cluster unreachable; the repair is retried");
                self.emit(&failed(e.to_string(), true), event).await?;
                Err(HandlerError::Transient(e.to_string()))
            }
            Err(ApplyError::Refused { code: 409, .. }) if fence.is_some() => {
                let reason = format!(
                    "the object changed since the drift was seen at resourceVersion {}; not repaired (a drift that remains is reported again)",
                    fence.unwrap_or_default()
                );
                tracing::info!(environment = env, cluster, kind = %object.kind, name = %object.name, %reason, "stale repair fenced");
                self.emit(&failed(reason, false), event).await
            }
            Err(e) => {
                tracing::warn!(environment = env, cluster, kind = %object.kind, name = %object.name, error = %e, "repair refused");
                self.emit(&failed(e.to_string(), false), event).await
            }
        }
    }

    /// The repairs and conflicts of the target, folded from its remediation events.
    async fn repairs(&self, target: &Target) -> Result<Repairs, HandlerError> {
        let mut repairs = Repairs::default();
        replay_filtered(
            &self.log.js,
            self.log.stream(),
            &subject::target_domain_filter(target, "remediation"),
            Start::Beginning,
            Until::End,
            &mut repairs,
        )
        .await
        .map_err(|e| HandlerError::Transient(format!("reading the log: {e}")))?;
        Ok(repairs)
    }

    /// The object as the target's latest successful apply declared it, marked as the applier
    /// marks it; `None` when the drift is superseded (a later revision was applied since) or the
    /// object is no longer desired.
    async fn desired(&self, drift: &DriftDetected) -> Result<Option<Desired>, HandlerError> {
        let (env, cluster, object) = (
            drift.environment.as_str(),
            drift.cluster.as_str(),
            &drift.object,
        );
        let Some(applied) = self.desired.latest(env, cluster).await? else {
            tracing::warn!(
                environment = env,
                cluster,
                "no successful apply of the target in the log; nothing to repair towards"
            );
            return Ok(None);
        };
        if applied.revision != drift.revision {
            tracing::info!(environment = env, cluster, drift_revision = %drift.revision, latest = %applied.revision, "drift superseded by a later apply; skipped");
            return Ok(None);
        }
        // The objects are marked already, as the applier marked them.
        let Some(found) = applied
            .objects
            .into_iter()
            .find(|o| object_ref(o).is_some_and(|r| same_object(&r, object)))
        else {
            tracing::info!(environment = env, cluster, kind = %object.kind, name = %object.name, "object no longer desired; not repaired");
            return Ok(None);
        };
        Ok(Some(Desired {
            revision: applied.revision,
            object: found,
        }))
    }

    async fn emit<P: EventPayload>(
        &self,
        payload: &P,
        cause: &Received,
    ) -> Result<(), HandlerError> {
        let routing = payload.routing();
        let event = Outgoing::builder(payload)
            .caused_by(cause)
            .subject(cause.event.subject().unwrap_or_default().to_string())
            .build(&self.log.source)?;
        tracing::debug!(
            r#type = P::TYPE,
            environment = routing.environment.unwrap_or_default(),
            "emitting"
        );
        self.publisher
            .publish(&event)
            .await
            .map(|_| ())
            .map_err(HandlerError::from)
    }
}

/// Whether a bundle object (namespace as written) is the drifted object (namespace as live):
/// a namespaced object that names no namespace was applied to `default`.
fn same_object(manifest: &ObjectRef, live: &ObjectRef) -> bool {
    manifest.api_version == live.api_version
        && manifest.kind == live.kind
        && manifest.name == live.name
        && (manifest.namespace == live.namespace
            || (manifest.namespace.is_none() && live.namespace.as_deref() == Some("default")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ns: Option<&str>) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: ns.map(str::to_string),
            name: "a".into(),
        }
    }

    #[test]
    fn a_manifest_without_namespace_is_the_object_in_default() {
        assert!(same_object(&r(None), &r(Some("default"))));
        assert!(same_object(&r(Some("shop")), &r(Some("shop"))));
        assert!(!same_object(&r(None), &r(Some("shop"))));
        assert!(same_object(&r(None), &r(None)));
    }
}
