//! One poll of the remote, all blocking Git work (run inside `spawn_blocking`): fetch the
//! branch and work out what is new since the last commit seen.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use configsync_core::git::{self, CommitInfo, GitError, Mirror, ObjectId, RemoteOptions};

/// A commit ready to be announced.
#[derive(Debug, Clone)]
pub struct DetectedCommit {
    pub info: CommitInfo,
    /// Paths changed against the first parent, relative to the source's sub-directory (paths
    /// outside it left out).
    pub paths: Vec<String>,
}

/// What a poll found.
#[derive(Debug)]
pub enum Found {
    /// The branch has not moved.
    Unchanged,
    /// The branch was never followed before: only its tip is announced, because a history
    /// of thousands of commits describes no state anyone will deploy, and the tip alone is
    /// what must be validated and applied.
    First(DetectedCommit),
    /// New commits after the last seen one, oldest first (first-parent history).
    Advanced(Vec<DetectedCommit>),
    /// The branch moved to a commit that does not descend from the last one seen (a
    /// force-push): the new tip is announced after the rewrite, like a first run.
    Rewritten {
        previous: String,
        tip: DetectedCommit,
    },
}

/// A poll's result.
#[derive(Debug)]
pub struct Polled {
    /// After a rewrite whose tip was never announced (the process stopped in between), that
    /// tip, to announce before anything else; `None` if it is gone from the remote too.
    pub unannounced: Option<DetectedCommit>,
    pub found: Found,
}

/// Opens (or creates) the mirror, fetches `branch`, and compares its tip with `last_seen`.
/// With `subdir`, changed paths are those under it, relative to it: every commit of the
/// branch is still announced (one that changes nothing there affects no environment), so the
/// last commit seen is always the branch's own.
#[allow(clippy::too_many_arguments)] // each is one fact of the poll; a struct would only rename them
pub fn poll(
    mirror_dir: &Path,
    url: &str,
    remote: RemoteOptions,
    branch: &str,
    subdir: Option<&str>,
    last_seen: Option<&str>,
    tip_unannounced: bool,
    interrupt: &AtomicBool,
) -> Result<Polled, GitError> {
    let mirror = Mirror::open_or_init(mirror_dir, url, remote)?;
    let tip = mirror.fetch(branch, interrupt)?;
    let repo = mirror.repository()?;
    let last = last_seen.map(git::parse_sha).transpose()?;
    let unannounced = match last {
        Some(id) if tip_unannounced && repo.has_object(id) => Some(detect(&repo, subdir, id)?),
        _ => None,
    };
    let found = match last {
        None => Found::First(detect(&repo, subdir, tip)?),
        Some(last) if last == tip => Found::Unchanged,
        // A commit the remote no longer has cannot be an ancestor of its tip (the mirror holds
        // exactly what the remote sent, or is fresh after its directory was lost).
        Some(last) if !repo.has_object(last) || !git::is_ancestor(&repo, last, tip)? => {
            Found::Rewritten {
                previous: last.to_string(),
                tip: detect(&repo, subdir, tip)?,
            }
        }
        Some(last) => Found::Advanced(
            git::first_parent_range(&repo, Some(last), tip)?
                .into_iter()
                .map(|id| detect(&repo, subdir, id))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Polled { unannounced, found })
}

fn detect(
    repo: &git::Repository,
    subdir: Option<&str>,
    id: ObjectId,
) -> Result<DetectedCommit, GitError> {
    Ok(DetectedCommit {
        info: git::commit_info(repo, id)?,
        paths: under(git::changed_paths(repo, id)?, subdir),
    })
}

/// The paths under `subdir`, relative to it (all of them without one).
fn under(paths: Vec<String>, subdir: Option<&str>) -> Vec<String> {
    let Some(subdir) = subdir else {
        return paths;
    };
    let prefix = format!("{subdir}/");
    paths
        .into_iter()
        .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_are_taken_relative_to_the_sub_directory() {
        let paths = vec![
            "teams/a/configs/dev/web/x.yaml".to_string(),
            "teams/ab/configs/dev/web/x.yaml".to_string(),
            "teams/b/configs/dev/web/x.yaml".to_string(),
            "README.md".to_string(),
        ];
        assert_eq!(
            super::under(paths.clone(), Some("teams/a")),
            ["configs/dev/web/x.yaml"]
        );
        assert_eq!(super::under(paths.clone(), None), paths);
    }
}
