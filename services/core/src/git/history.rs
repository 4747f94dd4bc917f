//! Walking history: ancestry, the commits between two tips, a commit's metadata and the paths
//! it changed.

use std::collections::{BTreeMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};

use super::{GitError, ObjectId, describe};
use crate::event::Person;

/// A commit's metadata, as the commit-detected event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub parents: Vec<String>,
    pub author: Person,
    pub committer: Person,
    pub message: String,
    /// Whether the commit has a `gpgsig` header.
    pub signed: bool,
    /// Its signature and the exact bytes it covers, when signed: checked against the access
    /// policy's keys by `access::AccessPolicy::verify_commit`.
    pub signature: Option<RawSignature>,
}

/// A commit's signature as Git stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSignature {
    /// The armored signature (`-----BEGIN SSH SIGNATURE-----` or `-----BEGIN PGP SIGNATURE-----`).
    pub armored: String,
    /// The commit object without its `gpgsig` header: what was signed.
    pub signed_data: Vec<u8>,
}

fn object_error(id: &ObjectId, e: &gix::Error) -> GitError {
    GitError::Object {
        id: id.to_string(),
        reason: describe(e),
    }
}

fn parents_of(repo: &gix::Repository, id: ObjectId) -> Result<Vec<ObjectId>, GitError> {
    let commit = repo.find_commit(id).map_err(|e| object_error(&id, &e))?;
    Ok(commit.parent_ids().map(|p| p.detach()).collect())
}

/// Whether `ancestor` is reachable from `tip` through any parent (a commit is its own
/// ancestor). Walks until found or the history is exhausted, so a rewrite costs one full walk.
pub fn is_ancestor(
    repo: &gix::Repository,
    ancestor: ObjectId,
    tip: ObjectId,
) -> Result<bool, GitError> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([tip]);
    while let Some(id) = queue.pop_front() {
        if id == ancestor {
            return Ok(true);
        }
        if seen.insert(id) {
            queue.extend(parents_of(repo, id)?);
        }
    }
    Ok(false)
}

/// The commits after `since` (exclusive) up to `tip` (inclusive), oldest first, following
/// first parents only: the branch's own history, as `git log --first-parent since..tip`. A
/// merged branch's commits arrive as the merge commit, whose changed paths (against its first
/// parent) cover them. With `since` absent, the whole first-parent chain.
///
/// `since` must be an ancestor of `tip` (see [`is_ancestor`]). When it is not on the
/// first-parent chain (the branch's previous tip was merged in as a second parent, as `git
/// pull` does), the walk stops at the first commit that `since` already contains.
pub fn first_parent_range(
    repo: &gix::Repository,
    since: Option<ObjectId>,
    tip: ObjectId,
) -> Result<Vec<ObjectId>, GitError> {
    let mut chain = Vec::new();
    let mut next = Some(tip);
    let mut found = false;
    while let Some(id) = next {
        if Some(id) == since {
            found = true;
            break;
        }
        chain.push(id);
        next = parents_of(repo, id)?.into_iter().next();
    }
    if let (Some(since), false) = (since, found) {
        let known = ancestors(repo, since)?;
        if let Some(cut) = chain.iter().position(|id| known.contains(id)) {
            chain.truncate(cut);
        }
    }
    chain.reverse();
    Ok(chain)
}

fn ancestors(repo: &gix::Repository, tip: ObjectId) -> Result<HashSet<ObjectId>, GitError> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([tip]);
    while let Some(id) = queue.pop_front() {
        if seen.insert(id) {
            queue.extend(parents_of(repo, id)?);
        }
    }
    Ok(seen)
}

/// Reads a commit's metadata.
pub fn commit_info(repo: &gix::Repository, id: ObjectId) -> Result<CommitInfo, GitError> {
    let commit = repo.find_commit(id).map_err(|e| object_error(&id, &e))?;
    let decoded = commit.decode().map_err(|e| object_error(&id, &e))?;
    let person = |sig: gix::Result<gix::actor::SignatureRef<'_>>| -> Result<Person, GitError> {
        let sig = sig.map_err(|e| object_error(&id, &e))?;
        let time = sig.time().map_err(|e| object_error(&id, &e))?;
        Ok(Person {
            name: sig.name.to_string(),
            email: sig.email.to_string(),
            time: DateTime::<Utc>::from_timestamp(time.seconds, 0).unwrap_or_default(),
        })
    };
    let signature =
        commit
            .signature()
            .map_err(|e| object_error(&id, &e))?
            .map(|(armored, data)| RawSignature {
                armored: armored.to_string(),
                signed_data: data.to_bstring().into(),
            });
    Ok(CommitInfo {
        sha: id.to_string(),
        signature,
        parents: decoded.parents().map(|p| p.to_string()).collect(),
        author: person(decoded.author())?,
        committer: person(decoded.committer())?,
        message: decoded.message.to_string(),
        signed: decoded.extra_headers().pgp_signature().is_some(),
    })
}

/// The paths a commit changed against its first parent (against nothing for a root commit):
/// added, modified and deleted files, sorted. A rename shows as both paths.
pub fn changed_paths(repo: &gix::Repository, id: ObjectId) -> Result<Vec<String>, GitError> {
    let commit = repo.find_commit(id).map_err(|e| object_error(&id, &e))?;
    let new_tree = commit
        .tree_id()
        .map_err(|e| object_error(&id, &e))?
        .detach();
    let old_tree = match commit.parent_ids().next() {
        Some(parent) => {
            let parent = parent.detach();
            let parent = repo
                .find_commit(parent)
                .map_err(|e| object_error(&parent, &e))?;
            Some(
                parent
                    .tree_id()
                    .map_err(|e| object_error(&id, &e))?
                    .detach(),
            )
        }
        None => None,
    };
    let mut out = Vec::new();
    diff_trees(repo, old_tree, Some(new_tree), "", &mut out)?;
    out.sort();
    out.dedup();
    Ok(out)
}

type Entries = BTreeMap<Vec<u8>, (gix::objs::tree::EntryMode, ObjectId)>;

fn tree_entries(repo: &gix::Repository, id: Option<ObjectId>) -> Result<Entries, GitError> {
    let Some(id) = id else {
        return Ok(Entries::new());
    };
    let tree = repo.find_tree(id).map_err(|e| object_error(&id, &e))?;
    let decoded = tree.decode().map_err(|e| object_error(&id, &e))?;
    Ok(decoded
        .entries
        .iter()
        .map(|e| (e.filename.to_vec(), (e.mode, e.oid.to_owned())))
        .collect())
}

/// Compares two trees by hand (gix's tree diff needs its `blob-diff` feature and a resource
/// cache, which a name-only diff does not), recursing only into subtrees whose ids differ.
fn diff_trees(
    repo: &gix::Repository,
    old: Option<ObjectId>,
    new: Option<ObjectId>,
    prefix: &str,
    out: &mut Vec<String>,
) -> Result<(), GitError> {
    if old == new {
        return Ok(());
    }
    let old = tree_entries(repo, old)?;
    let new = tree_entries(repo, new)?;
    let names: std::collections::BTreeSet<&Vec<u8>> = old.keys().chain(new.keys()).collect();
    for name in names {
        let path = format!("{prefix}{}", String::from_utf8_lossy(name));
        let (o, n) = (old.get(name), new.get(name));
        if o == n {
            continue;
        }
        let subtree = |side: Option<&(gix::objs::tree::EntryMode, ObjectId)>| {
            side.filter(|(mode, _)| mode.is_tree()).map(|(_, id)| *id)
        };
        let file_changed = match (o, n) {
            (Some((om, oid)), Some((nm, nid))) => {
                !(om.is_tree() && nm.is_tree()) && (oid != nid || om != nm)
            }
            (Some((m, _)), None) | (None, Some((m, _))) => !m.is_tree(),
            (None, None) => false,
        };
        // Both trees, or one side a tree: recurse into whichever sides are trees.
        let (ot, nt) = (subtree(o), subtree(n));
        if ot.is_some() || nt.is_some() {
            diff_trees(repo, ot, nt, &format!("{path}/"), out)?;
        }
        if file_changed {
            out.push(path);
        }
    }
    Ok(())
}
