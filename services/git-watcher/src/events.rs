//! The events the git-watcher publishes, with ids derived from what caused them so that a
//! retry (after a crash, or by another replica) is deduplicated by JetStream.

use configsync_core::access::{AccessPolicy, SignedCommit};
use configsync_core::event::{
    CommitDetected, CommitSignature, Outgoing, SourceFailed, SourceRewritten,
};
use configsync_core::git::{group_paths, parse_trailers};
use configsync_core::names::SourceId;

use crate::poll::DetectedCommit;

/// What the commit's signature is worth under the access policy's keys.
fn signature_of(
    info: &configsync_core::git::CommitInfo,
    access: Option<&AccessPolicy>,
) -> Option<CommitSignature> {
    let raw = info.signature.as_ref()?;
    let unverified = |reason: String| CommitSignature {
        format: None,
        verified: false,
        key: None,
        principal: None,
        reason: Some(reason),
    };
    let Some(access) = access else {
        return Some(unverified(
            "no access policy to check it against (--access)".into(),
        ));
    };
    let signed = SignedCommit {
        armored: &raw.armored,
        signed_data: &raw.signed_data,
        committer_email: &info.committer.email,
        committed_at: info.committer.time,
    };
    Some(match access.verify_commit(&signed) {
        Ok((format, verified)) => CommitSignature {
            format: Some(format),
            verified: true,
            key: Some(verified.key),
            principal: Some(verified.principal),
            reason: None,
        },
        Err(refusal) => unverified(refusal.to_string()),
    })
}

/// The first 7 characters of a SHA, as Git abbreviates it.
fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// `commit.detected` for one commit; its id depends only on repository, branch and SHA.
/// Whether a commit affects every environment, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole<'a> {
    /// Only what its changed paths say.
    No,
    /// The first commit seen on the branch: nothing says what is deployed.
    First,
    /// The tip after the branch was rewritten from this head: what is deployed may differ from
    /// it anywhere, and it may be a commit announced before (a reset back to it), so the
    /// rewrite is a cause of the event's id (JetStream would otherwise drop it as a duplicate).
    AfterRewrite(&'a str),
}

/// The longest commit message an event carries: a message is Git's to keep, and one of
/// megabytes would exceed the stream's message limit and block every later commit.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The most changed paths an event lists; a larger commit (a vendored tree, a mass rename)
/// affects every environment instead.
pub const MAX_PATHS: usize = 5_000;

/// `message`, cut at a character boundary to at most [`MAX_MESSAGE_BYTES`] with a note of
/// what was cut.
fn bounded(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[configsync: {} more bytes of the message are in Git]",
        &message[..end],
        message.len() - end
    )
}

/// The causes every event of `source` starts with: repository and branch, then the
/// sub-directory only when there is one, so the events of a whole-repository source keep the
/// ids they had before sources could have sub-directories (and JetStream still deduplicates
/// them across an upgrade).
fn source_causes(source: &SourceId) -> Vec<String> {
    let mut causes = vec![source.repository.clone(), source.branch.clone()];
    if let Some(path) = &source.path {
        causes.push(format!("path {path}"));
    }
    causes
}

pub fn commit_detected(
    followed: &SourceId,
    name: &str,
    commit: &DetectedCommit,
    whole: Whole<'_>,
    source: &str,
    access: Option<&AccessPolicy>,
) -> Result<Outgoing, String> {
    let info = &commit.info;
    let too_many = commit.paths.len() > MAX_PATHS;
    let (environments, other_paths) = if too_many {
        (Vec::new(), Vec::new())
    } else {
        group_paths(&commit.paths)
    };
    let payload = CommitDetected {
        repository: followed.repository.clone(),
        branch: followed.branch.clone(),
        source: Some(name.to_string()),
        path: followed.path.clone(),
        trailers: parse_trailers(&info.message),
        sha: info.sha.clone(),
        parents: info.parents.clone(),
        author: info.author.clone(),
        committer: info.committer.clone(),
        message: bounded(&info.message),
        signed: info.signed,
        signature: signature_of(info, access).map(Box::new),
        environments,
        other_paths,
        whole_tree: whole != Whole::No || too_many,
    };
    let mut builder = Outgoing::builder(&payload);
    for cause in source_causes(followed) {
        builder = builder.cause(cause);
    }
    builder = builder.cause(&info.sha);
    if let Whole::AfterRewrite(from) = whole {
        builder = builder.cause(format!("rewritten from {from}"));
    }
    builder
        .subject(format!("{}@{}", followed.branch, short(&info.sha)))
        .actor(info.author.email.clone())
        .build(source)
        // The build error type is private to configsync-core; its message is what matters.
        .map_err(|e| e.to_string())
}

/// `source.rewritten` when the branch moved to a commit that does not descend from the last one.
pub fn source_rewritten(
    followed: &SourceId,
    name: &str,
    previous_sha: &str,
    new_sha: &str,
    source: &str,
) -> Result<Outgoing, String> {
    let payload = SourceRewritten {
        repository: followed.repository.clone(),
        branch: followed.branch.clone(),
        source: Some(name.to_string()),
        path: followed.path.clone(),
        previous_sha: previous_sha.to_string(),
        new_sha: new_sha.to_string(),
    };
    let mut builder = Outgoing::builder(&payload);
    for cause in source_causes(followed) {
        builder = builder.cause(cause);
    }
    builder
        .cause(previous_sha)
        .cause(new_sha)
        .subject(format!("{}@{}", followed.branch, short(new_sha)))
        .build(source)
        // The build error type is private to configsync-core; its message is what matters.
        .map_err(|e| e.to_string())
}

/// `source.failed`. The id depends on the reason and on the last commit seen, so the same
/// failure reported again within JetStream's duplicate window (a restart, a replica) is stored
/// once, while the same failure after the branch moved on is a new event.
pub fn source_failed(
    followed: &SourceId,
    name: &str,
    reason: &str,
    transient: bool,
    last_seen: Option<&str>,
    source: &str,
) -> Result<Outgoing, String> {
    let payload = SourceFailed {
        repository: followed.repository.clone(),
        branch: Some(followed.branch.clone()),
        source: Some(name.to_string()),
        path: followed.path.clone(),
        reason: reason.to_string(),
        transient,
    };
    let mut builder = Outgoing::builder(&payload);
    for cause in source_causes(followed) {
        builder = builder.cause(cause);
    }
    builder
        .cause(reason)
        .cause(last_seen.unwrap_or_default())
        .subject(followed.branch.clone())
        .build(source)
        // The build error type is private to configsync-core; its message is what matters.
        .map_err(|e| e.to_string())
}
