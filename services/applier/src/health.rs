//! Health after an apply: each object of the revision is assessed (`cluster::health`) until all
//! are ready (`health.ready`), one has failed, or the timeout passes (`health.degraded`, each
//! unhealthy object and why). A watch runs beside the consumer, so waiting for one target's
//! health holds up nothing else; a newer rollout of the target cancels it, and a restart
//! resumes it from the log (a deployed revision with no health verdict). On `health.degraded`,
//! environments with automatic rollback go back to their last healthy revision, once: a
//! rollback target that degrades too is reported, never rolled back again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use configsync_core::cluster::health::{Health, assess};
use configsync_core::cluster::{ClusterApplier, ClusterTarget, Parts};
use configsync_core::event::{
    EnvironmentPinned, HealthDegraded, HealthReady, ObjectRef, Received, RolloutWaiting,
    UnhealthyObject,
};
use configsync_core::log::replay::Until;
use configsync_core::names::Target;
use tokio_util::sync::CancellationToken;

use crate::handler::{Applier, Cause, SYSTEM_ACTOR};
use crate::rollout::RolloutKind;

/// How often objects are assessed while a watch runs.
const POLL: Duration = Duration::from_millis(500);

/// The running health watches, one per target at most.
pub(crate) struct HealthWatches {
    shutdown: CancellationToken,
    running: Mutex<HashMap<Target, (String, CancellationToken)>>,
    /// Set once the applier is shared; watches hold it weakly so they never keep it alive.
    applier: Mutex<Option<Weak<Applier>>>,
}

impl HealthWatches {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            running: Mutex::new(HashMap::new()),
            applier: Mutex::new(None),
        }
    }

    /// Lets watches act through the applier (emit, roll back).
    pub fn bind(&self, applier: &Arc<Applier>) {
        *self.applier.lock().expect("not poisoned") = Some(Arc::downgrade(applier));
    }

    /// Stops the target's watch: a newer rollout makes its verdict moot.
    pub fn cancel(&self, target: &Target) {
        if let Some((_, token)) = self.running.lock().expect("not poisoned").remove(target) {
            token.cancel();
        }
    }

    /// Starts a watch unless one runs for this revision already (catching up at start).
    pub fn watch_if_idle(
        &self,
        target: &ClusterTarget,
        revision: &str,
        bundle_digest: &str,
        cause: Cause<'_>,
    ) {
        let busy = self
            .running
            .lock()
            .expect("not poisoned")
            .get(&target.target())
            .is_some_and(|(r, _)| r == revision);
        if !busy {
            self.watch(target, revision, bundle_digest, cause, RolloutKind::Forward);
        }
    }

    /// Watches the health of `revision` on `target` in the background.
    pub fn watch(
        &self,
        target: &ClusterTarget,
        revision: &str,
        bundle_digest: &str,
        cause: Cause<'_>,
        kind: RolloutKind,
    ) {
        let Some(applier_ref) = self
            .applier
            .lock()
            .expect("not poisoned")
            .as_ref()
            .and_then(Weak::upgrade)
        else {
            tracing::warn!("health watches are not bound; health not assessed");
            return;
        };
        let token = self.shutdown.child_token();
        let key = target.target();
        if let Some((_, old)) = self
            .running
            .lock()
            .expect("not poisoned")
            .insert(key.clone(), (revision.to_string(), token.clone()))
        {
            old.cancel();
        }
        let job = Watch {
            target: target.clone(),
            revision: revision.to_string(),
            bundle_digest: bundle_digest.to_string(),
            cause: cause.event.cloned(),
            kind,
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                result = job.run(&applier_ref) => match result {
                    // A verdict may let the next wave or environment go.
                    Ok(()) => applier_ref.retrigger(&key.environment),
                    Err(e) => {
                        tracing::warn!(target = %key, error = %e, "health watch failed; it resumes at the next start or event");
                    }
                }
            }
            let mut running = applier_ref.health.running.lock().expect("not poisoned");
            if running
                .get(&key)
                .is_some_and(|(_, t)| t.is_cancelled() || t == &token)
            {
                running.remove(&key);
            }
        });
    }
}

/// The health of each object of `pending`: one list per kind where several objects share it,
/// single reads otherwise.
async fn read_live(cluster: &ClusterApplier, pending: &[ObjectRef]) -> Vec<Health> {
    let mut per_kind: HashMap<(&str, &str), usize> = HashMap::new();
    for r in pending {
        *per_kind.entry((&r.api_version, &r.kind)).or_default() += 1;
    }
    let mut listed: HashMap<(String, Option<String>, String), Health> = HashMap::new();
    for ((api_version, kind), count) in &per_kind {
        if *count < LIST_FROM {
            continue;
        }
        // Kept as verdicts, not objects: a page of objects at a time is all that is held.
        let _ = cluster
            .for_each_managed(api_version, kind, Parts::Status, |value| {
                let key = (
                    kind.to_string(),
                    value["metadata"]["namespace"].as_str().map(str::to_string),
                    value["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
                listed.insert(key, assess(&value));
            })
            .await;
    }
    let mut health = Vec::with_capacity(pending.len());
    for reference in pending {
        let listed_kind =
            per_kind[&(reference.api_version.as_str(), reference.kind.as_str())] >= LIST_FROM;
        let verdict = if listed_kind {
            match cluster.api_for(reference).await {
                Ok((_, namespace)) => listed
                    .get(&(reference.kind.clone(), namespace, reference.name.clone()))
                    .cloned()
                    .unwrap_or_else(|| Health::Failed("the object is gone".into())),
                Err(e) => Health::InProgress(format!("cannot read it: {e}")),
            }
        } else {
            match cluster.get(reference).await {
                Ok(Some(live)) => assess(&serde_json::to_value(live).unwrap_or_default()),
                Ok(None) => Health::Failed("the object is gone".into()),
                Err(e) => Health::InProgress(format!("cannot read it: {e}")),
            }
        };
        health.push(verdict);
    }
    health
}

/// From how many pending objects of one kind a list is cheaper than single reads.
const LIST_FROM: usize = 8;

/// Reads `pending` until every object is ready, or until one has failed or `deadline` passed:
/// then the objects that are not ready, and why. Ready objects are not read again.
pub(crate) async fn wait_ready(
    cluster: &ClusterApplier,
    mut pending: Vec<ObjectRef>,
    deadline: Instant,
) -> Result<(), Vec<UnhealthyObject>> {
    loop {
        let live = read_live(cluster, &pending).await;
        let mut unhealthy = Vec::new();
        let mut failed = false;
        for (reference, health) in pending.iter().zip(live) {
            failed |= matches!(health, Health::Failed(_));
            if let Some(reason) = health.reason() {
                unhealthy.push(UnhealthyObject {
                    object: reference.clone(),
                    reason: reason.to_string(),
                });
            }
        }
        if unhealthy.is_empty() {
            return Ok(());
        }
        if failed || Instant::now() >= deadline {
            return Err(unhealthy);
        }
        pending = unhealthy.into_iter().map(|u| u.object).collect();
        tokio::time::sleep(POLL).await;
    }
}

struct Watch {
    target: ClusterTarget,
    revision: String,
    bundle_digest: String,
    cause: Option<Received>,
    kind: RolloutKind,
}

impl Watch {
    async fn run(self, applier: &Applier) -> Result<(), configsync_core::log::HandlerError> {
        let cause = Cause {
            event: self.cause.as_ref(),
        };
        let summary = applier.summaries.get(&self.bundle_digest).await?;
        let total = summary.objects.len();
        // Objects with no status to wait for are ready once applied: only the others are read.
        let pending: Vec<ObjectRef> = summary
            .objects
            .iter()
            .filter(|d| d.needs_status)
            .map(|d| d.reference.clone())
            .collect();
        drop(summary);
        let cluster = applier
            .appliers
            .get(&self.target)
            .await
            .map_err(|e| configsync_core::log::HandlerError::Terminal(e.to_string()))?;
        let deadline = Instant::now() + applier.settings.health_timeout;
        let (env, name) = (
            self.target.environment.to_string(),
            self.target.cluster.to_string(),
        );
        let Err(unhealthy) = wait_ready(&cluster, pending, deadline).await else {
            let ready = HealthReady {
                environment: env.clone(),
                cluster: name.clone(),
                revision: self.revision.clone(),
                objects: total as u32,
            };
            tracing::info!(environment = %env, cluster = %name, revision = %self.revision, "healthy");
            return applier.emit(&ready, cause, &[&self.revision]).await;
        };
        let total = unhealthy.len();
        let mut listed = unhealthy;
        listed.truncate(100);
        let degraded = HealthDegraded {
            environment: env.clone(),
            cluster: name.clone(),
            revision: self.revision.clone(),
            unhealthy: listed,
        };
        tracing::warn!(environment = %env, cluster = %name, revision = %self.revision, unhealthy = total, "degraded");
        applier.emit(&degraded, cause, &[&self.revision]).await?;
        if applier.auto_rollback(&self.target.environment) {
            self.roll_back(applier, cause, &degraded).await?;
        }
        Ok(())
    }

    /// Pins the environment to the target's last healthy revision, unless this revision was
    /// itself a rollback (then it stops and says so: never a loop).
    async fn roll_back(
        &self,
        applier: &Applier,
        cause: Cause<'_>,
        degraded: &HealthDegraded,
    ) -> Result<(), configsync_core::log::HandlerError> {
        let environment = &self.target.environment;
        let state = applier.state(environment, Until::End).await?;
        let last_healthy = state
            .target(&self.target.target())
            .and_then(|t| t.rollback_candidate().cloned())
            .filter(|h| h.revision != self.revision);
        let stop = |reason: String| RolloutWaiting {
            environment: environment.to_string(),
            cluster: Some(self.target.cluster.to_string()),
            revision: self.revision.clone(),
            reason,
        };
        if self.kind == RolloutKind::Rollback {
            let waiting = stop(format!(
                "automatic rollback stopped: {} was itself a rollback and is unhealthy too; a person must act",
                self.revision
            ));
            return applier.emit(&waiting, cause, &["rollback-stopped"]).await;
        }
        let Some(to) = last_healthy else {
            let waiting =
                stop("automatic rollback impossible: no earlier revision was healthy here".into());
            return applier
                .emit(&waiting, cause, &["rollback-impossible"])
                .await;
        };
        let reasons: Vec<String> = degraded
            .unhealthy
            .iter()
            .take(3)
            .map(|u| format!("{} {}: {}", u.object.kind, u.object.name, u.reason))
            .collect();
        // The applier pins by itself (an event only it may publish), rather than asking with
        // a rollback.requested that anyone with operator rights could forge unsigned.
        let newest_known = state
            .environment(environment.as_str())
            .and_then(|e| e.validated.values().map(|v| v.commit_sequence).max())
            .unwrap_or_default();
        let pinned = EnvironmentPinned {
            environment: environment.to_string(),
            revision: to.revision.clone(),
            commit_sequence: newest_known,
            reason: format!(
                "automatic rollback: {} is degraded on {} ({})",
                self.revision,
                self.target.cluster,
                reasons.join("; ")
            ),
            actor: SYSTEM_ACTOR.into(),
        };
        tracing::warn!(environment = %environment, from = %self.revision, to = %to.revision, "automatic rollback");
        applier
            .emit_as(&pinned, cause, &["auto-rollback"], Some(SYSTEM_ACTOR))
            .await
        // The watch's end retriggers the environment's reconcile, which rolls back to the pin.
    }
}
