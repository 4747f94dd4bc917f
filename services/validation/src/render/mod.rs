//! Rendering Kustomize and Helm sources into plain manifests, safely: which directories are
//! roots (`discover`), checks that refuse remote sources, path escapes and symbolic links
//! before any tool runs (`kustomize`, `helm`), and the tool itself in a scratch copy of the
//! repository with a cleared environment, no network where the kernel allows, a timeout and
//! an output cap (`sandbox`).
//!
//! Isolation: every tool runs under `unshare --net` (a network namespace with only a
//! loopback) when that works on the machine, probed once; otherwise without, and only the
//! pre-checks keep remote sources out. `Rendered::isolation` and every run finding say which,
//! and a render without isolation carries a `render.no-isolation` warning naming the tool.
//! `unshare` is searched on the tools' `PATH` (`RenderOptions::tool_path`).
//!
//! Secrets: secret generator material of every kustomization involved is replaced by
//! `[redacted]` in the tool's error output; for a chart, error lines naming any string value
//! of its value files (longer than 3 characters) are dropped.
//! The tool's own restrictions stay as they are (kustomize's load restrictor is not loosened).
//!
//! Rule ids: `render.remote-source`, `render.path-escape`, `render.symlink`, `render.invalid`,
//! `render.tool-missing`, `render.failed`, `render.timeout`, `render.output-too-large`,
//! `render.repository-too-large`, `render.no-isolation` (a warning).

mod discover;
mod helm;
mod kustomize;
mod reference;
mod sandbox;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use configsync_core::event::Finding;

pub(crate) use discover::enclosing_root;
pub use discover::{discover, is_render_input, root_kind};
pub use sandbox::Isolation;

/// Limits and choices for one render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// After this the tool's process group is killed (`render.timeout`).
    pub timeout: Duration,
    /// Most bytes of rendered YAML; past it the tool is killed (`render.output-too-large`).
    pub max_output_bytes: usize,
    /// Environment name: a chart's `values-<env>.yaml` is added after `values.yaml`.
    pub env: Option<String>,
    /// Most bytes copied into the scratch copy of the repository.
    pub max_copy_bytes: u64,
    /// Most files copied into the scratch copy of the repository.
    pub max_copy_files: usize,
    /// `PATH` searched for the tools (and `unshare`) and given to them; `None` is this
    /// process's `PATH`.
    pub tool_path: Option<OsString>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_output_bytes: 64 * 1024 * 1024,
            env: None,
            max_copy_bytes: 256 * 1024 * 1024,
            max_copy_files: 50_000,
            tool_path: None,
        }
    }
}

/// What `discover` found under the given paths.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Roots to render, in path order.
    pub roots: Vec<Root>,
    /// Kustomize roots not rendered on their own: bases and components that another root
    /// references, and `kind: Component` kustomizations (only meaningful when included).
    pub bases: Vec<String>,
    /// Plain manifest files outside every root, relative to the repository root.
    pub plain: Vec<String>,
}

/// A directory rendered by a tool, relative to the repository root (`.` for the root itself).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Root {
    pub dir: String,
    pub kind: RootKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RootKind {
    Kustomize,
    Helm,
}

/// A root's rendered YAML, named after its source file (`configs/prod/kustomization.yaml`,
/// `charts/web/Chart.yaml`) so that findings on it point at the source.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub name: String,
    pub yaml: Vec<u8>,
    /// How the tool was kept off the network.
    pub isolation: Isolation,
    /// Warnings on a successful render (`render.no-isolation`), for the caller to report.
    pub warnings: Vec<Finding>,
}

/// Renders one root: pre-checks first (nothing runs if any fails), then the tool in a
/// sandbox. Every problem is a finding on the root's source file.
pub fn render(
    repo_root: &Path,
    target: &Root,
    options: &RenderOptions,
) -> Result<Rendered, Vec<Finding>> {
    let repo_root = repo_root.canonicalize().map_err(|e| {
        vec![finding(
            "render.failed",
            &target.dir,
            None,
            format!("repository root is unreadable: {e}"),
        )]
    })?;
    match target.kind {
        RootKind::Kustomize => kustomize::render(&repo_root, &target.dir, options),
        RootKind::Helm => helm::render(&repo_root, &target.dir, options),
    }
}

fn finding(rule: &str, file: &str, line: Option<u32>, message: String) -> Finding {
    Finding::file_error(rule, file, line, message)
}

/// `dir/name` for a root-relative directory, without a leading `./`.
/// Parses a kustomization, `Chart.yaml` or values file: its nesting is checked first (see
/// `nesting`), then serde_yaml decodes it. The error is the line, when known, and the reason.
fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (Option<u32>, String)> {
    crate::nesting::check(text, crate::nesting::MAX_DEPTH)
        .map_err(|deep| (Some(deep.line), deep.to_string()))?;
    serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().and_then(|l| u32::try_from(l.line()).ok());
        (line, e.to_string())
    })
}

fn join(dir: &str, name: &str) -> String {
    if dir == "." || dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// First line (1-based) of `text` where `needle` appears as a whole YAML scalar or list
/// entry (not inside a longer path), to point a finding at an entry.
fn line_of(text: &str, needle: &str) -> Option<u32> {
    let bounded = |line: &str| {
        line.match_indices(needle).any(|(at, _)| {
            let before = line[..at].chars().next_back();
            let after = line[at + needle.len()..].chars().next();
            before.is_none_or(|c| " -[,\"':=".contains(c))
                && after.is_none_or(|c| " ],\"'#".contains(c))
        })
    };
    text.lines()
        .position(|l| !l.trim_start().starts_with('#') && bounded(l))
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// Writes a file of a test repository, with its directories.
#[cfg(test)]
pub(crate) fn test_write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_on_their_own_line() {
        let text = "# /etc/passwd\nresources:\n- ../../../etc/passwd\n- /etc/passwd\n\
                    files: [a=/etc/shadow, \"x\"]\n";
        assert_eq!(line_of(text, "/etc/passwd"), Some(4));
        assert_eq!(line_of(text, "../../../etc/passwd"), Some(3));
        assert_eq!(line_of(text, "/etc/shadow"), Some(5));
        assert_eq!(line_of(text, "x"), Some(5));
        assert_eq!(line_of(text, "/etc"), None);
    }
}
