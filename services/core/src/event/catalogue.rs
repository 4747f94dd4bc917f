//! The catalogue of event payloads: one typed struct per versioned CloudEvents type.
//!
//! Types only evolve by adding a new version (`...v2`) beside the old one; stored events are
//! never rewritten. The one compatible change made in place is a new *optional* field (with a
//! serde default), which every stored event still decodes into. Every struct here has a JSON
//! Schema in `schemas/` generated from it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{EventPayload, Routing};

/// A Kubernetes object named by group/version, kind, namespace and name.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    pub kind: String,
    /// Namespace, absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

/// One trailer of a commit message (`Signed-off-by: Alice <alice@example.com>`), as `git
/// interpret-trailers --parse` reads the message's last paragraph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trailer {
    /// The token before the colon, as written (`Signed-off-by`, `Change-Id`, ...).
    pub token: String,
    /// The value after it, continuation lines joined (cut at 1 KiB).
    pub value: String,
}

/// A person as Git records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Person {
    pub name: String,
    pub email: String,
    pub time: DateTime<Utc>,
}

/// The changed paths of one application directory (`configs/<env>/<app>/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppChange {
    pub app: String,
    pub paths: Vec<String>,
}

/// The changes of one environment in one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentChange {
    pub environment: String,
    pub apps: Vec<AppChange>,
}

/// A new commit on a tracked branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitDetected {
    /// The remote as configured, with any credentials removed.
    pub repository: String,
    pub branch: String,
    /// The name of the source (as configured: `--source NAME=...`) that followed it; also the
    /// `gitsource` extension attribute. Absent in events of versions before several sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The sub-directory of the repository the source follows, whose `configs/` and
    /// `policies/` count; the changed paths below are relative to it. Absent: the whole
    /// repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub sha: String,
    pub parents: Vec<String>,
    pub author: Person,
    pub committer: Person,
    pub message: String,
    /// Whether the commit carries a signature.
    pub signed: bool,
    /// What checking that signature against the access policy's keys found (absent when the
    /// commit is unsigned). Boxed to keep `EventData` small: most commits have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Box<CommitSignature>>,
    /// The message's trailers (`Signed-off-by`, `Change-Id`, `Co-authored-by`, ...), in
    /// order, at most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trailers: Vec<Trailer>,
    /// Changed paths grouped by environment and app.
    pub environments: Vec<EnvironmentChange>,
    /// Changed paths outside `configs/<env>/<app>/`.
    #[serde(default)]
    pub other_paths: Vec<String>,
    /// Every environment is affected, whatever the changed paths say: the first commit seen
    /// on the branch, or its tip after a rewrite (what is deployed may differ from it anywhere).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_tree: bool,
}

/// The source could not be read (unreachable remote, not a repository, bad credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceFailed {
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The source's name (see `commit.detected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The sub-directory the source follows (see `commit.detected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub reason: String,
    /// True when a later attempt may succeed.
    pub transient: bool,
}

/// A tracked branch moved to a commit that does not descend from the last one seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRewritten {
    pub repository: String,
    pub branch: String,
    /// The source's name (see `commit.detected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The sub-directory the source follows (see `commit.detected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub previous_sha: String,
    pub new_sha: String,
}

/// How serious a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem found in a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Finding {
    pub severity: Severity,
    /// A stable rule id, e.g. `yaml.syntax` or `schema.unknown-field`.
    pub rule: String,
    pub message: String,
    /// Path relative to the repository root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// JSON path inside the object, e.g. `.spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl Finding {
    /// An error about `file` (relative to the repository root), at `line` when known; the
    /// object, column and path are added by those who know them.
    pub fn file_error(
        rule: impl Into<String>,
        file: impl Into<String>,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            rule: rule.into(),
            message: message.into(),
            file: Some(file.into()),
            line,
            column: None,
            object: None,
            path: None,
        }
    }
}

/// A commit's signature, as the git-watcher checked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitSignature {
    /// `ssh` or `openpgp`; absent when the signature could not even be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SignatureFormat>,
    /// Whether a key of the access policy made it, for the committer's e-mail.
    pub verified: bool,
    /// The key's fingerprint, when verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The principal (e-mail) the key is allowed for, when verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Why it is not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An environment's manifests at a revision passed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationPassed {
    pub environment: String,
    pub revision: String,
    /// SHA-256 of the rendered bundle in the object store (`sha256:<hex>`).
    pub bundle_digest: String,
    pub objects: Vec<ObjectRef>,
    /// Warnings that did not block the change.
    #[serde(default)]
    pub warnings: Vec<Finding>,
    /// The stream sequence of the `commit.detected` this validation answers. The git-watcher
    /// announces a branch's commits oldest first (first-parent), so this orders revisions by
    /// the branch's history whatever order their validations finish in. 0: unknown.
    #[serde(default)]
    pub commit_sequence: u64,
    /// The commit's author (e-mail), who may not approve their own change unless the access
    /// policy allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// An environment's manifests at a revision failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidationFailed {
    pub environment: String,
    pub revision: String,
    pub findings: Vec<Finding>,
}

/// How a person signed an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureFormat {
    /// `ssh-keygen -Y sign -n configsync` (PROTOCOL.sshsig), checked against allowed_signers.
    Ssh,
    /// A detached ASCII-armored OpenPGP signature (`gpg --detach-sign --armor`).
    Openpgp,
}

/// A person's detached signature over the canonical statement of a human action (the action,
/// environment, cluster, revision, bundle, actor and validity; see
/// `configsync_core::access::Statement`). It travels in the log, so any past decision can be
/// verified again years later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionSignature {
    pub format: SignatureFormat,
    /// The armored signature.
    pub signature: String,
    /// When the person signed (part of the signed statement).
    pub issued_at: DateTime<Utc>,
    /// Until when the action may be acted on (part of the signed statement).
    pub expires_at: DateTime<Utc>,
}

/// A change to an environment waits for approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRequired {
    pub environment: String,
    pub revision: String,
    /// How many distinct people must approve.
    pub required: u32,
    pub reason: String,
    /// The bundle the approvals must name.
    #[serde(default)]
    pub bundle_digest: String,
    /// Who may approve (principals, from the access policy's groups).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// The revision's author, whose own approval does not count (unless the policy allows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// How long an approval stays valid after it is signed, in seconds.
    #[serde(default)]
    pub approval_valid_for_seconds: u64,
}

/// A person approved a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalGranted {
    pub environment: String,
    pub revision: String,
    pub approver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The bundle approved: an approval is of exactly what was validated.
    #[serde(default)]
    pub bundle_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ActionSignature>,
}

/// A person rejected a change: the revision is not deployed to the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRejected {
    pub environment: String,
    pub revision: String,
    #[serde(default)]
    pub bundle_digest: String,
    pub rejected_by: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ActionSignature>,
}

/// The applier ignored a person's action (an approval, rollback, unpin, ...) and why: no or a
/// bad signature, an expired one, someone the access policy does not allow, an unknown
/// revision. The action stays in the log; this records that it did nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActionRefused {
    pub environment: String,
    pub revision: String,
    /// `approve`, `reject`, `rollback`, `unpin` or `prune`.
    pub action: String,
    /// Who the action claims to be from.
    pub actor: String,
    /// The id of the refused event.
    pub refused_event: String,
    pub reason: String,
}

/// Someone asked to return an environment to an earlier revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequested {
    pub environment: String,
    pub to_revision: String,
    pub reason: String,
    pub requested_by: String,
    /// Only this cluster of the environment; absent: every cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ActionSignature>,
}

/// A person asked to lift an environment's pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnpinRequested {
    pub environment: String,
    /// The revision the environment is pinned to.
    pub revision: String,
    pub reason: String,
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ActionSignature>,
}

/// An environment is held at a revision (after a rollback): newer validations of commits that
/// were already known do not replace it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentPinned {
    pub environment: String,
    pub revision: String,
    /// Commits announced up to this stream sequence stay behind the pin; a later commit lifts it.
    pub commit_sequence: u64,
    pub reason: String,
    pub actor: String,
}

/// An environment's pin was lifted (a newer commit, or `configsync unpin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentUnpinned {
    pub environment: String,
    /// The revision the environment was pinned to.
    pub revision: String,
    pub reason: String,
    pub actor: String,
}

/// A validated revision is not applied to a target (or to any cluster of an environment) yet,
/// and why: no cluster is configured, the environment is pinned, a revision it depends on is
/// not healthy yet. Nothing is dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutWaiting {
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub revision: String,
    pub reason: String,
}

/// The applier began applying a bundle to one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyStarted {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub bundle_digest: String,
    pub objects: u32,
}

/// What the applier did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObjectAction {
    Created,
    Configured,
    Unchanged,
    Failed,
}

/// The result of applying one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectResult {
    pub object: ObjectRef,
    pub action: ObjectAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How many objects an apply created, changed, left alone and pruned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyCounts {
    pub created: u32,
    pub configured: u32,
    pub unchanged: u32,
    pub pruned: u32,
}

/// A bundle is applied to one cluster.
///
/// `results` lists the objects that were written (created or configured), at most
/// [`ApplySucceeded::MAX_RESULTS`] of them, so that the event stays far below the stream's
/// message limit for any size of revision; `counts` has the totals and the bundle (by digest)
/// has every object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplySucceeded {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub bundle_digest: String,
    pub results: Vec<ObjectResult>,
    pub duration_ms: u64,
    #[serde(default)]
    pub counts: ApplyCounts,
    /// True when more objects were written than `results` lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub results_truncated: bool,
}

impl ApplySucceeded {
    /// The most objects one event lists.
    pub const MAX_RESULTS: usize = 1000;
}

/// Applying a bundle to one cluster failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyFailed {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub bundle_digest: String,
    pub reason: String,
    /// True when the applier will retry (e.g. the cluster is unreachable).
    pub transient: bool,
    #[serde(default)]
    pub results: Vec<ObjectResult>,
}

/// An object that left the configuration was deleted from a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourcePruned {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub object: ObjectRef,
}

/// The prune guard held back deletions: the revision would delete all of the target's objects,
/// or more than the allowed share. Nothing is deleted until a person approves
/// (`prune.approved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneHeld {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    /// How many objects would be deleted, of how many the target had.
    pub would_delete: u32,
    pub inventory: u32,
    /// The first of them (at most 100).
    pub objects: Vec<ObjectRef>,
    /// The bundles (by digest) whose objects are held: the target's earlier revisions.
    pub held_bundles: Vec<String>,
    pub reason: String,
}

/// A person allowed the held deletions of a revision on a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneApproved {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub reason: String,
    pub approved_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ActionSignature>,
}

/// The deletions a prune guard held back on a target were carried out, after an accepted
/// `prune.approved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PruneCompleted {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub deleted: u32,
    pub approved_by: String,
}

/// Every applied object of a revision is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthReady {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub objects: u32,
}

/// One object that is not healthy, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnhealthyObject {
    pub object: ObjectRef,
    pub reason: String,
}

/// Some applied objects did not become healthy in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthDegraded {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub unhealthy: Vec<UnhealthyObject>,
}

/// One field whose live value differs from the desired one.
///
/// Values of Secret data, and values whose field or variable name says credential (`password`,
/// `apiKey`, a container's `DB_PASSWORD`), are never carried: they are replaced by
/// `"<redacted>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDrift {
    /// JSON pointer (RFC 6901) into the object, e.g. `/data/color`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<serde_json::Value>,
}

/// How a managed object drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    Modified,
    Deleted,
}

/// A managed object differs from its desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftDetected {
    pub environment: String,
    pub cluster: String,
    /// The revision whose desired state was compared.
    pub revision: String,
    pub object: ObjectRef,
    pub kind: DriftKind,
    pub fields: Vec<FieldDrift>,
    /// The field manager that made the change, from `metadata.managedFields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    /// The live object's resourceVersion when the drift was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Differing fields an ignore rule covers (`configsync_core::ignore`): not in `fields`,
    /// and left alone by a repair.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<IgnoredField>,
}

/// A differing field left alone, and the rule that says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoredField {
    /// JSON pointer (RFC 6901) into the object.
    pub path: String,
    /// The rule, as written (`/spec/replicas`, `manager:NAME`).
    pub rule: String,
}

/// A drifted object is back at its desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftResolved {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub object: ObjectRef,
}

/// What the remediator does about drift in an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemediationPolicy {
    Auto,
    Alert,
    Off,
}

/// The remediator began repairing a drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemediationStarted {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub object: ObjectRef,
    pub policy: RemediationPolicy,
    /// The id of the drift-detected event being handled.
    pub drift_event: String,
}

/// A drift was repaired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemediationSucceeded {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub object: ObjectRef,
    pub drift_event: String,
}

/// Repairing a drift failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemediationFailed {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub object: ObjectRef,
    pub drift_event: String,
    pub reason: String,
    pub transient: bool,
}

/// Another controller keeps changing an object back: repairing it again would fight it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemediationConflict {
    pub environment: String,
    pub cluster: String,
    pub revision: String,
    pub object: ObjectRef,
    /// The field manager that keeps reverting the repair.
    pub other_manager: String,
    /// Repairs undone within the window.
    pub occurrences: u32,
    pub window_seconds: u64,
}

/// The auditor vouches for the log up to a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditCheckpoint {
    pub stream_sequence: u64,
    pub events_indexed: u64,
    /// A digest over every event up to `streamSequence` (`sha256:<hex>`).
    pub chain_digest: String,
}

/// A message that a consumer could not process, kept with the reason instead of retried forever.
///
/// The original message stays in the stream at `streamSequence` (the stream denies deletes), so
/// this record carries only an excerpt of its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetterRecorded {
    /// The durable consumer that gave up on the message.
    pub consumer: String,
    pub reason: String,
    pub original_subject: String,
    pub stream_sequence: u64,
    pub delivery_count: u64,
    /// The original headers (values longer than 1 KiB are cut).
    pub headers: BTreeMap<String, String>,
    pub payload_size: u64,
    /// `sha256:<hex>` of the original payload.
    pub payload_digest: String,
    /// The first bytes of the original payload, base64-encoded.
    pub payload_excerpt: String,
}

/// The emitter of dead-letter records: every consumer, each under `configsync.dlq.<its name>`.
pub const ANY_CONSUMER: &str = "any consumer";

/// Declares each payload's type, emitter, description and routing in one place.
macro_rules! payloads {
    ($($ty:ident => $name:literal by [$($emitter:expr),+], $desc:literal, |$p:ident| $routing:expr;)*) => {
        $(
            impl EventPayload for $ty {
                const TYPE: &'static str = concat!("io.configsync.", $name);
                const DESCRIPTION: &'static str = $desc;
                fn routing(&self) -> Routing<'_> {
                    let $p = self;
                    $routing
                }
            }
        )*

        /// Every payload, decoded by type.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum EventData {
            $($ty($ty),)*
        }

        impl EventData {
            /// Every known event type, in catalogue order.
            pub const TYPES: &'static [&'static str] = &[$(<$ty as EventPayload>::TYPE,)*];

            /// Who emits each type: (type, the NATS user and service that publishes it), one
            /// row per emitter (a rollback is asked for by a person or by the applier).
            /// `operator` is a person (or the CLI on their behalf); [`ANY_CONSUMER`] marks
            /// dead-letter records, which every consumer writes under its own subject. NATS
            /// permissions (`nats/permissions.conf`) are checked against this table.
            pub const EMITTERS: &'static [(&'static str, &'static str)] =
                &[$($((<$ty as EventPayload>::TYPE, $emitter),)+)*];

            /// Decodes `data` as the payload of event type `ty`.
            pub fn decode(ty: &str, data: &[u8]) -> Result<Self, super::DataError> {
                $(
                    if ty == <$ty as EventPayload>::TYPE {
                        return super::decode_json::<$ty>(data).map(Self::$ty);
                    }
                )*
                Err(super::DataError::UnknownType(ty.to_string()))
            }

            /// The CloudEvents type of this payload.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Self::$ty(_) => <$ty as EventPayload>::TYPE,)*
                }
            }

            /// The routing facts of this payload.
            pub fn routing(&self) -> Routing<'_> {
                match self {
                    $(Self::$ty(p) => p.routing(),)*
                }
            }
        }

        /// The JSON Schema and description of every event type.
        pub fn catalogue() -> Vec<super::TypeDoc> {
            vec![$(super::TypeDoc::of::<$ty>(),)*]
        }
    };
}

fn target<'a>(env: &'a str, cluster: &'a str, revision: &'a str) -> Routing<'a> {
    Routing {
        environment: Some(env),
        cluster: Some(cluster),
        revision: Some(revision),
        source: None,
    }
}

fn env_only<'a>(env: &'a str, revision: &'a str) -> Routing<'a> {
    Routing {
        environment: Some(env),
        cluster: None,
        revision: Some(revision),
        source: None,
    }
}

payloads! {
    CommitDetected => "commit.detected.v1" by ["git-watcher"], "A new commit on a tracked branch, with changed paths grouped by environment and app.",
        |p| Routing { revision: Some(&p.sha), source: p.source.as_deref(), ..Routing::default() };
    SourceFailed => "source.failed.v1" by ["git-watcher"], "The Git source could not be read.",
        |p| Routing { source: p.source.as_deref(), ..Routing::default() };
    SourceRewritten => "source.rewritten.v1" by ["git-watcher"], "A tracked branch was rewritten (force-pushed).",
        |p| Routing { revision: Some(&p.new_sha), source: p.source.as_deref(), ..Routing::default() };
    ValidationPassed => "validation.passed.v1" by ["validator"], "An environment's manifests at a revision passed validation; the rendered bundle is stored by digest.",
        |p| env_only(&p.environment, &p.revision);
    ValidationFailed => "validation.failed.v1" by ["validator"], "An environment's manifests at a revision failed validation, with findings.",
        |p| env_only(&p.environment, &p.revision);
    ApprovalRequired => "approval.required.v1" by ["applier"], "A change waits for approvals by distinct people.",
        |p| env_only(&p.environment, &p.revision);
    ApprovalGranted => "approval.granted.v1" by ["operator"], "A person approved a change (signed).",
        |p| env_only(&p.environment, &p.revision);
    ApprovalRejected => "approval.rejected.v1" by ["operator"], "A person rejected a change (signed): it is not deployed.",
        |p| env_only(&p.environment, &p.revision);
    ActionRefused => "action.refused.v1" by ["applier"], "A person's action was ignored (unsigned, badly signed, expired, not allowed), and why.",
        |p| env_only(&p.environment, &p.revision);
    RollbackRequested => "rollback.requested.v1" by ["operator"], "A person asked to return an environment to an earlier revision (signed where the access policy says so).",
        |p| env_only(&p.environment, &p.to_revision);
    EnvironmentPinned => "rollout.pinned.v1" by ["applier"], "An environment is held at a revision after a rollback, until a newer commit or an unpin.",
        |p| env_only(&p.environment, &p.revision);
    EnvironmentUnpinned => "rollout.unpinned.v1" by ["applier"], "An environment's pin was lifted (a newer commit, or an accepted unpin request).",
        |p| env_only(&p.environment, &p.revision);
    UnpinRequested => "unpin.requested.v1" by ["operator"], "A person asked to lift an environment's pin.",
        |p| env_only(&p.environment, &p.revision);
    RolloutWaiting => "rollout.waiting.v1" by ["applier"], "A validated revision is not applied yet, and why.",
        |p| Routing { environment: Some(&p.environment), cluster: p.cluster.as_deref(), revision: Some(&p.revision), source: None };
    ApplyStarted => "apply.started.v1" by ["applier"], "The applier began applying a bundle to one cluster.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    ApplySucceeded => "apply.succeeded.v1" by ["applier"], "A bundle is applied to one cluster, with a result per object.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    ApplyFailed => "apply.failed.v1" by ["applier"], "Applying a bundle to one cluster failed.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    ResourcePruned => "resource.pruned.v1" by ["applier"], "An object that left the configuration was deleted from a cluster.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    PruneHeld => "prune.held.v1" by ["applier"], "The prune guard held back deletions that need a person's approval.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    PruneApproved => "prune.approved.v1" by ["operator"], "A person allowed the held deletions of a revision.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    PruneCompleted => "prune.completed.v1" by ["applier"], "The held deletions of a revision were carried out after an accepted approval.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    HealthReady => "health.ready.v1" by ["applier"], "Every applied object of a revision is healthy.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    HealthDegraded => "health.degraded.v1" by ["applier"], "Some applied objects did not become healthy.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    DriftDetected => "drift.detected.v1" by ["drift-watcher"], "A managed object differs from its desired state (fields, values, and who changed it).",
        |p| target(&p.environment, &p.cluster, &p.revision);
    DriftResolved => "drift.resolved.v1" by ["drift-watcher"], "A drifted object is back at its desired state.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    RemediationStarted => "remediation.started.v1" by ["remediator"], "The remediator began repairing a drift.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    RemediationSucceeded => "remediation.succeeded.v1" by ["remediator"], "A drift was repaired.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    RemediationFailed => "remediation.failed.v1" by ["remediator"], "Repairing a drift failed.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    RemediationConflict => "remediation.conflict.v1" by ["remediator"], "Another controller keeps undoing repairs of an object.",
        |p| target(&p.environment, &p.cluster, &p.revision);
    AuditCheckpoint => "audit.checkpoint.v1" by ["auditor"], "The auditor vouches for the log up to a sequence.",
        |_p| Routing::default();
    DeadLetterRecorded => "deadletter.recorded.v1" by [ANY_CONSUMER], "A consumer gave up on a message, with the reason (published under the dead-letter subjects).",
        |_p| Routing::default();
}
