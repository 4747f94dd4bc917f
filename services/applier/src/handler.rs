//! The applier's decisions: which revision each target of an environment should run (the
//! newest validated one by branch history, or the pin after a rollback), rollbacks and pins,
//! approved prunes. The state they are made from is the shared fold over the environment's
//! events, replayed when an event arrives, so replicas and restarts decide alike.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use configsync_core::access::{self, AccessPolicy, Claim, Refusal, Verdict};
use configsync_core::cluster::{ClusterAppliers, ClusterTarget, Clusters};
use configsync_core::event::{
    ActionRefused, ApprovalRequired, EnvironmentPinned, EnvironmentUnpinned, EventData,
    EventPayload, Outgoing, PruneApproved, Received, RollbackRequested, RolloutWaiting,
    UnpinRequested, ValidationPassed,
};
use configsync_core::fold::{EnvironmentState, LogState, recorded};
use configsync_core::log::bundles::BundleStore;

use configsync_core::log::replay::{Start, Until, replay_filtered};
use configsync_core::log::{EventLog, Fold, HandlerError, Publisher};
use configsync_core::names::{Name, Target};
use configsync_core::subject;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::RolloutArgs;
use crate::declared::Summaries;
use crate::health::HealthWatches;
use crate::rollout::{Rollout, RolloutKind};

/// The actor of what ConfigSync decides by itself (automatic rollbacks, pins lifted by a new
/// commit).
pub const SYSTEM_ACTOR: &str = "configsync";

pub struct Applier {
    pub(crate) log: EventLog,
    publisher: Publisher,
    pub(crate) bundles: BundleStore,
    /// What was read of the bundles used last (digests and references, not objects).
    pub(crate) summaries: Summaries,
    clusters: Clusters,
    pub(crate) appliers: ClusterAppliers,
    pub(crate) settings: RolloutArgs,
    /// Who may do what; `None`: no approvals, people's actions accepted unsigned.
    policy: Option<AccessPolicy>,
    /// One environment's events are handled one at a time; different environments at once.
    environments: Mutex<HashMap<Name, Arc<Lane>>>,
    pub(crate) health: HealthWatches,
}

/// The event a decision answers: the cause of what it emits (for deterministic ids and the
/// correlation id), or none when the applier acts on its own at start.
#[derive(Clone, Copy)]
pub(crate) struct Cause<'a> {
    pub event: Option<&'a Received>,
}

/// One environment's lane: its events are handled one at a time, and a rollout waiting
/// there for apps' health (up to the health timeout) gives way to a newer decision — a new
/// revision, an approval, a rollback — instead of holding it for minutes.
#[derive(Default)]
struct Lane {
    serial: Mutex<()>,
    waiting: std::sync::Mutex<CancellationToken>,
}

impl Lane {
    /// A fresh signal for the handler that now holds the lane.
    fn arm(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = token.clone();
        token
    }

    fn current(&self) -> CancellationToken {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the handler holding the lane to stop waiting.
    fn give_way(&self) {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel();
    }
}

impl Applier {
    pub fn new(
        log: EventLog,
        bundles: BundleStore,
        clusters: Clusters,
        allow_exec_auth: bool,
        settings: RolloutArgs,
        policy: Option<AccessPolicy>,
        shutdown: CancellationToken,
    ) -> Self {
        let publisher = log.publisher(Duration::from_secs(60));
        let appliers =
            ClusterAppliers::new(allow_exec_auth).with_request_timeout(settings.request_timeout);
        Self {
            log,
            publisher,
            summaries: Summaries::new(bundles.clone()),
            bundles,
            clusters,
            appliers,
            settings,
            policy,
            environments: Mutex::new(HashMap::new()),
            health: HealthWatches::new(shutdown),
        }
    }

    pub async fn handle(self: Arc<Self>, event: Received) -> Result<(), HandlerError> {
        let Some(environment) = event.environment().and_then(|e| Name::new(e).ok()) else {
            return Err(HandlerError::Terminal(
                "event without a valid environment".into(),
            ));
        };
        let lane = self.lane(&environment).await;
        let decides = matches!(
            event.data,
            EventData::ValidationPassed(_)
                | EventData::ApprovalGranted(_)
                | EventData::ApprovalRejected(_)
                | EventData::RollbackRequested(_)
                | EventData::UnpinRequested(_)
        );
        if decides {
            lane.give_way();
        }
        let _serial = lane.serial.lock().await;
        let gave_way = lane.arm();
        let result = self.act(&environment, &event).await;
        self.resume_if(gave_way, &environment);
        result
    }

    async fn act(&self, environment: &Name, event: &Received) -> Result<(), HandlerError> {
        let cause = Cause { event: Some(event) };
        match &event.data {
            EventData::ValidationPassed(_) => self.reconcile(environment, cause, Until::End).await,
            EventData::ApprovalGranted(_) | EventData::ApprovalRejected(_) => {
                self.decision(environment, event).await?;
                self.reconcile(environment, cause, Until::End).await
            }
            EventData::RollbackRequested(r) => {
                let Some(actor) = self.authorize(event).await? else {
                    return Ok(());
                };
                self.rollback(environment, r, &actor, event).await
            }
            EventData::UnpinRequested(u) => {
                let Some(actor) = self.authorize(event).await? else {
                    return Ok(());
                };
                self.unpin(environment, u, &actor, event).await
            }
            EventData::PruneApproved(p) => {
                let Some(actor) = self.authorize(event).await? else {
                    return Ok(());
                };
                self.prune_approved(environment, p, &actor, event).await
            }
            other => {
                tracing::debug!(r#type = other.type_name(), "event not acted on");
                Ok(())
            }
        }
    }

    /// At start: roll every configured environment to its wanted revision, and resume health
    /// checks that a restart cut short, each environment in its own task. Failures are
    /// logged; the next event retries.
    pub fn catch_up(self: Arc<Self>) {
        let mut environments: Vec<Name> =
            self.clusters.all().map(|t| t.environment.clone()).collect();
        environments.dedup();
        for environment in environments {
            self.spawn_reconcile(environment);
        }
    }

    /// Reconciles `environment` in its own task, after whatever holds its lock now. Failures
    /// are logged; the next event of the environment retries.
    fn spawn_reconcile(self: &Arc<Self>, environment: Name) {
        let applier = self.clone();
        tokio::spawn(async move {
            let lane = applier.lane(&environment).await;
            let _serial = lane.serial.lock().await;
            let gave_way = lane.arm();
            if let Err(e) = applier
                .reconcile(&environment, Cause { event: None }, Until::End)
                .await
            {
                tracing::warn!(environment = %environment, error = %e, "reconciling failed; the next event retries");
            }
            applier.resume_if(gave_way, &environment);
        });
    }

    /// A rollout that gave way to a newer decision is resumed by a reconcile after it: the
    /// newer event may not reconcile itself (a refused signature, a prune approval).
    fn resume_if(self: &Arc<Self>, gave_way: CancellationToken, environment: &Name) {
        if gave_way.is_cancelled() {
            self.spawn_reconcile(environment.clone());
        }
    }

    async fn lane(&self, environment: &Name) -> Arc<Lane> {
        self.environments
            .lock()
            .await
            .entry(environment.clone())
            .or_default()
            .clone()
    }

    /// What a rollout of `environment` waiting for apps' health listens to: cancelled when a
    /// newer decision for the environment arrives.
    pub(crate) async fn give_way_signal(&self, environment: &str) -> CancellationToken {
        match Name::new(environment) {
            Ok(name) => self.lane(&name).await.current(),
            Err(_) => CancellationToken::new(),
        }
    }

    /// The state of the environment and its targets, folded from its events.
    pub(crate) async fn state(
        &self,
        environment: &Name,
        until: Until,
    ) -> Result<LogState, HandlerError> {
        let mut state = LogState::default();
        replay_filtered(
            &self.log.js,
            self.log.stream(),
            &subject::environment_filter(environment),
            Start::Beginning,
            until,
            &mut state,
        )
        .await
        .map_err(|e| HandlerError::Transient(format!("reading the log: {e}")))?;
        Ok(state)
    }

    /// Brings every target of the environment to its wanted revision.
    async fn reconcile(
        &self,
        environment: &Name,
        cause: Cause<'_>,
        until: Until,
    ) -> Result<(), HandlerError> {
        let state = self.state(environment, until).await?;
        let Some(env) = state.environment(environment.as_str()).cloned() else {
            return Ok(());
        };
        let env = self.lift_pin_if_newer(environment, env, cause).await?;
        let Some((revision, wanted)) = env.wanted() else {
            return Ok(());
        };
        // Acting on its own (at start, after a health verdict), the cause is the event that
        // made the revision wanted, as if it had just arrived: its validation, or its pin (a
        // rollback to a revision applied before must not reuse that first apply's ids, which
        // the stream would drop as duplicates). The same ids as a replica doing the same (so
        // it is deduplicated) and the same correlation id as the rest of the change.
        let decision;
        let cause = match cause.event {
            Some(_) => cause,
            None => {
                decision = self
                    .decided_by(environment, revision, env.pin.is_some())
                    .await?;
                Cause {
                    event: decision.as_ref(),
                }
            }
        };
        let targets = self.clusters.of(environment.as_str());
        if targets.is_empty() {
            let waiting = RolloutWaiting {
                environment: environment.to_string(),
                cluster: None,
                revision: revision.to_string(),
                reason: format!(
                    "no cluster is configured for environment {environment}; the revision is applied once one is (the applier catches up at start)"
                ),
            };
            tracing::warn!(environment = %environment, revision, "no clusters configured for this environment");
            return self.emit(&waiting, cause, &["no-cluster"]).await;
        }
        if let (Some(pin), Some(EventData::ValidationPassed(passed))) =
            (&env.pin, cause.event.map(|e| &e.data))
            && passed.revision != pin.revision
        {
            let waiting = RolloutWaiting {
                environment: environment.to_string(),
                cluster: None,
                revision: passed.revision.clone(),
                reason: format!(
                    "environment pinned to {} by {} ({}); a newer commit or `configsync unpin` lifts the pin",
                    pin.revision, pin.actor, pin.reason
                ),
            };
            self.emit(&waiting, cause, &["pinned"]).await?;
        }
        let kind = if env.pin.is_some() {
            RolloutKind::Rollback
        } else {
            RolloutKind::Forward
        };
        // A forward revision that some target still lacks passes the approval gate first; a
        // rollback too where the policy says so (otherwise it is itself a person's signed
        // decision, or the applier's own).
        let pending = targets.iter().any(|t| {
            state.target(&t.target()).is_none_or(|s| {
                s.deployed_revision.as_deref() != Some(revision)
                    || s.deployed_bundle.as_deref() != Some(wanted.bundle_digest.as_str())
            })
        });
        let gated = kind == RolloutKind::Forward
            || self
                .policy
                .as_ref()
                .is_some_and(|p| p.rules(environment.as_str()).approve_rollbacks);
        if gated
            && pending
            && let Some(reason) = self.gate(environment, &env, revision, cause).await?
        {
            tracing::info!(environment = %environment, revision, %reason, "held at the approval gate");
            let waiting = RolloutWaiting {
                environment: environment.to_string(),
                cluster: None,
                revision: revision.to_string(),
                reason,
            };
            return self.emit(&waiting, cause, &["gate"]).await;
        }
        // A rollback goes everywhere at once; a forward revision respects the promotion order
        // and the waves.
        if kind == RolloutKind::Forward
            && let Some(previous) = self.settings.promoted_from(environment)
            && let Some(reason) = self
                .promotion_pending(environment, previous, wanted.commit_sequence)
                .await?
        {
            let waiting = RolloutWaiting {
                environment: environment.to_string(),
                cluster: None,
                revision: revision.to_string(),
                reason,
            };
            return self.emit(&waiting, cause, &["promotion"]).await;
        }
        let mut waves: BTreeMap<u32, Vec<&ClusterTarget>> = BTreeMap::new();
        for target in targets {
            let wave = match kind {
                RolloutKind::Forward => self.settings.wave(&target.target()),
                RolloutKind::Rollback => 0,
            };
            waves.entry(wave).or_default().push(target);
        }
        let mut eligible = Vec::new();
        let mut blocked: Option<(String, &str)> = None;
        for (wave, members) in waves {
            if let Some((reason, why)) = &blocked {
                for target in members {
                    let waiting = RolloutWaiting {
                        environment: environment.to_string(),
                        cluster: Some(target.cluster.to_string()),
                        revision: revision.to_string(),
                        reason: reason.clone(),
                    };
                    self.emit(&waiting, cause, &["wave", why]).await?;
                }
                continue;
            }
            let healthy_here = |t: &&ClusterTarget| {
                state.target(&t.target()).is_some_and(|s| {
                    s.deployed_revision.as_deref() == Some(revision) && s.healthy == Some(true)
                })
            };
            let degraded = members.iter().any(|t| {
                state.target(&t.target()).is_some_and(|s| {
                    s.deployed_revision.as_deref() == Some(revision) && s.healthy == Some(false)
                })
            });
            if !members.iter().all(healthy_here) {
                blocked = Some(if degraded {
                    (
                        format!("wave {wave} is degraded on {revision}: the rollout stops there"),
                        "degraded",
                    )
                } else {
                    (
                        format!("waiting for wave {wave} to be healthy on {revision}"),
                        "waiting",
                    )
                });
            }
            eligible.extend(members);
        }
        let rollouts = eligible.into_iter().filter_map(|target| {
            let current = state.target(&target.target());
            let deployed = current.is_some_and(|t| {
                t.deployed_revision.as_deref() == Some(revision)
                    && t.deployed_bundle.as_deref() == Some(wanted.bundle_digest.as_str())
            });
            (!deployed).then(|| Rollout {
                applier: self,
                target,
                revision: revision.to_string(),
                bundle_digest: wanted.bundle_digest.clone(),
                state: current.cloned().unwrap_or_default(),
                cause,
                kind,
            })
        });
        self.run_all(rollouts.collect()).await?;
        // A target deployed before a restart whose health was never settled is checked again.
        for target in targets {
            if let Some(t) = state.target(&target.target())
                && t.healthy.is_none()
                && t.deployed_revision.as_deref() == Some(revision)
            {
                self.health
                    .watch_if_idle(target, revision, &wanted.bundle_digest, cause);
            }
        }
        Ok(())
    }

    /// Why a revision at `commit_sequence` may not reach `environment` yet under the promotion
    /// order (`environment` after `previous`): every cluster of `previous` must be healthy on
    /// the last revision it validated up to that commit, or on a later one. `None`: it may.
    async fn promotion_pending(
        &self,
        environment: &Name,
        previous: &Name,
        commit_sequence: u64,
    ) -> Result<Option<String>, HandlerError> {
        let order = format!("promotion order: {environment} after {previous}");
        let state = self.state(previous, Until::End).await?;
        let Some(before) = state.environment(previous.as_str()) else {
            return Ok(Some(format!(
                "waiting for {previous}, which has no validated revision yet ({order})"
            )));
        };
        let Some((candidate, at)) = before
            .validated
            .iter()
            .filter(|(_, v)| v.commit_sequence <= commit_sequence)
            .max_by_key(|(_, v)| v.commit_sequence)
        else {
            return Ok(Some(format!(
                "waiting for {previous}, which validated nothing up to this commit ({order})"
            )));
        };
        let clusters = self.clusters.of(previous.as_str());
        if clusters.is_empty() {
            return Ok(Some(format!(
                "waiting for {previous}, which has no cluster configured here ({order})"
            )));
        }
        for cluster in clusters {
            let caught_up = state.target(&cluster.target()).is_some_and(|t| {
                t.healthy == Some(true)
                    && t.deployed_revision
                        .as_ref()
                        .and_then(|r| before.validated.get(r))
                        .is_some_and(|d| d.commit_sequence >= at.commit_sequence)
            });
            if !caught_up {
                return Ok(Some(format!(
                    "waiting for {previous} to be healthy on {candidate} or a later commit; {} is not yet ({order})",
                    cluster.target()
                )));
            }
        }
        Ok(None)
    }

    /// Reconciles `environment` and the environments promoted from it again, after a health
    /// verdict there: the next wave, or the next environment, may go now.
    pub(crate) fn retrigger(self: &Arc<Self>, environment: &Name) {
        self.spawn_reconcile(environment.clone());
        for promoted in self.settings.promoted_to(environment) {
            self.spawn_reconcile(promoted.clone());
        }
    }

    /// The event that made `revision` the environment's wanted one: its (last) `rollout.pinned`
    /// when it is pinned there, else its (last) `validation.passed`.
    async fn decided_by(
        &self,
        environment: &Name,
        revision: &str,
        pinned: bool,
    ) -> Result<Option<Received>, HandlerError> {
        struct Find<'a> {
            revision: &'a str,
            found: Option<Received>,
        }
        impl Fold for Find<'_> {
            fn apply(&mut self, event: &Received) {
                let decides = match &event.data {
                    EventData::ValidationPassed(v) => v.revision == self.revision,
                    EventData::EnvironmentPinned(p) => p.revision == self.revision,
                    _ => false,
                };
                if decides {
                    self.found = Some(event.clone());
                }
            }
        }
        let type_name = if pinned {
            EnvironmentPinned::TYPE
        } else {
            ValidationPassed::TYPE
        };
        let filter = subject::for_event(type_name, Some(environment.as_str()), None)
            .map_err(|e| HandlerError::Terminal(e.to_string()))?;
        let mut find = Find {
            revision,
            found: None,
        };
        replay_filtered(
            &self.log.js,
            self.log.stream(),
            &filter,
            Start::Beginning,
            Until::End,
            &mut find,
        )
        .await
        .map_err(|e| HandlerError::Transient(format!("reading the log: {e}")))?;
        Ok(find.found)
    }

    /// Runs the rollouts of several targets at once; a target whose cluster cannot be reached
    /// makes the event wait (transient), the others are done.
    async fn run_all(&self, rollouts: Vec<Rollout<'_>>) -> Result<(), HandlerError> {
        let results = futures::future::join_all(rollouts.into_iter().map(Rollout::run)).await;
        let mut waiting = Vec::new();
        for result in results {
            match result {
                Ok(()) => {}
                Err(HandlerError::Transient(reason)) => waiting.push(reason),
                Err(terminal) => return Err(terminal),
            }
        }
        if waiting.is_empty() {
            Ok(())
        } else {
            Err(HandlerError::Transient(format!(
                "the change waits for: {}",
                waiting.join("; ")
            )))
        }
    }

    /// A validation of a commit newer than the pin lifts it (the pin holds back only what was
    /// known when it was set).
    async fn lift_pin_if_newer(
        &self,
        environment: &Name,
        mut env: EnvironmentState,
        cause: Cause<'_>,
    ) -> Result<EnvironmentState, HandlerError> {
        let Some(pin) = env.pin.clone() else {
            return Ok(env);
        };
        let newest = env
            .newest
            .as_ref()
            .and_then(|r| env.validated.get(r).map(|v| (r.clone(), v.commit_sequence)));
        if let Some((revision, sequence)) = newest
            && sequence > pin.commit_sequence
        {
            let unpinned = EnvironmentUnpinned {
                environment: environment.to_string(),
                revision: pin.revision.clone(),
                reason: format!("a newer commit, {revision}, was validated"),
                actor: SYSTEM_ACTOR.into(),
            };
            tracing::info!(environment = %environment, pinned = %pin.revision, newer = %revision, "a newer commit lifts the pin");
            self.emit_as(&unpinned, cause, &["lift", &revision], Some(SYSTEM_ACTOR))
                .await?;
            env.pin = None;
        }
        Ok(env)
    }

    /// Pins the environment to a validated revision and rolls it out.
    async fn rollback(
        &self,
        environment: &Name,
        request: &RollbackRequested,
        actor: &str,
        event: &Received,
    ) -> Result<(), HandlerError> {
        let cause = Cause { event: Some(event) };
        let state = self.state(environment, Until::End).await?;
        let refuse = |reason: String| {
            tracing::warn!(environment = %environment, revision = %request.to_revision, %reason, "rollback refused");
            Err(HandlerError::Terminal(format!(
                "rollback refused: {reason}"
            )))
        };
        let Some(env) = state.environment(environment.as_str()) else {
            return refuse(format!(
                "nothing was ever validated for environment {environment}"
            ));
        };
        if !env.validated.contains_key(&request.to_revision) {
            return refuse(format!(
                "revision {} was never validated for environment {environment}",
                request.to_revision
            ));
        }
        if self.clusters.of(environment.as_str()).is_empty() {
            return refuse(format!(
                "no cluster is configured for environment {environment}"
            ));
        }
        if let Some(cluster) = &request.cluster
            && !self
                .clusters
                .of(environment.as_str())
                .iter()
                .any(|t| t.cluster.as_str() == cluster)
        {
            return refuse(format!(
                "environment {environment} has no cluster {cluster}"
            ));
        }
        let newest_known = env
            .validated
            .values()
            .map(|v| v.commit_sequence)
            .max()
            .unwrap_or_default();
        if env.pin.as_ref().map(|p| &p.revision) != Some(&request.to_revision) {
            let pinned = EnvironmentPinned {
                environment: environment.to_string(),
                revision: request.to_revision.clone(),
                commit_sequence: newest_known,
                reason: request.reason.clone(),
                actor: actor.to_string(),
            };
            self.emit_as(&pinned, cause, &["pin"], Some(actor)).await?;
        }
        self.reconcile(environment, cause, Until::End).await
    }

    /// Lifts the environment's pin on an accepted request, and rolls it forward.
    async fn unpin(
        &self,
        environment: &Name,
        request: &UnpinRequested,
        actor: &str,
        event: &Received,
    ) -> Result<(), HandlerError> {
        let cause = Cause { event: Some(event) };
        let state = self.state(environment, Until::End).await?;
        let pinned = state
            .environment(environment.as_str())
            .and_then(|e| e.pin.as_ref());
        if pinned.is_none_or(|p| p.revision != request.revision) {
            tracing::warn!(environment = %environment, revision = %request.revision, "unpin requested, but the environment is not pinned there");
            return Ok(());
        }
        let unpinned = EnvironmentUnpinned {
            environment: environment.to_string(),
            revision: request.revision.clone(),
            reason: request.reason.clone(),
            actor: actor.to_string(),
        };
        self.emit_as(&unpinned, cause, &["unpin"], Some(actor))
            .await?;
        self.reconcile(environment, cause, Until::End).await
    }

    /// Who a person's action is from, once the access policy accepts it; `None` when it is
    /// refused (recorded as `action.refused`). Without a policy, the claimed actor.
    async fn authorize(&self, event: &Received) -> Result<Option<String>, HandlerError> {
        let Some(claim) = Claim::of(&event.data) else {
            return Err(HandlerError::Terminal("not a person's action".into()));
        };
        let Some(policy) = &self.policy else {
            return Ok(Some(claim.actor));
        };
        // Checked as of when it was recorded: an action that waited for a cluster to come
        // back was valid when it was made.
        match policy.verify(&claim, event.stored_at) {
            Ok(verified) => {
                tracing::info!(action = %claim.action, environment = %claim.environment, principal = %verified.principal, key = %verified.key, "signed action accepted");
                Ok(Some(verified.principal))
            }
            Err(refusal) => {
                self.refuse(&claim, event, &refusal).await?;
                Ok(None)
            }
        }
    }

    /// Records that a person's action does nothing, and why.
    async fn refuse(
        &self,
        claim: &Claim,
        event: &Received,
        refusal: &Refusal,
    ) -> Result<(), HandlerError> {
        tracing::warn!(action = %claim.action, environment = %claim.environment, revision = %claim.revision, actor = %claim.actor, reason = %refusal, "action refused");
        let refused = ActionRefused {
            environment: claim.environment.clone(),
            revision: claim.revision.clone(),
            action: claim.action.to_string(),
            actor: claim.actor.clone(),
            refused_event: event.id().to_string(),
            reason: refusal.to_string(),
        };
        self.emit(&refused, Cause { event: Some(event) }, &["refused"])
            .await
    }

    /// Checks an approval or rejection as it arrives, so that one that cannot count is
    /// recorded with its reason at once (the gate checks them again when it decides).
    async fn decision(&self, environment: &Name, event: &Received) -> Result<(), HandlerError> {
        let Some(claim) = Claim::of(&event.data) else {
            return Ok(());
        };
        let Some(policy) = &self.policy else {
            tracing::info!(action = %claim.action, environment = %environment, "no access policy: approvals are not needed and change nothing");
            return Ok(());
        };
        let state = self.state(environment, Until::End).await?;
        let validated = state
            .environment(environment.as_str())
            .and_then(|e| e.validated.get(&claim.revision));
        let Some(validated) = validated else {
            let unknown = Refusal::UnknownRevision {
                environment: environment.to_string(),
                revision: claim.revision.clone(),
            };
            return self.refuse(&claim, event, &unknown).await;
        };
        let checked = match &event.data {
            EventData::ApprovalGranted(granted) => {
                let recorded = recorded(event, granted);
                access::check_approval(policy, &recorded, validated, false, event.stored_at)
            }
            _ => policy.verify(&claim, event.stored_at),
        };
        match checked {
            Ok(v) => {
                tracing::info!(action = %claim.action, environment = %environment, revision = %claim.revision, principal = %v.principal, key = %v.key, "signed decision recorded");
                Ok(())
            }
            Err(refusal) => self.refuse(&claim, event, &refusal).await,
        }
    }

    /// The approval gate: `Some(reason)` when the revision may not go yet (recorded as
    /// `approval.required` once, and `rollout.waiting` with the progress).
    async fn gate(
        &self,
        environment: &Name,
        env: &EnvironmentState,
        revision: &str,
        cause: Cause<'_>,
    ) -> Result<Option<String>, HandlerError> {
        let Some(policy) = &self.policy else {
            return Ok(None);
        };
        let assessment = access::assess(
            policy,
            environment.as_str(),
            env,
            revision,
            chrono::Utc::now(),
        );
        let reason = match &assessment.verdict {
            Verdict::Open => return Ok(None),
            Verdict::Rejected { by, reason } => {
                format!("rejected by {by} ({reason}); a newer commit replaces it")
            }
            Verdict::Waiting { required, have } => {
                let validated = env.validated.get(revision);
                if env
                    .decisions
                    .get(revision)
                    .and_then(|d| d.required.as_ref())
                    .is_none()
                    && let Some(validated) = validated
                {
                    let valid_for = policy
                        .rules(environment.as_str())
                        .approvals
                        .map_or(0, |a| a.valid_for.as_secs());
                    let required = ApprovalRequired {
                        environment: environment.to_string(),
                        revision: revision.to_string(),
                        required: *required,
                        reason: format!(
                            "the access policy needs {required} approval(s) for {environment}"
                        ),
                        bundle_digest: validated.bundle_digest.clone(),
                        approvers: assessment.approvers.iter().cloned().collect(),
                        author: validated.author.clone(),
                        approval_valid_for_seconds: valid_for,
                    };
                    self.emit(&required, cause, &["approval-required", revision])
                        .await?;
                }
                let given: Vec<&str> = assessment
                    .counted
                    .iter()
                    .map(|c| c.principal.as_str())
                    .collect();
                format!(
                    "waiting for approvals: {have} of {required} ({}); may approve: {}",
                    if given.is_empty() {
                        "none yet".to_string()
                    } else {
                        given.join(", ")
                    },
                    assessment
                        .approvers
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        Ok(Some(reason))
    }

    /// Deletes what a prune guard held back, once a person approved it.
    async fn prune_approved(
        &self,
        environment: &Name,
        approval: &PruneApproved,
        actor: &str,
        event: &Received,
    ) -> Result<(), HandlerError> {
        // The state just before the approval: it still shows the hold.
        let state = self
            .state(
                environment,
                Until::Sequence(event.stream_sequence.saturating_sub(1)),
            )
            .await?;
        let target = self
            .clusters
            .of(environment.as_str())
            .iter()
            .find(|t| t.cluster.as_str() == approval.cluster);
        let (Some(target), Some(current)) = (
            target,
            Target::parse(&approval.environment, &approval.cluster)
                .ok()
                .and_then(|t| state.target(&t)),
        ) else {
            return Err(HandlerError::Terminal(format!(
                "prune approval for an unknown target {}/{}",
                approval.environment, approval.cluster
            )));
        };
        match &current.prune_held {
            Some(hold) if hold.revision == approval.revision => {}
            _ => {
                tracing::warn!(environment = %environment, cluster = %approval.cluster, revision = %approval.revision, "prune approved, but nothing is held for that revision");
                return Ok(());
            }
        }
        let rollout = Rollout {
            applier: self,
            target,
            revision: approval.revision.clone(),
            bundle_digest: current.deployed_bundle.clone().unwrap_or_default(),
            state: current.clone(),
            cause: Cause { event: Some(event) },
            kind: RolloutKind::Forward,
        };
        rollout.prune_held(actor).await
    }

    /// Records a pin, a wait or an outcome, caused by `cause` (plus `extra` to tell apart
    /// several events of one type caused by one event).
    pub(crate) async fn emit<P: EventPayload>(
        &self,
        payload: &P,
        cause: Cause<'_>,
        extra: &[&str],
    ) -> Result<(), HandlerError> {
        self.emit_as(payload, cause, extra, None).await
    }

    /// [`Self::emit`], recording who acted.
    pub(crate) async fn emit_as<P: EventPayload>(
        &self,
        payload: &P,
        cause: Cause<'_>,
        extra: &[&str],
        actor: Option<&str>,
    ) -> Result<(), HandlerError> {
        let routing = payload.routing();
        let mut builder = Outgoing::builder(payload);
        if let Some(actor) = actor {
            builder = builder.actor(actor);
        }
        match cause.event {
            Some(event) => builder = builder.caused_by(event),
            // Acting on its own at start: the causes are what the event is about, and the
            // time, since the same catch-up may rightly happen again later.
            None => {
                builder = builder.cause(chrono::Utc::now().to_rfc3339());
            }
        }
        for part in extra {
            builder = builder.cause(part);
        }
        if let Some(cluster) = routing.cluster {
            builder = builder.cause(cluster);
        }
        let subject = match (routing.environment, routing.cluster) {
            (Some(env), Some(cluster)) => Target::parse(env, cluster)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            (Some(env), None) => env.to_string(),
            _ => String::new(),
        };
        let event = builder.subject(subject).build(&self.log.source)?;
        self.publisher
            .publish(&event)
            .await
            .map(|_| ())
            .map_err(HandlerError::from)
    }

    pub(crate) fn auto_rollback(&self, environment: &Name) -> bool {
        self.settings.auto_rollback.contains(environment)
    }
}
