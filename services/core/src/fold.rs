//! The fold functions, written once: the state of every source, environment and target as a
//! pure function of the log. Services rebuild their state with them; `configsync replay` uses
//! the same code to show the state at any sequence or time.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::event::{EventData, ObjectRef, Received};
use crate::log::Fold;

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

/// One environment's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentState {
    pub latest_validation: Option<Validation>,
    /// Revisions waiting for approvals, with the distinct approvers so far.
    pub approvals: BTreeMap<String, BTreeSet<String>>,
}

/// What happened last to a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastApply {
    Started { revision: String },
    Succeeded { revision: String },
    Failed { revision: String, reason: String },
}

/// One target's (environment + cluster) state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// The revision last applied successfully.
    pub deployed_revision: Option<String>,
    pub deployed_bundle: Option<String>,
    /// The objects applied by the deployed revision.
    pub inventory: BTreeSet<ObjectRef>,
    pub last_apply: Option<LastApply>,
    pub healthy: Option<bool>,
    /// Objects currently drifted from their desired state.
    pub drifted: BTreeSet<ObjectRef>,
    /// The sequence of the last event about this target.
    pub sequence: u64,
}

/// The whole log's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Keyed by `<repository>#<branch>`.
    pub sources: BTreeMap<String, SourceState>,
    pub environments: BTreeMap<String, EnvironmentState>,
    /// Keyed by `<environment>/<cluster>`.
    pub targets: BTreeMap<String, TargetState>,
    pub events: u64,
    pub dead_letters: u64,
    /// The sequence of the last event folded.
    pub sequence: u64,
}

impl LogState {
    /// The state of one target, if any event concerned it.
    pub fn target(&self, environment: &str, cluster: &str) -> Option<&TargetState> {
        self.targets.get(&format!("{environment}/{cluster}"))
    }

    fn target_mut(&mut self, environment: &str, cluster: &str, sequence: u64) -> &mut TargetState {
        let target = self
            .targets
            .entry(format!("{environment}/{cluster}"))
            .or_default();
        target.sequence = sequence;
        target
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
                let key = format!("{}#{}", c.repository, c.branch);
                self.sources.insert(
                    key,
                    SourceState {
                        last_sha: c.sha.clone(),
                        sequence: seq,
                    },
                );
            }
            EventData::SourceRewritten(r) => {
                let key = format!("{}#{}", r.repository, r.branch);
                self.sources.insert(
                    key,
                    SourceState {
                        last_sha: r.new_sha.clone(),
                        sequence: seq,
                    },
                );
            }
            EventData::ValidationPassed(v) => {
                self.environments
                    .entry(v.environment.clone())
                    .or_default()
                    .latest_validation = Some(Validation::Passed {
                    revision: v.revision.clone(),
                    bundle_digest: v.bundle_digest.clone(),
                });
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
                self.environments
                    .entry(a.environment.clone())
                    .or_default()
                    .approvals
                    .entry(a.revision.clone())
                    .or_default();
            }
            EventData::ApprovalGranted(a) => {
                self.environments
                    .entry(a.environment.clone())
                    .or_default()
                    .approvals
                    .entry(a.revision.clone())
                    .or_default()
                    .insert(a.approver.clone());
            }
            EventData::ApplyStarted(a) => {
                self.target_mut(&a.environment, &a.cluster, seq).last_apply =
                    Some(LastApply::Started {
                        revision: a.revision.clone(),
                    });
            }
            EventData::ApplySucceeded(a) => {
                let t = self.target_mut(&a.environment, &a.cluster, seq);
                t.deployed_revision = Some(a.revision.clone());
                t.deployed_bundle = Some(a.bundle_digest.clone());
                t.inventory = a.results.iter().map(|r| r.object.clone()).collect();
                t.last_apply = Some(LastApply::Succeeded {
                    revision: a.revision.clone(),
                });
                t.healthy = None;
            }
            EventData::ApplyFailed(a) => {
                self.target_mut(&a.environment, &a.cluster, seq).last_apply =
                    Some(LastApply::Failed {
                        revision: a.revision.clone(),
                        reason: a.reason.clone(),
                    });
            }
            EventData::ResourcePruned(p) => {
                self.target_mut(&p.environment, &p.cluster, seq)
                    .inventory
                    .remove(&p.object);
            }
            EventData::HealthReady(h) => {
                self.target_mut(&h.environment, &h.cluster, seq).healthy = Some(true)
            }
            EventData::HealthDegraded(h) => {
                self.target_mut(&h.environment, &h.cluster, seq).healthy = Some(false)
            }
            EventData::DriftDetected(d) => {
                self.target_mut(&d.environment, &d.cluster, seq)
                    .drifted
                    .insert(d.object.clone());
            }
            EventData::DriftResolved(d) => {
                self.target_mut(&d.environment, &d.cluster, seq)
                    .drifted
                    .remove(&d.object);
            }
            EventData::DeadLetterRecorded(_) => self.dead_letters += 1,
            EventData::SourceFailed(_)
            | EventData::RollbackRequested(_)
            | EventData::RemediationStarted(_)
            | EventData::RemediationSucceeded(_)
            | EventData::RemediationFailed(_)
            | EventData::RemediationConflict(_)
            | EventData::AuditCheckpoint(_) => {}
        }
    }
}
