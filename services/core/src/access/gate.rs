//! The approval gate: whether a revision may go to an environment, decided from the log's
//! approvals and rejections under the access policy at a given time. Pure, so the applier, the
//! CLI and an audit reach the same verdict from the same log.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::policy::AccessPolicy;
use super::statement::{HumanAction, Refusal, Verified};
use crate::event::ApprovalGranted;
use crate::fold::{EnvironmentState, Recorded, ValidatedRevision};

/// May the revision go?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum Verdict {
    /// No approvals needed, or enough of them.
    Open,
    Waiting {
        required: u32,
        have: u32,
    },
    Rejected {
        by: String,
        reason: String,
    },
}

/// An approval that counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counted {
    pub principal: String,
    pub key: String,
    pub event_id: String,
    /// The revision approved (another one when approvals carry over).
    pub revision: String,
}

/// An approval or rejection that does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    pub event_id: String,
    pub actor: String,
    pub reason: String,
}

/// The gate's verdict on a revision, with what it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    pub verdict: Verdict,
    pub required: u32,
    /// Who may approve.
    pub approvers: BTreeSet<String>,
    pub counted: Vec<Counted>,
    pub ignored: Vec<Ignored>,
}

/// Checks one approval of `revision` (validated as `validated`) at `at`: the signature, the
/// signer's right to approve there, the approval's lifetime, the bundle and self-approval.
pub fn check_approval(
    policy: &AccessPolicy,
    approval: &Recorded<ApprovalGranted>,
    validated: &ValidatedRevision,
    carried: bool,
    at: DateTime<Utc>,
) -> Result<Verified, Refusal> {
    let granted = &approval.action;
    let claim = granted.claim();
    let Some(rules) = policy.rules(&granted.environment).approvals else {
        return Err(Refusal::NotAllowed {
            principal: granted.approver.clone(),
            action: claim.action,
            environment: granted.environment.clone(),
            allowed: "nobody: the environment needs no approvals".into(),
        });
    };
    let verified = policy.verify(&claim, at)?;
    if let Some(signature) = &granted.signature {
        let lifetime = chrono::Duration::from_std(rules.valid_for).unwrap_or(chrono::Duration::MAX);
        let ends = signature
            .issued_at
            .checked_add_signed(lifetime)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if ends < at {
            return Err(Refusal::Expired {
                expires_at: ends,
                at,
            });
        }
    }
    // A carried-over approval was of an earlier bundle, by definition.
    if !carried && granted.bundle_digest != validated.bundle_digest {
        return Err(Refusal::WrongBundle {
            revision: granted.revision.clone(),
            given: if granted.bundle_digest.is_empty() {
                "none".into()
            } else {
                granted.bundle_digest.clone()
            },
            validated: validated.bundle_digest.clone(),
        });
    }
    if !rules.self_approval
        && validated
            .author
            .as_ref()
            .is_some_and(|a| a.eq_ignore_ascii_case(&verified.principal))
    {
        return Err(Refusal::SelfApproval {
            principal: verified.principal,
            revision: granted.revision.clone(),
        });
    }
    Ok(verified)
}

/// The gate's verdict on `revision` of `environment` at `at`.
pub fn assess(
    policy: &AccessPolicy,
    environment: &str,
    env: &EnvironmentState,
    revision: &str,
    at: DateTime<Utc>,
) -> Assessment {
    let rules = policy.rules(environment);
    let mut assessment = Assessment {
        verdict: Verdict::Open,
        required: rules.approvals.as_ref().map_or(0, |a| a.required),
        approvers: rules
            .approvals
            .as_ref()
            .map(|a| policy.members(&a.from))
            .unwrap_or_default(),
        counted: Vec::new(),
        ignored: Vec::new(),
    };
    let Some(validated) = env.validated.get(revision) else {
        assessment.verdict = Verdict::Waiting {
            required: assessment.required,
            have: 0,
        };
        return assessment;
    };
    let decisions = env.decisions.get(revision);
    // A valid rejection stops the revision for good: it was valid when it was made.
    for rejection in decisions.iter().flat_map(|d| &d.rejected) {
        let r = &rejection.action;
        let claim = r.claim();
        let checked = policy.verify(&claim, rejection.stored_at).and_then(|v| {
            if r.bundle_digest.is_empty() || r.bundle_digest == validated.bundle_digest {
                Ok(v)
            } else {
                Err(Refusal::WrongBundle {
                    revision: r.revision.clone(),
                    given: r.bundle_digest.clone(),
                    validated: validated.bundle_digest.clone(),
                })
            }
        });
        match checked {
            Ok(v) => {
                assessment.verdict = Verdict::Rejected {
                    by: v.principal,
                    reason: r.reason.clone(),
                };
                return assessment;
            }
            Err(e) => assessment.ignored.push(Ignored {
                event_id: rejection.event_id.clone(),
                actor: r.rejected_by.clone(),
                reason: e.to_string(),
            }),
        }
    }
    let Some(rules) = rules.approvals else {
        return assessment;
    };
    let mut candidates: Vec<(&Recorded<ApprovalGranted>, bool)> = decisions
        .iter()
        .flat_map(|d| &d.granted)
        .map(|a| (a, false))
        .collect();
    if rules.carry_over {
        for (other, decisions) in &env.decisions {
            let earlier = env
                .validated
                .get(other)
                .is_some_and(|v| v.commit_sequence < validated.commit_sequence);
            if other != revision && earlier {
                candidates.extend(decisions.granted.iter().map(|a| (a, true)));
            }
        }
    }
    let mut principals = BTreeSet::new();
    for (approval, carried) in candidates {
        match check_approval(policy, approval, validated, carried, at) {
            Ok(v) => {
                if principals.insert(v.principal.clone()) {
                    assessment.counted.push(Counted {
                        principal: v.principal,
                        key: v.key,
                        event_id: approval.event_id.clone(),
                        revision: approval.action.revision.clone(),
                    });
                }
            }
            Err(e) => assessment.ignored.push(Ignored {
                event_id: approval.event_id.clone(),
                actor: approval.action.approver.clone(),
                reason: e.to_string(),
            }),
        }
    }
    let have = u32::try_from(principals.len()).unwrap_or(u32::MAX);
    if have < rules.required {
        assessment.verdict = Verdict::Waiting {
            required: rules.required,
            have,
        };
    }
    assessment
}
