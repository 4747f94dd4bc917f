//! Access control: who may do what to which environment. People sign their actions (approve,
//! reject, roll back, unpin, allow a held prune) with their SSH or OpenPGP keys; the access
//! policy names groups of people and, per environment, who may act and how many approvals a
//! revision needs; the gate decides from the log whether a revision may go. Verification is
//! pure (no clock, no I/O beyond loading the policy), so the applier decides with it and
//! `configsync audit verify-signatures` re-checks any past decision the same way.

mod gate;
pub mod openpgp;
mod policy;
mod signers;
mod statement;

pub use gate::{Assessment, Counted, Ignored, Verdict, assess, check_approval};
pub use policy::{
    AccessPolicy, AccessPolicyFile, ApprovalRules, EnvironmentRules, PolicyError, Scope,
    SignedCommit,
};
pub use signers::{AllowedSigner, SignersError, SshSigners};
pub use statement::{Action, Claim, HumanAction, NAMESPACE, Refusal, Statement, Verified};
