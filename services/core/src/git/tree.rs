//! Reading files from the tree at a revision, without a checkout (what the validator reads):
//! paths are checked, symbolic links and submodules are refused (they could point outside the
//! tree), and sizes are limited.

use super::{GitError, ObjectId, describe};

/// Size limits for reading from a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest single file.
    pub max_file_bytes: u64,
    /// The largest sum of all files of one directory walk.
    pub max_total_bytes: u64,
    /// The most files one walk returns.
    pub max_files: usize,
}

impl Default for Limits {
    /// Generous for configuration repositories: 1 MiB per file, 16 MiB and 10,000 files per walk.
    fn default() -> Self {
        Self {
            max_file_bytes: 1 << 20,
            max_total_bytes: 16 << 20,
            max_files: 10_000,
        }
    }
}

/// One file read from a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// The path from the repository root, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// Reads the file at `path` in the tree of commit `revision`.
pub fn read_file(
    repo: &gix::Repository,
    revision: ObjectId,
    path: &str,
    limits: &Limits,
) -> Result<Vec<u8>, GitError> {
    let parts = components(path)?;
    let root = root_tree(repo, revision)?;
    let (mode, id) = lookup(repo, revision, root, &parts, path)?;
    check_kind(mode, path, revision, false)?;
    read_blob(repo, revision, id, path, limits.max_file_bytes)
}

/// The names of the directories directly under `dir` in the tree of commit `revision`
/// (none when `dir` does not exist), sorted. Nothing is read but the tree itself.
pub fn list_dirs(
    repo: &gix::Repository,
    revision: ObjectId,
    dir: &str,
) -> Result<Vec<String>, GitError> {
    let parts = components(dir)?;
    let root = root_tree(repo, revision)?;
    let id = match lookup(repo, revision, root, &parts, dir) {
        Ok((mode, id)) if mode.is_tree() => id,
        Ok(_) | Err(GitError::PathNotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let tree = repo.find_tree(id).map_err(|e| object_error(&id, &e))?;
    let decoded = tree.decode().map_err(|e| object_error(&id, &e))?;
    let mut names: Vec<String> = decoded
        .entries
        .iter()
        .filter(|e| e.mode.is_tree())
        .map(|e| String::from_utf8_lossy(e.filename).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Reads every file under directory `dir` (`""` for the whole tree) of commit `revision`,
/// recursively, sorted by path. Any symbolic link or submodule below `dir` fails the walk.
pub fn read_dir(
    repo: &gix::Repository,
    revision: ObjectId,
    dir: &str,
    limits: &Limits,
) -> Result<Vec<TreeFile>, GitError> {
    let parts = if dir.trim_matches('/').is_empty() {
        Vec::new()
    } else {
        components(dir)?
    };
    let root = root_tree(repo, revision)?;
    let start = if parts.is_empty() {
        root
    } else {
        let (mode, id) = lookup(repo, revision, root, &parts, dir)?;
        check_kind(mode, dir, revision, true)?;
        id
    };
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut stack = vec![(parts.join("/"), start)];
    while let Some((prefix, tree_id)) = stack.pop() {
        let tree = repo
            .find_tree(tree_id)
            .map_err(|e| object_error(&tree_id, &e))?;
        let decoded = tree.decode().map_err(|e| object_error(&tree_id, &e))?;
        for entry in &decoded.entries {
            let name = String::from_utf8_lossy(entry.filename);
            let path = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if entry.mode.is_tree() {
                stack.push((path, entry.oid.to_owned()));
                continue;
            }
            check_kind(entry.mode, &path, revision, false)?;
            if out.len() >= limits.max_files {
                return Err(GitError::TooLarge {
                    what: format!("{dir:?} (file count)"),
                    revision: revision.to_string(),
                    size: out.len() as u64 + 1,
                    max: limits.max_files as u64,
                });
            }
            let bytes = read_blob(
                repo,
                revision,
                entry.oid.to_owned(),
                &path,
                limits.max_file_bytes,
            )?;
            total += bytes.len() as u64;
            if total > limits.max_total_bytes {
                return Err(GitError::TooLarge {
                    what: format!("{dir:?} (all files)"),
                    revision: revision.to_string(),
                    size: total,
                    max: limits.max_total_bytes,
                });
            }
            out.push(TreeFile { path, bytes });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn object_error(id: &ObjectId, e: &gix::Error) -> GitError {
    GitError::Object {
        id: id.to_string(),
        reason: describe(e),
    }
}

/// Splits a relative path, refusing anything that could leave the tree.
fn components(path: &str) -> Result<Vec<&str>, GitError> {
    let invalid = |reason: &str| GitError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if path.starts_with('/') {
        return Err(invalid("absolute paths are outside the tree"));
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    for part in &parts {
        match *part {
            "" => return Err(invalid("empty path component")),
            "." | ".." => return Err(invalid("relative components could leave the tree")),
            p if p.contains('\0') => return Err(invalid("NUL byte")),
            _ => {}
        }
    }
    Ok(parts)
}

fn root_tree(repo: &gix::Repository, revision: ObjectId) -> Result<ObjectId, GitError> {
    let commit = repo
        .find_commit(revision)
        .map_err(|e| GitError::InvalidRevision {
            revision: revision.to_string(),
            reason: describe(&e),
        })?;
    Ok(commit
        .tree_id()
        .map_err(|e| object_error(&revision, &e))?
        .detach())
}

/// Follows `parts` from `root`, refusing a symbolic link or submodule on the way.
fn lookup(
    repo: &gix::Repository,
    revision: ObjectId,
    root: ObjectId,
    parts: &[&str],
    path: &str,
) -> Result<(gix::objs::tree::EntryMode, ObjectId), GitError> {
    let not_found = || GitError::PathNotFound {
        path: path.to_string(),
        revision: revision.to_string(),
    };
    let mut current = root;
    let mut found = None;
    for (i, part) in parts.iter().enumerate() {
        let tree = repo
            .find_tree(current)
            .map_err(|e| object_error(&current, &e))?;
        let decoded = tree.decode().map_err(|e| object_error(&current, &e))?;
        let entry = decoded
            .entries
            .iter()
            .find(|e| e.filename == part.as_bytes())
            .ok_or_else(not_found)?;
        let last = i + 1 == parts.len();
        if !last {
            let so_far = parts[..=i].join("/");
            check_kind(entry.mode, &so_far, revision, true)?;
        }
        current = entry.oid.to_owned();
        found = Some((entry.mode, current));
    }
    found.ok_or_else(not_found)
}

/// Refuses symbolic links and submodules; `want_dir` says which of file or directory is wanted.
fn check_kind(
    mode: gix::objs::tree::EntryMode,
    path: &str,
    revision: ObjectId,
    want_dir: bool,
) -> Result<(), GitError> {
    let refused = |kind: &'static str| GitError::Refused {
        path: path.to_string(),
        revision: revision.to_string(),
        kind,
    };
    if mode.is_link() {
        return Err(refused("symbolic link"));
    }
    if mode.is_commit() {
        return Err(refused("submodule"));
    }
    match (want_dir, mode.is_tree()) {
        (true, false) => Err(refused("file where a directory was expected")),
        (false, true) => Err(refused("directory where a file was expected")),
        _ => Ok(()),
    }
}

/// Reads a blob after checking its size from the object header, so an oversized file is never
/// loaded.
fn read_blob(
    repo: &gix::Repository,
    revision: ObjectId,
    id: ObjectId,
    path: &str,
    max: u64,
) -> Result<Vec<u8>, GitError> {
    let header = repo.find_header(id).map_err(|e| object_error(&id, &e))?;
    if header.size() > max {
        return Err(GitError::TooLarge {
            what: path.to_string(),
            revision: revision.to_string(),
            size: header.size(),
            max,
        });
    }
    let blob = repo.find_blob(id).map_err(|e| object_error(&id, &e))?;
    Ok(blob.data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_tree_are_refused() {
        assert_eq!(
            components("configs/dev/a.yaml").unwrap(),
            vec!["configs", "dev", "a.yaml"]
        );
        assert_eq!(components("configs/dev/").unwrap(), vec!["configs", "dev"]);
        for bad in ["/etc/passwd", "../x", "configs/../../x", "a//b", "./a", ""] {
            assert!(components(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
