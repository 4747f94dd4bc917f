//! The events the git-watcher publishes, with ids derived from what caused them so that a
//! retry (after a crash, or by another replica) is deduplicated by JetStream.

use configsync_core::event::{CommitDetected, Outgoing, SourceFailed, SourceRewritten};
use configsync_core::git::group_paths;

use crate::poll::DetectedCommit;

/// The first 7 characters of a SHA, as Git abbreviates it.
fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// `commit.detected` for one commit; its id depends only on repository, branch and SHA.
pub fn commit_detected(
    repository: &str,
    branch: &str,
    commit: &DetectedCommit,
    source: &str,
) -> Result<Outgoing, String> {
    let info = &commit.info;
    let (environments, other_paths) = group_paths(&commit.paths);
    let payload = CommitDetected {
        repository: repository.to_string(),
        branch: branch.to_string(),
        sha: info.sha.clone(),
        parents: info.parents.clone(),
        author: info.author.clone(),
        committer: info.committer.clone(),
        message: info.message.clone(),
        signed: info.signed,
        environments,
        other_paths,
    };
    Outgoing::builder(&payload)
        .cause(repository)
        .cause(branch)
        .cause(&info.sha)
        .subject(format!("{branch}@{}", short(&info.sha)))
        .actor(info.author.email.clone())
        .build(source)
        // The build error type is private to configsync-core; its message is what matters.
        .map_err(|e| e.to_string())
}

/// `source.rewritten` when the branch moved to a commit that does not descend from the last one.
pub fn source_rewritten(
    repository: &str,
    branch: &str,
    previous_sha: &str,
    new_sha: &str,
    source: &str,
) -> Result<Outgoing, String> {
    let payload = SourceRewritten {
        repository: repository.to_string(),
        branch: branch.to_string(),
        previous_sha: previous_sha.to_string(),
        new_sha: new_sha.to_string(),
    };
    Outgoing::builder(&payload)
        .cause(repository)
        .cause(branch)
        .cause(previous_sha)
        .cause(new_sha)
        .subject(format!("{branch}@{}", short(new_sha)))
        .build(source)
        // The build error type is private to configsync-core; its message is what matters.
        .map_err(|e| e.to_string())
}

/// `source.failed`. The id depends on the reason and on the last commit seen, so the same
/// failure reported again within JetStream's duplicate window (a restart, a replica) is stored
/// once, while the same failure after the branch moved on is a new event.
pub fn source_failed(
    repository: &str,
    branch: &str,
    reason: &str,
    transient: bool,
    last_seen: Option<&str>,
    source: &str,
) -> Result<Outgoing, String> {
    let payload = SourceFailed {
        repository: repository.to_string(),
        branch: Some(branch.to_string()),
        reason: reason.to_string(),
        transient,
    };
    Outgoing::builder(&payload)
        .cause(repository)
        .cause(branch)
        .cause(reason)
        .cause(last_seen.unwrap_or_default())
        .subject(branch.to_string())
        .build(source)
        // The build error type is private to configsync-core; its message is what matters.
        .map_err(|e| e.to_string())
}
