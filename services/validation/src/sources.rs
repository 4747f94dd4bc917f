//! Reading manifest files from a checkout for `configsync validate`: paths are walked in a
//! stable order, hidden directories (`.git`) skipped, and nothing outside the root is read —
//! a symbolic link or a path that leaves it is a finding, never followed.

use std::path::{Component, Path, PathBuf};

use configsync_core::event::{Finding, Severity};

use crate::manifests::is_manifest;
use crate::render::{enclosing_root, is_render_input, root_kind};

/// Files read, relative to the root, and findings for what could not or must not be read.
#[derive(Debug, Default)]
pub struct Sources {
    pub files: Vec<(String, Vec<u8>)>,
    pub findings: Vec<Finding>,
}

fn finding(rule: &str, file: &str, message: String) -> Finding {
    Finding::file_error(rule, file, None, message)
}

/// Deepest directory nesting walked below a given path; deeper directories are a finding
/// (no real repository needs more, and the walk recurses).
pub(crate) const MAX_DEPTH: usize = 64;

/// Reads every manifest under `paths` (files or directories, relative to `root` or absolute
/// inside it), leaving Kustomize and Helm roots to `render`. Files larger than
/// `max_file_bytes` are not read but reported. With no paths nothing is read and nothing
/// reported (an unreadable root is `render::discover`'s finding).
pub fn read(root: &Path, paths: &[PathBuf], max_file_bytes: u64) -> Sources {
    if paths.is_empty() {
        return Sources::default();
    }
    read_with(root, paths, max_file_bytes, true)
}

/// Like `read`, but files under Kustomize and Helm roots are read as plain manifests too
/// (only the kustomization and `Chart.yaml` themselves are skipped): for CRD directories
/// such as kubebuilder's `config/crd`, whose `bases/` a kustomization lists.
pub fn read_plain(root: &Path, paths: &[PathBuf], max_file_bytes: u64) -> Sources {
    read_with(root, paths, max_file_bytes, false)
}

/// What a walk carries along.
struct Walk {
    root: PathBuf,
    max: u64,
    /// Whether directories rendered by a tool are left out.
    skip_render_roots: bool,
    out: Sources,
}

fn read_with(
    root: &Path,
    paths: &[PathBuf],
    max_file_bytes: u64,
    skip_render_roots: bool,
) -> Sources {
    let mut sources = Sources::default();
    let root = match root.canonicalize() {
        Ok(r) => r,
        Err(e) => {
            sources.findings.push(finding(
                "file.unreadable",
                &root.display().to_string(),
                format!("root is unreadable: {e}"),
            ));
            return sources;
        }
    };
    let mut walk = Walk {
        root,
        max: max_file_bytes,
        skip_render_roots,
        out: sources,
    };
    for path in paths {
        let shown = path.display().to_string();
        // Checked for absolute paths too: `/repo/../etc` starts with `/repo` component-wise.
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            walk.out.findings.push(finding(
                "file.path",
                &shown,
                "path leaves the repository root ('..')".into(),
            ));
            continue;
        }
        let full = if path.is_absolute() {
            path.clone()
        } else {
            walk.root.join(path)
        };
        if skip_render_roots
            && let Ok(inside) = full.strip_prefix(&walk.root)
            && enclosing_root(&walk.root, &inside.display().to_string()).is_some()
        {
            // Rendered, not read: `render::discover` lists the root.
            continue;
        }
        walk.visit(&full, 0);
    }
    let mut sources = walk.out;
    sources.files.sort_by(|a, b| a.0.cmp(&b.0));
    sources.files.dedup_by(|a, b| a.0 == b.0);
    sources
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

impl Walk {
    fn push(&mut self, rule: &str, file: &str, message: String) {
        self.out.findings.push(finding(rule, file, message));
    }

    /// Visits `path`, `depth` directories below the path it was given as.
    fn visit(&mut self, path: &Path, depth: usize) {
        let shown = relative(&self.root, path);
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.push("file.unreadable", &shown, format!("cannot read: {e}"));
                return;
            }
        };
        if meta.file_type().is_symlink() {
            self.link(path, &shown);
            return;
        }
        if !path.starts_with(&self.root) {
            self.push(
                "file.path",
                &shown,
                "path is outside the repository root".into(),
            );
            return;
        }
        if meta.is_dir() {
            self.directory(path, &shown, depth);
            return;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !is_manifest(&shown) || is_render_input(name) {
            return;
        }
        if meta.len() > self.max {
            let message = format!(
                "file is {} bytes, over the limit of {}",
                meta.len(),
                self.max
            );
            self.push("file.too-large", &shown, message);
            return;
        }
        match std::fs::read(path) {
            Ok(bytes) => self.out.files.push((shown, bytes)),
            Err(e) => self.push("file.unreadable", &shown, format!("cannot read: {e}")),
        }
    }

    /// A link to a manifest file is read when its target stays inside the root. A link to a
    /// directory is never followed (a link to `..` would make the walk endless; a directory
    /// inside the root is walked under its own name anyway), and links to other files are
    /// not manifests and are ignored.
    fn link(&mut self, path: &Path, shown: &str) {
        let target = match path.canonicalize() {
            Ok(target) => target,
            Err(_) if !is_manifest(shown) => return,
            Err(e) => {
                self.push(
                    "file.unreadable",
                    shown,
                    format!("broken symbolic link: {e}"),
                );
                return;
            }
        };
        if target.is_dir() {
            self.out.findings.push(link_to_directory(shown, &target));
            return;
        }
        if !is_manifest(shown) {
            return;
        }
        if target.starts_with(&self.root) {
            // The target is canonical, so not a link: this never recurses into `link`.
            self.visit(&target, 0);
        } else {
            self.push(
                "file.refused",
                shown,
                format!(
                    "symbolic link to {} leaves the repository root; not read",
                    target.display()
                ),
            );
        }
    }

    fn directory(&mut self, path: &Path, shown: &str, depth: usize) {
        if self.skip_render_roots && root_kind(path).is_some() {
            return;
        }
        if depth >= MAX_DEPTH {
            self.out.findings.push(too_deep(shown));
            return;
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(e) => {
                self.push("file.unreadable", shown, format!("cannot list: {e}"));
                return;
            }
        };
        entries.sort();
        for entry in entries {
            let hidden = entry
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden {
                self.visit(&entry, depth + 1);
            }
        }
    }
}

/// The warning for a symbolic link to a directory, which no walk follows.
pub(crate) fn link_to_directory(shown: &str, target: &Path) -> Finding {
    Finding {
        severity: Severity::Warning,
        ..finding(
            "file.refused",
            shown,
            format!(
                "symbolic link to the directory {}; links to directories are not followed",
                target.display()
            ),
        )
    }
}

/// The finding for a directory nested deeper than `MAX_DEPTH` below the path given.
pub(crate) fn too_deep(shown: &str) -> Finding {
    finding(
        "file.too-deep",
        shown,
        format!("directory is nested more than {MAX_DEPTH} levels deep; not read"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_in_order_skips_hidden_and_refuses_links_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("configs/dev/b")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("configs/dev/b/z.yaml"), "a: 1").unwrap();
        std::fs::write(root.join("configs/dev/a.yml"), "a: 1").unwrap();
        std::fs::write(root.join("configs/dev/notes.txt"), "x").unwrap();
        std::fs::write(root.join(".git/x.yaml"), "a: 1").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("configs/dev/out.yaml")).unwrap();
        std::os::unix::fs::symlink(
            root.join("configs/dev/a.yml"),
            root.join("configs/dev/in.yaml"),
        )
        .unwrap();
        let s = read(
            root,
            &[PathBuf::from("."), PathBuf::from("../elsewhere")],
            1 << 20,
        );
        let files: Vec<_> = s.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            files,
            ["configs/dev/a.yml", "configs/dev/b/z.yaml"],
            "the inside link resolves to a.yml, read once"
        );
        let rules: Vec<_> = s.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["file.refused", "file.path"], "{:?}", s.findings);
    }

    #[test]
    fn kustomize_and_helm_roots_and_their_inputs_are_left_to_render() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            ("app/kustomization.yaml", "resources: [d.yaml]"),
            ("app/d.yaml", "a: 1"),
            ("app/sub/e.yaml", "a: 1"),
            ("charts/web/Chart.yaml", "name: web"),
            ("charts/web/values.yaml", "a: 1"),
            ("charts/web/templates/t.yaml", "{{ .Values.a }}"),
            ("plain/values-prod.yaml", "a: 1"),
            ("plain/cm.yaml", "a: 1"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let s = read(
            root,
            &[
                PathBuf::from("."),
                PathBuf::from("charts/web/templates/t.yaml"),
                PathBuf::from("app/sub"),
            ],
            1 << 20,
        );
        let files: Vec<_> = s.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            files,
            ["plain/cm.yaml", "plain/values-prod.yaml"],
            "a values file outside a chart is a manifest"
        );
        assert!(s.findings.is_empty(), "{:?}", s.findings);
    }

    #[test]
    fn links_to_directories_are_not_followed_so_a_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("r/a")).unwrap();
        std::fs::write(root.join("r/a/cm.yaml"), "a: 1").unwrap();
        std::os::unix::fs::symlink("..", root.join("r/a/loop")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("r/etc.yaml")).unwrap();
        let s = read(&root.join("r"), &[PathBuf::from(".")], 1 << 20);
        let files: Vec<_> = s.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(files, ["a/cm.yaml"]);
        let got: Vec<_> = s
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.file.as_deref().unwrap(), f.severity))
            .collect();
        assert_eq!(
            got,
            [
                ("file.refused", "a/loop", Severity::Warning),
                ("file.refused", "etc.yaml", Severity::Warning),
            ]
        );
        assert!(s.findings[0].message.contains("not followed"));
    }

    #[test]
    fn nesting_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let deep: PathBuf = (0..MAX_DEPTH + 2).map(|_| "d").collect();
        std::fs::create_dir_all(dir.path().join(&deep)).unwrap();
        std::fs::write(dir.path().join(&deep).join("cm.yaml"), "a: 1").unwrap();
        std::fs::write(dir.path().join("d/cm.yaml"), "a: 1").unwrap();
        let s = read(dir.path(), &[PathBuf::from(".")], 1 << 20);
        let files: Vec<_> = s.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(files, ["d/cm.yaml"]);
        let rules: Vec<_> = s.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["file.too-deep"]);
        let at: PathBuf = (0..MAX_DEPTH).map(|_| "d").collect();
        assert_eq!(s.findings[0].file.as_deref(), at.to_str());
    }

    #[test]
    fn only_links_named_as_manifests_are_read_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("LICENSE")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("docs/x.md")).unwrap();
        std::os::unix::fs::symlink("missing", root.join("docs/gone.md")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("docs/out.yaml")).unwrap();
        let s = read(
            root,
            &[PathBuf::from("."), PathBuf::from("LICENSE")],
            1 << 20,
        );
        assert!(s.files.is_empty());
        let got: Vec<_> = s
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.file.as_deref().unwrap()))
            .collect();
        assert_eq!(got, [("file.refused", "docs/out.yaml")]);
    }

    #[test]
    fn an_unreadable_root_with_nothing_to_read_is_not_reported() {
        let missing = Path::new("/nonexistent-configsync-root");
        assert!(read(missing, &[], 1 << 20).findings.is_empty());
        let rules: Vec<_> = read(missing, &[PathBuf::from(".")], 1 << 20)
            .findings
            .into_iter()
            .map(|f| f.rule)
            .collect();
        assert_eq!(rules, ["file.unreadable"]);
        assert_eq!(read_plain(missing, &[], 1 << 20).findings.len(), 1);
    }

    #[test]
    fn an_absolute_path_with_dot_dot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        let root = dir.path().join("in").canonicalize().unwrap();
        std::fs::write(dir.path().join("secret.yaml"), "a: 1").unwrap();
        let s = read(&root, &[root.join("../secret.yaml")], 1 << 20);
        assert!(s.files.is_empty());
        let rules: Vec<_> = s.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["file.path"]);
    }

    #[test]
    fn read_plain_reads_inside_render_roots_but_not_links_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            ("config/crd/kustomization.yaml", "resources: [bases/a.yaml]"),
            ("config/crd/bases/a.yaml", "kind: CustomResourceDefinition"),
            ("config/crd/bases/b.yaml", "kind: CustomResourceDefinition"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", root.join("config/crd/bases/c.yaml")).unwrap();
        let paths = [PathBuf::from("config/crd")];
        assert!(
            read(root, &paths, 1 << 20).files.is_empty(),
            "a render root"
        );
        let s = read_plain(root, &paths, 1 << 20);
        let files: Vec<_> = s.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            files,
            ["config/crd/bases/a.yaml", "config/crd/bases/b.yaml"]
        );
        let rules: Vec<_> = s.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["file.refused"]);
    }
}
