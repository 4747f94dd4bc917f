//! The fold functions, written once: the state of every source, environment and target as a
//! pure function of the log. Services rebuild their state with them; `configsync replay` uses
//! the same code to show the state at any sequence or time.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{
    ApprovalGranted, ApprovalRejected, ApprovalRequired, DriftKind, EventData, FieldDrift,
    ObjectRef, Received,
};
use crate::log::Fold;
use crate::names::{SourceId, Target};

/// The last commit seen on one tracked branch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub last_sha: String,
    pub sequence: u64,
}

/// The outcome of an environment's latest validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Validation {
    Passed {
        revision: String,
        bundle_digest: String,
    },
    Failed {
        revision: String,
        findings: usize,
    },
}

/// A revision that passed validation for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedRevision {
    pub bundle_digest: String,
    /// Its place in the branch's history (see `ValidationPassed::commit_sequence`).
    pub commit_sequence: u64,
    /// The commit's author (e-mail), when known.
    #[serde(default)]
    pub author: Option<String>,
}

/// A person's action as the log holds it. Its signature is checked by whoever acts on it
/// (the fold is policy-free: the same log reads alike under any policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded<T> {
    pub event_id: String,
    pub sequence: u64,
    pub stored_at: DateTime<Utc>,
    pub action: T,
}

/// What people decided about one revision of an environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    /// The applier's `approval.required`, once it asked.
    pub required: Option<ApprovalRequired>,
    pub granted: Vec<Recorded<ApprovalGranted>>,
    pub rejected: Vec<Recorded<ApprovalRejected>>,
    /// Actions about this revision the applier refused: event id → reason.
    pub refused: BTreeMap<String, String>,
}

impl Decisions {
    /// The most actions of one kind kept per revision: a flood of forged approvals (from
    /// someone holding operator credentials) cannot grow the state without bound; the oldest
    /// go first.
    pub const KEPT: usize = 256;
}

fn keep_bounded<T>(list: &mut Vec<T>, item: T) {
    list.push(item);
    let excess = list.len().saturating_sub(Decisions::KEPT);
    list.drain(..excess);
}

/// An environment held at a revision after a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub revision: String,
    /// Commits announced up to this sequence stay behind the pin.
    pub commit_sequence: u64,
    pub reason: String,
    pub actor: String,
}

/// One environment's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentState {
    pub latest_validation: Option<Validation>,
    /// People's approvals and rejections, per revision.
    pub decisions: BTreeMap<String, Decisions>,
    /// Every revision that passed validation, with its bundle and place in history.
    pub validated: BTreeMap<String, ValidatedRevision>,
    /// The validated revision latest in the branch's history: the one to run ("latest wins").
    pub newest: Option<String>,
    pub pin: Option<Pin>,
}

impl EnvironmentState {
    /// The validated revision this environment should run: the pin, else the newest.
    pub fn wanted(&self) -> Option<(&str, &ValidatedRevision)> {
        let revision = self
            .pin
            .as_ref()
            .map(|p| p.revision.as_str())
            .or(self.newest.as_deref())?;
        self.validated.get(revision).map(|v| (revision, v))
    }
}

/// What happened last to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastApply {
    Started { revision: String },
    Succeeded { revision: String },
    Failed { revision: String, reason: String },
}

/// A revision deployed on a target, and its bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    pub revision: String,
    pub bundle_digest: String,
}

/// Deletions the prune guard holds back on a target until a person approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneHold {
    /// The revision whose apply would have deleted them.
    pub revision: String,
    pub would_delete: u32,
}

/// One target's (environment + cluster) state.
///
/// The target's inventory (the objects its deployed revision owns) is the bundle
/// `deployed_bundle` names, plus, while a prune is held, the objects of `inventory_bundles`
/// that are still in the cluster: bundles are content-addressed and immutable, so the fold keeps
/// their digests, not thousands of object names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// The revision last applied successfully.
    pub deployed_revision: Option<String>,
    pub deployed_bundle: Option<String>,
    /// The bundles whose objects this target may still hold: the deployed one, and earlier
    /// ones whose leftovers a prune hold kept.
    pub inventory_bundles: BTreeSet<String>,
    /// Objects in the deployed bundle.
    pub inventory_size: u32,
    pub last_apply: Option<LastApply>,
    /// The health of the deployed revision, once assessed.
    pub healthy: Option<bool>,
    /// The last revision that was healthy here.
    pub last_healthy: Option<Deployed>,
    /// The revisions that were healthy here, most recent last (at most
    /// [`TargetState::HEALTHY_KEPT`]).
    pub healthy_history: Vec<Deployed>,
    pub prune_held: Option<PruneHold>,
    /// Objects currently drifted from their desired state.
    pub drifted: DriftedObjects,
    /// The sequence of the last event about this target.
    pub sequence: u64,
}

/// The objects of one target reported drifted and not resolved since, each with the drift it
/// was last reported as: the one fold of drift state, kept by the log state (`replay`) and by
/// the drift-watcher (so that a restart does not report the same drift again).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Vec<DriftRecord>", from = "Vec<DriftRecord>")]
pub struct DriftedObjects(BTreeMap<ObjectRef, DriftRecord>);

/// One drifted object, as its last `drift.detected` reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftRecord {
    pub object: ObjectRef,
    /// The revision whose desired state it differs from.
    pub revision: String,
    pub kind: DriftKind,
    pub fields: Vec<FieldDrift>,
    /// The `drift.detected` event.
    pub event_id: String,
}

impl DriftedObjects {
    /// Folds a `drift.detected` or `drift.resolved` of this target (the caller picks the
    /// target's events); other events change nothing.
    pub fn apply(&mut self, event: &Received) {
        match &event.data {
            EventData::DriftDetected(d) => self.record(DriftRecord {
                object: d.object.clone(),
                revision: d.revision.clone(),
                kind: d.kind,
                fields: d.fields.clone(),
                event_id: event.id().to_string(),
            }),
            EventData::DriftResolved(r) => {
                self.0.remove(&r.object);
            }
            _ => {}
        }
    }

    /// Records a drift just reported.
    pub fn record(&mut self, record: DriftRecord) {
        self.0.insert(record.object.clone(), record);
    }

    /// Forgets a drift just resolved.
    pub fn remove(&mut self, object: &ObjectRef) -> Option<DriftRecord> {
        self.0.remove(object)
    }

    pub fn get(&self, object: &ObjectRef) -> Option<&DriftRecord> {
        self.0.get(object)
    }

    pub fn contains(&self, object: &ObjectRef) -> bool {
        self.0.contains_key(object)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The drifted objects, in order.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectRef> {
        self.0.keys()
    }
}

impl From<DriftedObjects> for Vec<DriftRecord> {
    fn from(d: DriftedObjects) -> Self {
        d.0.into_values().collect()
    }
}

impl From<Vec<DriftRecord>> for DriftedObjects {
    fn from(records: Vec<DriftRecord>) -> Self {
        Self(records.into_iter().map(|r| (r.object.clone(), r)).collect())
    }
}

/// The whole log's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Keyed by source (written `<repository>#<branch>` in snapshots).
    pub sources: BTreeMap<SourceId, SourceState>,
    pub environments: BTreeMap<String, EnvironmentState>,
    pub targets: BTreeMap<Target, TargetState>,
    pub events: u64,
    pub dead_letters: u64,
    /// The sequence of the last event folded.
    pub sequence: u64,
}

impl TargetState {
    /// How many healthy revisions a target remembers.
    pub const HEALTHY_KEPT: usize = 20;

    /// Where a rollback goes by default: the most recent revision that was healthy here and
    /// is not the one deployed now.
    pub fn rollback_candidate(&self) -> Option<&Deployed> {
        self.healthy_history
            .iter()
            .rev()
            .find(|d| Some(&d.revision) != self.deployed_revision.as_ref())
    }
}

impl LogState {
    /// The state of one target, if any event concerned it.
    pub fn target(&self, target: &Target) -> Option<&TargetState> {
        self.targets.get(target)
    }

    /// The state of one environment, if any event concerned it.
    pub fn environment(&self, environment: &str) -> Option<&EnvironmentState> {
        self.environments.get(environment)
    }

    /// The target an event names; events carry validated names, so a bad one (only possible
    /// in a hand-made event) is left out of the state rather than failing the whole fold.
    fn decisions(&mut self, environment: &str, revision: &str) -> &mut Decisions {
        self.environments
            .entry(environment.to_string())
            .or_default()
            .decisions
            .entry(revision.to_string())
            .or_default()
    }

    fn target_mut(
        &mut self,
        environment: &str,
        cluster: &str,
        sequence: u64,
    ) -> Option<&mut TargetState> {
        let key = Target::parse(environment, cluster).ok()?;
        let target = self.targets.entry(key).or_default();
        target.sequence = sequence;
        Some(target)
    }

    /// Serializes the state as a MessagePack snapshot taken at `self.sequence`.
    pub fn to_snapshot(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }

    /// Restores a snapshot; replay continues from `sequence + 1`.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

impl Fold for LogState {
    fn apply(&mut self, event: &Received) {
        let seq = event.stream_sequence;
        if seq <= self.sequence {
            // Already folded (a snapshot overlapping a replay, or a redelivery).
            return;
        }
        self.sequence = seq;
        self.events += 1;
        match &event.data {
            EventData::CommitDetected(c) => {
                self.sources.insert(
                    SourceId::new(&c.repository, &c.branch).with_path(c.path.clone()),
                    SourceState {
                        last_sha: c.sha.clone(),
                        sequence: seq,
                    },
                );
            }
            EventData::SourceRewritten(r) => {
                self.sources.insert(
                    SourceId::new(&r.repository, &r.branch).with_path(r.path.clone()),
                    SourceState {
                        last_sha: r.new_sha.clone(),
                        sequence: seq,
                    },
                );
            }
            EventData::ValidationPassed(v) => {
                let env = self.environments.entry(v.environment.clone()).or_default();
                env.latest_validation = Some(Validation::Passed {
                    revision: v.revision.clone(),
                    bundle_digest: v.bundle_digest.clone(),
                });
                // Events from before commit sequences were recorded fall back to their own
                // position, the best order they can give.
                let commit_sequence = if v.commit_sequence > 0 {
                    v.commit_sequence
                } else {
                    seq
                };
                let newer = env
                    .newest
                    .as_ref()
                    .and_then(|r| env.validated.get(r))
                    .is_none_or(|n| commit_sequence > n.commit_sequence);
                env.validated.insert(
                    v.revision.clone(),
                    ValidatedRevision {
                        bundle_digest: v.bundle_digest.clone(),
                        commit_sequence,
                        author: v.author.clone(),
                    },
                );
                if newer {
                    env.newest = Some(v.revision.clone());
                }
            }
            EventData::EnvironmentPinned(p) => {
                self.environments
                    .entry(p.environment.clone())
                    .or_default()
                    .pin = Some(Pin {
                    revision: p.revision.clone(),
                    commit_sequence: p.commit_sequence,
                    reason: p.reason.clone(),
                    actor: p.actor.clone(),
                });
            }
            EventData::EnvironmentUnpinned(u) => {
                let env = self.environments.entry(u.environment.clone()).or_default();
                if env.pin.as_ref().is_some_and(|p| p.revision == u.revision) {
                    env.pin = None;
                }
            }
            EventData::ValidationFailed(v) => {
                self.environments
                    .entry(v.environment.clone())
                    .or_default()
                    .latest_validation = Some(Validation::Failed {
                    revision: v.revision.clone(),
                    findings: v.findings.len(),
                });
            }
            EventData::ApprovalRequired(a) => {
                self.decisions(&a.environment, &a.revision).required = Some(a.clone());
            }
            EventData::ApprovalGranted(a) => {
                let recorded = recorded(event, a);
                keep_bounded(
                    &mut self.decisions(&a.environment, &a.revision).granted,
                    recorded,
                );
            }
            EventData::ApprovalRejected(r) => {
                let recorded = recorded(event, r);
                keep_bounded(
                    &mut self.decisions(&r.environment, &r.revision).rejected,
                    recorded,
                );
            }
            EventData::ActionRefused(r) => {
                let refused = &mut self.decisions(&r.environment, &r.revision).refused;
                if refused.len() < Decisions::KEPT {
                    refused.insert(r.refused_event.clone(), r.reason.clone());
                }
            }
            EventData::ApplyStarted(a) => {
                if let Some(t) = self.target_mut(&a.environment, &a.cluster, seq) {
                    t.last_apply = Some(LastApply::Started {
                        revision: a.revision.clone(),
                    });
                }
            }
            EventData::ApplySucceeded(a) => {
                if let Some(t) = self.target_mut(&a.environment, &a.cluster, seq) {
                    if t.deployed_revision.as_deref() != Some(&a.revision)
                        || t.deployed_bundle.as_deref() != Some(&a.bundle_digest)
                    {
                        t.healthy = None;
                    }
                    t.deployed_revision = Some(a.revision.clone());
                    t.deployed_bundle = Some(a.bundle_digest.clone());
                    // The apply pruned what the earlier bundles left, unless a hold follows.
                    t.inventory_bundles = BTreeSet::from([a.bundle_digest.clone()]);
                    t.inventory_size = a.counts.created + a.counts.configured + a.counts.unchanged;
                    t.prune_held = None;
                    t.last_apply = Some(LastApply::Succeeded {
                        revision: a.revision.clone(),
                    });
                }
            }
            EventData::ApplyFailed(a) => {
                if let Some(t) = self.target_mut(&a.environment, &a.cluster, seq) {
                    t.last_apply = Some(LastApply::Failed {
                        revision: a.revision.clone(),
                        reason: a.reason.clone(),
                    });
                }
            }
            EventData::PruneHeld(p) => {
                if let Some(t) = self.target_mut(&p.environment, &p.cluster, seq) {
                    t.prune_held = Some(PruneHold {
                        revision: p.revision.clone(),
                        would_delete: p.would_delete,
                    });
                    t.inventory_bundles.extend(p.held_bundles.iter().cloned());
                }
            }
            EventData::PruneCompleted(p) => {
                if let Some(t) = self.target_mut(&p.environment, &p.cluster, seq)
                    && t.prune_held
                        .as_ref()
                        .is_some_and(|h| h.revision == p.revision)
                {
                    t.prune_held = None;
                    t.inventory_bundles = t.deployed_bundle.iter().cloned().collect();
                }
            }
            EventData::ResourcePruned(p) => {
                self.target_mut(&p.environment, &p.cluster, seq);
            }
            EventData::HealthReady(h) => {
                if let Some(t) = self.target_mut(&h.environment, &h.cluster, seq)
                    && t.deployed_revision.as_deref() == Some(&h.revision)
                {
                    t.healthy = Some(true);
                    t.last_healthy = t.deployed_bundle.clone().map(|bundle_digest| Deployed {
                        revision: h.revision.clone(),
                        bundle_digest,
                    });
                    if let Some(healthy) = t.last_healthy.clone() {
                        t.healthy_history.retain(|d| d.revision != healthy.revision);
                        t.healthy_history.push(healthy);
                        let excess = t
                            .healthy_history
                            .len()
                            .saturating_sub(TargetState::HEALTHY_KEPT);
                        t.healthy_history.drain(..excess);
                    }
                }
            }
            EventData::HealthDegraded(h) => {
                if let Some(t) = self.target_mut(&h.environment, &h.cluster, seq)
                    && t.deployed_revision.as_deref() == Some(&h.revision)
                {
                    t.healthy = Some(false);
                }
            }
            EventData::DriftDetected(d) => {
                if let Some(t) = self.target_mut(&d.environment, &d.cluster, seq) {
                    t.drifted.apply(event);
                }
            }
            EventData::DriftResolved(d) => {
                if let Some(t) = self.target_mut(&d.environment, &d.cluster, seq) {
                    t.drifted.apply(event);
                }
            }
            EventData::DeadLetterRecorded(_) => self.dead_letters += 1,
            // Requests: what they lead to is recorded by the applier once it accepted them
            // (rollout.pinned, rollout.unpinned, prune.completed).
            EventData::SourceFailed(_)
            | EventData::RollbackRequested(_)
            | EventData::UnpinRequested(_)
            | EventData::PruneApproved(_)
            | EventData::RolloutWaiting(_)
            | EventData::RemediationStarted(_)
            | EventData::RemediationSucceeded(_)
            | EventData::RemediationFailed(_)
            | EventData::RemediationConflict(_)
            | EventData::AuditCheckpoint(_) => {}
        }
    }
}

/// A person's action as the fold keeps it: with the event's id, position and time.
pub fn recorded<T: Clone>(event: &Received, action: &T) -> Recorded<T> {
    Recorded {
        event_id: event.id().to_string(),
        sequence: event.stream_sequence,
        stored_at: event.stored_at,
        action: action.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{
        ApplySucceeded, EnvironmentPinned, EnvironmentUnpinned, EventPayload, HealthReady,
        Outgoing, PruneApproved, PruneCompleted, PruneHeld, ValidationPassed,
    };

    /// Folds payloads as if they were stored in this order.
    struct Log {
        state: LogState,
        sequence: u64,
    }

    impl Log {
        fn new() -> Self {
            Self {
                state: LogState::default(),
                sequence: 0,
            }
        }

        fn add<P: EventPayload>(&mut self, payload: &P, data: EventData) -> &mut Self {
            self.sequence += 1;
            let event = Outgoing::builder(payload)
                .cause(self.sequence.to_string())
                .build("configsync://test/1")
                .unwrap();
            self.state.apply(&Received {
                event: event.event().clone(),
                data,
                subject: event.subject().to_string(),
                stream_sequence: self.sequence,
                stored_at: chrono::Utc::now(),
                delivered: 1,
            });
            self
        }

        fn validated(&mut self, revision: &str, commit_sequence: u64) -> &mut Self {
            let p = ValidationPassed {
                environment: "dev".into(),
                revision: revision.into(),
                bundle_digest: format!("sha256:{revision}"),
                objects: vec![],
                warnings: vec![],
                commit_sequence,
                author: None,
            };
            self.add(&p, EventData::ValidationPassed(p.clone()))
        }

        fn applied(&mut self, revision: &str) -> &mut Self {
            let p = ApplySucceeded {
                environment: "dev".into(),
                cluster: "c1".into(),
                revision: revision.into(),
                bundle_digest: format!("sha256:{revision}"),
                results: vec![],
                duration_ms: 1,
                counts: Default::default(),
                results_truncated: false,
            };
            self.add(&p, EventData::ApplySucceeded(p.clone()))
        }

        fn healthy(&mut self, revision: &str) -> &mut Self {
            let p = HealthReady {
                environment: "dev".into(),
                cluster: "c1".into(),
                revision: revision.into(),
                objects: 1,
            };
            self.add(&p, EventData::HealthReady(p.clone()))
        }

        fn target(&self) -> &TargetState {
            self.state.target(&"dev/c1".parse().unwrap()).unwrap()
        }

        fn env(&self) -> &EnvironmentState {
            self.state.environment("dev").unwrap()
        }
    }

    #[test]
    fn drifted_objects_keep_the_last_report_until_resolved_and_read_back_from_json() {
        use crate::event::{DriftDetected, DriftResolved};
        let object = ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("default".into()),
            name: "web".into(),
        };
        let detected = |path: &str| DriftDetected {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: "r1".into(),
            object: object.clone(),
            kind: DriftKind::Modified,
            fields: vec![FieldDrift {
                path: path.into(),
                desired: None,
                live: None,
            }],
            changed_by: None,
            resource_version: None,
            ignored: vec![],
        };
        let mut log = Log::new();
        log.applied("r1");
        let (a, b) = (detected("/data/a"), detected("/data/b"));
        log.add(&a, EventData::DriftDetected(a.clone()));
        log.add(&b, EventData::DriftDetected(b.clone()));
        let target = log.state.target(&"dev/c1".parse().unwrap()).unwrap();
        assert_eq!(target.drifted.len(), 1);
        let record = target.drifted.get(&object).unwrap();
        assert_eq!(record.fields[0].path, "/data/b", "the last report is kept");
        let json = serde_json::to_value(&target.drifted).unwrap();
        assert_eq!(json[0]["object"]["name"], "web");
        let back: DriftedObjects = serde_json::from_value(json).unwrap();
        assert_eq!(&back, &target.drifted);

        let resolved = DriftResolved {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: "r1".into(),
            object: object.clone(),
        };
        log.add(&resolved, EventData::DriftResolved(resolved.clone()));
        let target = log.state.target(&"dev/c1".parse().unwrap()).unwrap();
        assert!(target.drifted.is_empty());
    }

    #[test]
    fn the_newest_revision_follows_branch_history_not_the_order_validations_finish() {
        let mut log = Log::new();
        log.validated("newer", 20).validated("older", 10);
        assert_eq!(log.env().newest.as_deref(), Some("newer"));
        assert_eq!(log.env().wanted().unwrap().0, "newer");
        log.validated("newest", 30);
        assert_eq!(log.env().wanted().unwrap().0, "newest");
    }

    #[test]
    fn a_pin_wins_until_it_is_lifted() {
        let mut log = Log::new();
        log.validated("good", 1).validated("bad", 2);
        let pin = EnvironmentPinned {
            environment: "dev".into(),
            revision: "good".into(),
            commit_sequence: 2,
            reason: "r".into(),
            actor: "alice".into(),
        };
        log.add(&pin, EventData::EnvironmentPinned(pin.clone()));
        assert_eq!(log.env().wanted().unwrap().0, "good");
        let other = EnvironmentUnpinned {
            environment: "dev".into(),
            revision: "something-else".into(),
            reason: "r".into(),
            actor: "bob".into(),
        };
        log.add(&other, EventData::EnvironmentUnpinned(other.clone()));
        assert_eq!(
            log.env().wanted().unwrap().0,
            "good",
            "another pin's lifting"
        );
        let unpin = EnvironmentUnpinned {
            revision: "good".into(),
            ..other
        };
        log.add(&unpin, EventData::EnvironmentUnpinned(unpin.clone()));
        assert_eq!(log.env().wanted().unwrap().0, "bad");
    }

    #[test]
    fn health_counts_for_the_deployed_revision_and_rollbacks_go_to_an_earlier_healthy_one() {
        let mut log = Log::new();
        log.applied("r1").healthy("r1").applied("r2");
        assert_eq!(log.target().healthy, None, "r2 not assessed yet");
        log.healthy("r1");
        assert_eq!(
            log.target().healthy,
            None,
            "a late verdict on r1 says nothing of r2"
        );
        log.healthy("r2");
        assert_eq!(log.target().healthy, Some(true));
        assert_eq!(log.target().rollback_candidate().unwrap().revision, "r1");
        log.applied("r3");
        assert_eq!(log.target().rollback_candidate().unwrap().revision, "r2");
    }

    #[test]
    fn a_prune_hold_keeps_the_earlier_bundles_in_the_inventory_until_approved() {
        let mut log = Log::new();
        log.applied("r1").applied("r2");
        let held = PruneHeld {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: "r2".into(),
            would_delete: 3,
            inventory: 4,
            objects: vec![],
            held_bundles: vec!["sha256:r1".into()],
            reason: "r".into(),
        };
        log.add(&held, EventData::PruneHeld(held.clone()));
        assert_eq!(log.target().prune_held.as_ref().unwrap().would_delete, 3);
        assert_eq!(
            log.target().inventory_bundles,
            BTreeSet::from(["sha256:r1".to_string(), "sha256:r2".to_string()])
        );
        let approved = PruneApproved {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: "r2".into(),
            reason: "r".into(),
            approved_by: "alice".into(),
            signature: None,
        };
        log.add(&approved, EventData::PruneApproved(approved.clone()));
        assert!(
            log.target().prune_held.is_some(),
            "a request changes nothing until the applier accepts it"
        );
        let completed = PruneCompleted {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: "r2".into(),
            deleted: 3,
            approved_by: "alice".into(),
        };
        log.add(&completed, EventData::PruneCompleted(completed.clone()));
        assert!(log.target().prune_held.is_none());
        assert_eq!(
            log.target().inventory_bundles,
            BTreeSet::from(["sha256:r2".to_string()])
        );
    }
}
