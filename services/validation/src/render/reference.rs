//! What a path written in a kustomization or chart points at: a remote source, an absolute
//! path, a path that leaves the repository once `..` is resolved, or a file inside it.
//! Resolution is lexical (links are refused separately, never followed).

use std::path::Path;

/// Where a reference leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// Fetched from elsewhere (URL, git or go-getter syntax).
    Remote,
    /// Absolute: outside the repository by construction.
    Absolute,
    /// Leaves the repository root after `..` is resolved.
    Escapes,
    /// Inside the repository: the root-relative path (`.` for the root).
    Local(String),
}

/// Resolves `reference`, written in root-relative directory `base_dir`.
pub(super) fn resolve(base_dir: &str, reference: &str) -> Target {
    let reference = reference.trim();
    if is_remote(reference) {
        return Target::Remote;
    }
    if reference.starts_with('/') || reference.starts_with('~') {
        return Target::Absolute;
    }
    match normalize(base_dir, reference) {
        Some(path) => Target::Local(path),
        None => Target::Escapes,
    }
}

/// Kustomize (go-getter) and Helm remote syntaxes: any scheme, `git::`/`git@`, a `?ref=`
/// query, a `//` subdirectory marker, and the hosts kustomize recognises without a scheme.
pub(super) fn is_remote(reference: &str) -> bool {
    let lower = reference.to_ascii_lowercase();
    lower.contains("://")
        || lower.starts_with("git::")
        || lower.starts_with("git@")
        || lower.contains("?ref=")
        || lower.contains("?version=")
        || lower.contains("//")
        || ["github.com", "gitlab.com", "bitbucket.org"]
            .iter()
            .any(|host| lower.starts_with(host))
}

/// `base_dir/reference` with `.` and `..` resolved; `None` when it climbs above the root.
pub(super) fn normalize(base_dir: &str, reference: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in base_dir.split('/').chain(reference.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    })
}

/// The first component of root-relative `path` that is a symbolic link, if any.
pub(super) fn symlink_on_path(repo_root: &Path, path: &str) -> Option<String> {
    let mut current = repo_root.to_path_buf();
    let mut shown = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        current.push(part);
        shown.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => return Some(shown.join("/")),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_syntaxes_are_recognised() {
        for remote in [
            "https://github.com/kubernetes-sigs/kustomize//examples/multibases?ref=v1.0.6",
            "http://example.com/x.yaml",
            "git::https://example.com/repo.git",
            "github.com/org/repo/base?ref=main",
            "git@github.com:org/repo.git",
            "ssh://git@example.com/repo.git",
            "example.com/org/repo//base",
            "oci://registry.example/charts",
        ] {
            assert_eq!(resolve("configs/prod", remote), Target::Remote, "{remote}");
        }
    }

    #[test]
    fn paths_are_resolved_lexically_and_escapes_refused() {
        assert_eq!(
            resolve("configs/prod", "../base"),
            Target::Local("configs/base".into())
        );
        assert_eq!(
            resolve("configs/prod", "./a/./b.yaml"),
            Target::Local("configs/prod/a/b.yaml".into())
        );
        assert_eq!(resolve("configs", ".."), Target::Local(".".into()));
        assert_eq!(
            resolve("configs/prod", "../../../etc/passwd"),
            Target::Escapes
        );
        assert_eq!(resolve(".", "a/../../b"), Target::Escapes);
        assert_eq!(resolve("configs", "/etc/passwd"), Target::Absolute);
    }
}
