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
    Finding {
        severity: Severity::Error,
        rule: rule.into(),
        message,
        file: Some(file.into()),
        line: None,
        column: None,
        object: None,
        path: None,
    }
}

/// Reads every manifest under `paths` (files or directories, relative to `root` or absolute
/// inside it). Files larger than `max_file_bytes` are not read but reported.
pub fn read(root: &Path, paths: &[PathBuf], max_file_bytes: u64) -> Sources {
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
    for path in paths {
        let shown = path.display().to_string();
        if path.is_relative() && path.components().any(|c| matches!(c, Component::ParentDir)) {
            sources.findings.push(finding(
                "file.path",
                &shown,
                "path leaves the repository root ('..')".into(),
            ));
            continue;
        }
        let full = if path.is_absolute() {
            path.clone()
        } else {
            root.join(path)
        };
        if let Ok(inside) = full.strip_prefix(&root)
            && enclosing_root(&root, &inside.display().to_string()).is_some()
        {
            // Rendered, not read: `render::discover` lists the root.
            continue;
        }
        visit(&root, &full, max_file_bytes, &mut sources);
    }
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

fn visit(root: &Path, path: &Path, max: u64, out: &mut Sources) {
    let shown = relative(root, path);
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            out.findings.push(finding(
                "file.unreadable",
                &shown,
                format!("cannot read: {e}"),
            ));
            return;
        }
    };
    if meta.file_type().is_symlink() {
        // A link is followed only when its target stays inside the root.
        match path.canonicalize() {
            Ok(target) if target.starts_with(root) => visit(root, &target, max, out),
            Ok(target) => out.findings.push(finding(
                "file.refused",
                &shown,
                format!(
                    "symbolic link to {} leaves the repository root; not read",
                    target.display()
                ),
            )),
            Err(e) => out.findings.push(finding(
                "file.unreadable",
                &shown,
                format!("broken symbolic link: {e}"),
            )),
        }
        return;
    }
    if !path.starts_with(root) {
        out.findings.push(finding(
            "file.path",
            &shown,
            "path is outside the repository root".into(),
        ));
        return;
    }
    if meta.is_dir() {
        if root_kind(path).is_some() {
            return;
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(e) => {
                out.findings.push(finding(
                    "file.unreadable",
                    &shown,
                    format!("cannot list: {e}"),
                ));
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
                visit(root, &entry, max, out);
            }
        }
        return;
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !is_manifest(&shown) || is_render_input(name) {
        return;
    }
    if meta.len() > max {
        out.findings.push(finding(
            "file.too-large",
            &shown,
            format!("file is {} bytes, over the limit of {max}", meta.len()),
        ));
        return;
    }
    match std::fs::read(path) {
        Ok(bytes) => out.files.push((shown, bytes)),
        Err(e) => out.findings.push(finding(
            "file.unreadable",
            &shown,
            format!("cannot read: {e}"),
        )),
    }
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
        assert_eq!(files, ["plain/cm.yaml"]);
        assert!(s.findings.is_empty(), "{:?}", s.findings);
    }
}
