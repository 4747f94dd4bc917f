//! What a person signs: the canonical statement of a human action, built the same way by the
//! CLI that signs it and by whoever verifies it, from the fields of the event that carries it.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{
    ActionSignature, ApprovalGranted, ApprovalRejected, EventData, PruneApproved,
    RollbackRequested, UnpinRequested,
};

/// The sshsig namespace of ConfigSync's signatures (`ssh-keygen -Y sign -n configsync`): a
/// signature made for Git commits or files cannot be replayed as an approval.
pub const NAMESPACE: &str = "configsync";

/// The largest armored signature accepted (an RSA-16384 sshsig is about 3 KiB).
const MAX_SIGNATURE: usize = 16 * 1024;

/// A human action.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Approve,
    Reject,
    Rollback,
    Unpin,
    /// Allow the deletions a prune guard held back.
    Prune,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Rollback => "rollback",
            Self::Unpin => "unpin",
            Self::Prune => "prune",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a person signs. Every field that decides what the action does is in it, so an altered
/// revision, environment, bundle or expiry breaks the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub action: Action,
    pub environment: String,
    pub cluster: Option<String>,
    pub revision: String,
    pub bundle_digest: Option<String>,
    pub actor: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Statement {
    /// The exact bytes signed: one `key: value` line per field, in a fixed order, `-` for an
    /// absent value, times in RFC 3339 UTC to the second.
    pub fn canonical(&self) -> String {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        format!(
            "configsync-action: v1\naction: {}\nenvironment: {}\ncluster: {}\nrevision: {}\nbundle: {}\nactor: {}\nissued: {}\nexpires: {}\n",
            self.action,
            self.environment,
            self.cluster.as_deref().unwrap_or("-"),
            self.revision,
            self.bundle_digest.as_deref().unwrap_or("-"),
            self.actor,
            time(&self.issued_at),
            time(&self.expires_at),
        )
    }

    /// A field with a line break or control character could make two statements read alike.
    fn well_formed(&self) -> bool {
        [
            Some(self.environment.as_str()),
            self.cluster.as_deref(),
            Some(self.revision.as_str()),
            self.bundle_digest.as_deref(),
            Some(self.actor.as_str()),
        ]
        .into_iter()
        .flatten()
        .all(|v| !v.is_empty() && !v.chars().any(char::is_control))
    }
}

/// A human action as an event carries it: what it claims, and the signature if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub action: Action,
    pub environment: String,
    pub cluster: Option<String>,
    pub revision: String,
    pub bundle_digest: Option<String>,
    pub actor: String,
    pub signature: Option<ActionSignature>,
}

/// An event payload that is a person's action, signed or not.
pub trait HumanAction: crate::event::EventPayload + Clone {
    /// What it claims.
    fn claim(&self) -> Claim;
    /// Attaches the signature over [`Claim::statement_at`].
    fn set_signature(&mut self, signature: ActionSignature);
}

macro_rules! human_action {
    ($ty:ty, |$p:ident| $claim:expr) => {
        impl HumanAction for $ty {
            fn claim(&self) -> Claim {
                let $p = self;
                $claim
            }
            fn set_signature(&mut self, signature: ActionSignature) {
                self.signature = Some(signature);
            }
        }
    };
}

fn digest(d: &str) -> Option<String> {
    (!d.is_empty()).then(|| d.to_string())
}

human_action!(ApprovalGranted, |a| Claim {
    action: Action::Approve,
    environment: a.environment.clone(),
    cluster: None,
    revision: a.revision.clone(),
    bundle_digest: digest(&a.bundle_digest),
    actor: a.approver.clone(),
    signature: a.signature.clone(),
});
human_action!(ApprovalRejected, |r| Claim {
    action: Action::Reject,
    environment: r.environment.clone(),
    cluster: None,
    revision: r.revision.clone(),
    bundle_digest: digest(&r.bundle_digest),
    actor: r.rejected_by.clone(),
    signature: r.signature.clone(),
});
human_action!(RollbackRequested, |r| Claim {
    action: Action::Rollback,
    environment: r.environment.clone(),
    cluster: r.cluster.clone(),
    revision: r.to_revision.clone(),
    bundle_digest: None,
    actor: r.requested_by.clone(),
    signature: r.signature.clone(),
});
human_action!(UnpinRequested, |u| Claim {
    action: Action::Unpin,
    environment: u.environment.clone(),
    cluster: None,
    revision: u.revision.clone(),
    bundle_digest: None,
    actor: u.requested_by.clone(),
    signature: u.signature.clone(),
});
human_action!(PruneApproved, |p| Claim {
    action: Action::Prune,
    environment: p.environment.clone(),
    cluster: Some(p.cluster.clone()),
    revision: p.revision.clone(),
    bundle_digest: None,
    actor: p.approved_by.clone(),
    signature: p.signature.clone(),
});

impl Claim {
    /// The human action an event carries, if it is one.
    pub fn of(data: &EventData) -> Option<Self> {
        Some(match data {
            EventData::ApprovalGranted(a) => a.claim(),
            EventData::ApprovalRejected(r) => r.claim(),
            EventData::RollbackRequested(r) => r.claim(),
            EventData::UnpinRequested(u) => u.claim(),
            EventData::PruneApproved(p) => p.claim(),
            _ => return None,
        })
    }

    /// The statement its signature must cover (the signature's own times included).
    pub fn statement(&self, signature: &ActionSignature) -> Statement {
        self.statement_at(signature.issued_at, signature.expires_at)
    }

    /// The statement to sign for validity from `issued_at` to `expires_at`.
    pub fn statement_at(&self, issued_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Statement {
        Statement {
            action: self.action,
            environment: self.environment.clone(),
            cluster: self.cluster.clone(),
            revision: self.revision.clone(),
            bundle_digest: self.bundle_digest.clone(),
            actor: self.actor.clone(),
            issued_at,
            expires_at,
        }
    }
}

/// Who a good signature is from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    /// The principal (e-mail) the signing key is allowed for.
    pub principal: String,
    /// The key's fingerprint (`SHA256:...` for SSH keys, the OpenPGP fingerprint otherwise).
    pub key: String,
}

/// Why a human action does nothing. Each reason says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unsigned: the access policy requires a signature (configsync {0} --key ...)")]
    Unsigned(Action),
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("malformed action: a field is empty or holds a control character")]
    MalformedStatement,
    #[error(
        "signature made for namespace {0:?}, not the one expected ({NAMESPACE:?} for people's actions: ssh-keygen -Y sign -n {NAMESPACE}; \"git\" for commits)"
    )]
    WrongNamespace(String),
    #[error("signed with key {0}, which the access policy does not know")]
    UnknownKey(String),
    #[error("signed with key {key}, which the access policy allows for {allowed}, not {principal}")]
    KeyNotForPrincipal {
        key: String,
        principal: String,
        allowed: String,
    },
    #[error(
        "key {key} of {principal} is not valid at {at} (allowed_signers valid-after/valid-before)"
    )]
    KeyNotValid {
        key: String,
        principal: String,
        at: DateTime<Utc>,
    },
    #[error("bad signature: it does not cover this action (altered, or signed for something else)")]
    BadSignature,
    #[error("OpenPGP signatures cannot be checked: {0}")]
    OpenPgpUnavailable(String),
    #[error("expired at {expires_at} (checked at {at})")]
    Expired {
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[error("signed in the future ({issued_at}, checked at {at}): more clock skew than allowed")]
    FromTheFuture {
        issued_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    #[error("{principal} may not {action} in environment {environment} (allowed: {allowed})")]
    NotAllowed {
        principal: String,
        action: Action,
        environment: String,
        allowed: String,
    },
    #[error(
        "{principal} is the author of {revision} and may not approve it (the access policy forbids self-approval)"
    )]
    SelfApproval { principal: String, revision: String },
    #[error("revision {revision} was never validated for environment {environment}")]
    UnknownRevision {
        environment: String,
        revision: String,
    },
    #[error("the action names bundle {given}, but {revision} was validated as {validated}")]
    WrongBundle {
        revision: String,
        given: String,
        validated: String,
    },
    #[error("environment {0} is not in the access policy and has no clusters here")]
    UnknownEnvironment(String),
}

impl Refusal {
    /// Checks the shape of an armored signature before any parsing.
    pub(crate) fn check_size(armored: &str) -> Result<(), Refusal> {
        if armored.len() > MAX_SIGNATURE {
            return Err(Refusal::Malformed(format!(
                "{} bytes, more than the {MAX_SIGNATURE} a signature can take",
                armored.len()
            )));
        }
        Ok(())
    }
}

/// Checks a statement is well formed and within its validity at `at`, allowing `skew` of clock
/// difference between the signer and the checker.
pub(crate) fn check_times(
    statement: &Statement,
    at: DateTime<Utc>,
    skew: chrono::Duration,
) -> Result<(), Refusal> {
    if !statement.well_formed() {
        return Err(Refusal::MalformedStatement);
    }
    if statement.issued_at > at + skew {
        return Err(Refusal::FromTheFuture {
            issued_at: statement.issued_at,
            at,
        });
    }
    if statement.expires_at + skew < at {
        return Err(Refusal::Expired {
            expires_at: statement.expires_at,
            at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement() -> Statement {
        Statement {
            action: Action::Approve,
            environment: "prod".into(),
            cluster: None,
            revision: "abc123".into(),
            bundle_digest: Some("sha256:00".into()),
            actor: "alice@example.com".into(),
            issued_at: "2026-12-03T10:00:00.123Z".parse().unwrap(),
            expires_at: "2026-12-04T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn the_canonical_form_is_fixed_line_by_line() {
        assert_eq!(
            statement().canonical(),
            "configsync-action: v1\naction: approve\nenvironment: prod\ncluster: -\nrevision: abc123\nbundle: sha256:00\nactor: alice@example.com\nissued: 2026-12-03T10:00:00Z\nexpires: 2026-12-04T10:00:00Z\n"
        );
    }

    #[test]
    fn a_line_break_in_a_field_is_malformed() {
        let mut s = statement();
        s.actor = "alice@example.com\nrevision: other".into();
        let at = s.issued_at;
        assert_eq!(
            check_times(&s, at, chrono::Duration::zero()),
            Err(Refusal::MalformedStatement)
        );
    }

    #[test]
    fn times_are_checked_with_the_allowed_skew() {
        let s = statement();
        let skew = chrono::Duration::minutes(5);
        assert!(check_times(&s, s.issued_at - chrono::Duration::minutes(4), skew).is_ok());
        assert!(matches!(
            check_times(&s, s.issued_at - chrono::Duration::minutes(6), skew),
            Err(Refusal::FromTheFuture { .. })
        ));
        assert!(check_times(&s, s.expires_at + chrono::Duration::minutes(4), skew).is_ok());
        assert!(matches!(
            check_times(&s, s.expires_at + chrono::Duration::minutes(6), skew),
            Err(Refusal::Expired { .. })
        ));
    }
}
