//! Fights with other controllers: an HPA that scales a Deployment, an operator that owns a
//! field, undo every repair, and repairing again would go on for ever. A named fold over the
//! target's remediation events counts the repairs of each object within a window; at the
//! threshold the remediator records `remediation.conflict` (naming the other manager) and stops
//! repairing that object at that revision. A new revision, or the ignore rules of the drift
//! issue, end the stand-off.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use configsync_core::event::{EventData, ObjectRef, Received};
use configsync_core::log::Fold;

/// When repairs of one object count as a fight.
#[derive(Debug, Clone, Copy)]
pub struct FightRule {
    /// Repairs within `window` that make a fight.
    pub threshold: u32,
    pub window: Duration,
}

/// What the log says about one object's repairs at one revision.
#[derive(Debug, Default)]
struct ObjectRepairs {
    /// When each repair succeeded, oldest first.
    repaired_at: Vec<DateTime<Utc>>,
    /// A conflict was recorded: no more repairs at this revision.
    conflict: bool,
}

/// The fold: each object's repairs and conflicts, by revision.
#[derive(Debug, Default)]
pub struct Repairs {
    by_object: HashMap<(String, ObjectRef), ObjectRepairs>,
}

/// The verdict for a new drift of an object.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Repair,
    /// The repairs within the window reached the threshold: record the conflict, stop.
    Fight {
        repairs: u32,
    },
    /// A conflict is already recorded at this revision: leave the object alone.
    AlreadyInConflict,
}

impl Fold for Repairs {
    fn apply(&mut self, event: &Received) {
        match &event.data {
            EventData::RemediationSucceeded(r) => self
                .by_object
                .entry((r.revision.clone(), r.object.clone()))
                .or_default()
                .repaired_at
                .push(event.stored_at),
            EventData::RemediationConflict(c) => {
                self.by_object
                    .entry((c.revision.clone(), c.object.clone()))
                    .or_default()
                    .conflict = true;
            }
            _ => {}
        }
    }
}

impl Repairs {
    /// Whether to repair `object` (drifted now, at `revision`) under `rule`.
    pub fn verdict(
        &self,
        revision: &str,
        object: &ObjectRef,
        now: DateTime<Utc>,
        rule: FightRule,
    ) -> Verdict {
        let Some(repairs) = self.by_object.get(&(revision.to_string(), object.clone())) else {
            return Verdict::Repair;
        };
        if repairs.conflict {
            return Verdict::AlreadyInConflict;
        }
        let window = chrono::Duration::from_std(rule.window).unwrap_or(chrono::Duration::MAX);
        let recent = repairs
            .repaired_at
            .iter()
            .filter(|t| now.signed_duration_since(**t) <= window)
            .count() as u32;
        if recent >= rule.threshold {
            Verdict::Fight { repairs: recent }
        } else {
            Verdict::Repair
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use configsync_core::event::{Outgoing, RemediationConflict, RemediationSucceeded};

    fn object() -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        }
    }

    fn received(data: EventData, at: DateTime<Utc>, seq: u64) -> Received {
        let event = match &data {
            EventData::RemediationSucceeded(p) => Outgoing::builder(p),
            _ => unreachable!(),
        }
        .cause(seq.to_string())
        .build("configsync://test/1")
        .unwrap();
        Received {
            event: event.event().clone(),
            data,
            subject: String::new(),
            stream_sequence: seq,
            stored_at: at,
            delivered: 1,
        }
    }

    fn repaired(revision: &str, at: DateTime<Utc>, seq: u64) -> Received {
        received(
            EventData::RemediationSucceeded(RemediationSucceeded {
                environment: "dev".into(),
                cluster: "c1".into(),
                revision: revision.into(),
                object: object(),
                drift_event: format!("d{seq}"),
            }),
            at,
            seq,
        )
    }

    const RULE: FightRule = FightRule {
        threshold: 3,
        window: Duration::from_secs(600),
    };

    #[test]
    fn repairs_within_the_window_make_a_fight_and_old_or_other_revisions_do_not() {
        let now = Utc::now();
        let mut repairs = Repairs::default();
        repairs.apply(&repaired("r1", now - chrono::Duration::minutes(30), 1));
        repairs.apply(&repaired("r1", now - chrono::Duration::minutes(2), 2));
        repairs.apply(&repaired("r1", now - chrono::Duration::minutes(1), 3));
        assert_eq!(repairs.verdict("r1", &object(), now, RULE), Verdict::Repair);
        repairs.apply(&repaired("r1", now, 4));
        assert_eq!(
            repairs.verdict("r1", &object(), now, RULE),
            Verdict::Fight { repairs: 3 }
        );
        assert_eq!(repairs.verdict("r2", &object(), now, RULE), Verdict::Repair);
    }

    #[test]
    fn a_recorded_conflict_stops_repairs_at_that_revision() {
        let conflict = RemediationConflict {
            environment: "dev".into(),
            cluster: "c1".into(),
            revision: "r1".into(),
            object: object(),
            other_manager: "hpa".into(),
            occurrences: 3,
            window_seconds: 600,
        };
        let mut repairs = Repairs::default();
        let mut event = repaired("r1", Utc::now(), 1);
        event.data = EventData::RemediationConflict(conflict);
        repairs.apply(&event);
        assert_eq!(
            repairs.verdict("r1", &object(), Utc::now(), RULE),
            Verdict::AlreadyInConflict
        );
    }
}
