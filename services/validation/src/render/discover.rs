//! Which directories are rendered: a directory with a kustomization is a Kustomize root, one
//! with `Chart.yaml` a Helm chart. A kustomization another root references (a base or a
//! component) is rendered only as part of it. Files under a root are the tool's input, never
//! plain manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use configsync_core::event::Finding;

use super::{Discovered, Root, RootKind, finding, join, kustomize};
use crate::manifests::is_manifest;
use crate::sources::{self, MAX_DEPTH};

/// The file names kustomize reads, in its order of preference.
pub(super) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The kustomization file of `dir`, if it has one.
pub(super) fn kustomization_file(dir: &Path) -> Option<&'static str> {
    KUSTOMIZATION_FILES
        .into_iter()
        .find(|name| is_regular_or_link(&dir.join(name)))
}

fn is_regular_or_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() || m.file_type().is_symlink())
}

/// Whether `dir` is a chart (`Chart.yaml`) or a kustomization root. A directory with both
/// is a chart: `Chart.yaml` is what makes its templates non-YAML.
pub fn root_kind(dir: &Path) -> Option<RootKind> {
    if is_regular_or_link(&dir.join("Chart.yaml")) {
        Some(RootKind::Helm)
    } else if kustomization_file(dir).is_some() {
        Some(RootKind::Kustomize)
    } else {
        None
    }
}

/// Whether a file name is a renderer's input rather than a manifest: kustomizations and
/// `Chart.yaml`. Helm value files need no rule: they only count inside a chart, and chart
/// directories are never walked for plain files (`values-configmap.yaml` elsewhere is a
/// manifest like any other).
pub fn is_render_input(file_name: &str) -> bool {
    KUSTOMIZATION_FILES.contains(&file_name) || file_name == "Chart.yaml"
}

/// The root that `path` (root-relative) lies in, if any: the outermost chart (subcharts are
/// rendered by their parent), else the nearest kustomization.
pub(crate) fn enclosing_root(repo_root: &Path, path: &str) -> Option<Root> {
    let mut dirs = vec![".".to_string()];
    let mut acc = String::new();
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        acc = join(&acc, part);
        dirs.push(acc.clone());
    }
    let kinds: Vec<(String, RootKind)> = dirs
        .into_iter()
        .filter_map(|d| root_kind(&repo_root.join(&d)).map(|k| (d, k)))
        .collect();
    kinds
        .iter()
        .find(|(_, k)| *k == RootKind::Helm)
        .or_else(|| kinds.last())
        .map(|(dir, kind)| Root {
            dir: dir.clone(),
            kind: *kind,
        })
}

/// Finds the roots and plain manifest files under `paths` (relative to `root`, or absolute
/// inside it). Symbolic links outside roots with a manifest's name are listed as plain files:
/// the reader (`sources::read`) follows those that stay inside the root and refuses the
/// others. Other links are ignored, except links to directories, which are never followed
/// and get a warning.
pub fn discover(root: &Path, paths: &[PathBuf]) -> (Discovered, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut walk = Walk::default();
    let root = match root.canonicalize() {
        Ok(r) => r,
        Err(e) => {
            let shown = root.display().to_string();
            findings.push(finding(
                "file.unreadable",
                &shown,
                None,
                format!("root is unreadable: {e}"),
            ));
            return (Discovered::default(), findings);
        }
    };
    for path in paths {
        let shown = path.display().to_string();
        let relative = if path.is_absolute() {
            match path.strip_prefix(&root) {
                Ok(r) => r.to_path_buf(),
                Err(_) => {
                    findings.push(finding(
                        "file.path",
                        &shown,
                        None,
                        "path is outside the repository root".into(),
                    ));
                    continue;
                }
            }
        } else {
            path.clone()
        };
        if relative
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            findings.push(finding(
                "file.path",
                &shown,
                None,
                "path leaves the repository root ('..')".into(),
            ));
            continue;
        }
        let relative = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => p.to_str(),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("/");
        let relative = if relative.is_empty() {
            ".".to_string()
        } else {
            relative
        };
        match enclosing_root(&root, &relative) {
            Some(r) if r.kind == RootKind::Helm => {
                walk.roots.insert(r.dir, r.kind);
            }
            Some(r) => {
                walk.roots.insert(r.dir.clone(), r.kind);
                walk.visit(&root, &relative, true, 0, &mut findings);
            }
            None => walk.visit(&root, &relative, false, 0, &mut findings),
        }
    }
    (select(&root, walk), findings)
}

#[derive(Default)]
struct Walk {
    roots: BTreeMap<String, RootKind>,
    plain: BTreeSet<String>,
}

impl Walk {
    /// Visits root-relative `rel`, `depth` directories below the path given; `in_root` when
    /// a kustomization above owns its files.
    fn visit(
        &mut self,
        root: &Path,
        rel: &str,
        in_root: bool,
        depth: usize,
        findings: &mut Vec<Finding>,
    ) {
        let full = root.join(rel);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) => {
                findings.push(finding(
                    "file.unreadable",
                    rel,
                    None,
                    format!("cannot read: {e}"),
                ));
                return;
            }
        };
        if meta.file_type().is_symlink() {
            // Inside a kustomization, links are the pre-checks' findings (`render.symlink`).
            if in_root {
                return;
            }
            match full.canonicalize() {
                Ok(target) if target.is_dir() => {
                    findings.push(sources::link_to_directory(rel, &target));
                }
                _ if is_manifest(rel) => {
                    self.plain.insert(rel.to_string());
                }
                _ => {}
            }
            return;
        }
        if meta.is_file() {
            let name = rel.rsplit('/').next().unwrap_or(rel);
            if !in_root && is_manifest(rel) && !is_render_input(name) {
                self.plain.insert(rel.to_string());
            }
            return;
        }
        if !meta.is_dir() {
            return;
        }
        let mut in_root = in_root;
        match root_kind(&full) {
            Some(RootKind::Helm) => {
                self.roots.insert(rel.to_string(), RootKind::Helm);
                return;
            }
            Some(RootKind::Kustomize) => {
                self.roots.insert(rel.to_string(), RootKind::Kustomize);
                in_root = true;
            }
            None => {}
        }
        if depth >= MAX_DEPTH {
            findings.push(sources::too_deep(rel));
            return;
        }
        let mut names: Vec<String> = match std::fs::read_dir(&full) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect(),
            Err(e) => {
                findings.push(finding(
                    "file.unreadable",
                    rel,
                    None,
                    format!("cannot list: {e}"),
                ));
                return;
            }
        };
        names.sort();
        for name in names.iter().filter(|n| !n.starts_with('.')) {
            self.visit(root, &join(rel, name), in_root, depth + 1, findings);
        }
    }
}

/// Which kustomize roots are rendered: those no other root references, minus components;
/// a group of roots that only reference each other (a cycle) is rendered too, so that
/// kustomize reports the cycle rather than the roots silently disappearing.
fn select(root: &Path, walk: Walk) -> Discovered {
    let mut references: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut components = BTreeSet::new();
    for (dir, kind) in &walk.roots {
        if *kind == RootKind::Kustomize {
            let refs = kustomize::local_references(root, dir);
            if refs.is_component {
                components.insert(dir.as_str());
            }
            references.insert(dir, refs.dirs);
        }
    }
    let referenced: BTreeSet<&str> = references
        .iter()
        .flat_map(|(from, to)| to.iter().filter(move |t| t.as_str() != *from))
        .map(String::as_str)
        .collect();
    let mut rendered: BTreeSet<&str> = walk
        .roots
        .keys()
        .map(String::as_str)
        .filter(|d| !referenced.contains(d) && !components.contains(d))
        .collect();
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = rendered.iter().copied().collect();
    while let Some(dir) = stack.pop() {
        if reached.insert(dir) {
            for next in references.get(dir).into_iter().flatten() {
                stack.push(next);
            }
        }
    }
    for (dir, kind) in &walk.roots {
        if *kind == RootKind::Kustomize
            && !reached.contains(dir.as_str())
            && !components.contains(dir.as_str())
        {
            rendered.insert(dir);
        }
    }
    Discovered {
        roots: walk
            .roots
            .iter()
            .filter(|(d, _)| rendered.contains(d.as_str()))
            .map(|(dir, kind)| Root {
                dir: dir.clone(),
                kind: *kind,
            })
            .collect(),
        bases: walk
            .roots
            .keys()
            .filter(|d| !rendered.contains(d.as_str()))
            .cloned()
            .collect(),
        plain: walk.plain.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::render::test_write as write;

    #[test]
    fn finds_roots_bases_and_plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "configs/base/kustomization.yaml",
            "resources: [d.yaml]\n",
        );
        write(root, "configs/base/d.yaml", "kind: Deployment\n");
        write(
            root,
            "configs/prod/kustomization.yaml",
            "resources:\n- ../base\ncomponents:\n- ../comp\n",
        );
        write(
            root,
            "configs/comp/kustomization.yaml",
            "kind: Component\nresources: [np.yaml]\n",
        );
        write(root, "configs/lonely/Kustomization", "kind: Component\n");
        write(root, "configs/plain/cm.yaml", "kind: ConfigMap\n");
        write(root, "configs/plain/values.yaml", "a: 1\n");
        write(root, "charts/web/Chart.yaml", "name: web\n");
        write(root, "charts/web/templates/d.yaml", "{{ .Values }}\n");
        write(root, "charts/web/charts/sub/Chart.yaml", "name: sub\n");
        write(root, "cycle/a/kustomization.yaml", "resources: [../b]\n");
        write(root, "cycle/b/kustomization.yaml", "resources: [../a]\n");
        std::os::unix::fs::symlink("/etc/hostname", root.join("configs/plain/l.yaml")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("LICENSE")).unwrap();
        std::os::unix::fs::symlink("..", root.join("configs/plain/loop")).unwrap();
        let (d, findings) = discover(root, &[PathBuf::from(".")]);
        let got: Vec<_> = findings
            .iter()
            .map(|f| (f.rule.as_str(), f.file.as_deref().unwrap()))
            .collect();
        assert_eq!(got, [("file.refused", "configs/plain/loop")]);
        let roots: Vec<_> = d.roots.iter().map(|r| (r.dir.as_str(), r.kind)).collect();
        assert_eq!(
            roots,
            [
                ("charts/web", RootKind::Helm),
                ("configs/prod", RootKind::Kustomize),
                ("cycle/a", RootKind::Kustomize),
                ("cycle/b", RootKind::Kustomize),
            ]
        );
        assert_eq!(d.bases, ["configs/base", "configs/comp", "configs/lonely"]);
        assert_eq!(
            d.plain,
            [
                "configs/plain/cm.yaml",
                "configs/plain/l.yaml",
                "configs/plain/values.yaml"
            ],
            "a values file outside a chart is a manifest; a link not named as one is ignored"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let deep: Vec<&str> = vec!["d"; MAX_DEPTH + 2];
        write(dir.path(), &format!("{}/cm.yaml", deep.join("/")), "a: 1\n");
        write(dir.path(), "d/cm.yaml", "a: 1\n");
        let (d, findings) = discover(dir.path(), &[PathBuf::from(".")]);
        assert_eq!(d.plain, ["d/cm.yaml"]);
        let got: Vec<_> = findings
            .iter()
            .map(|f| (f.rule.as_str(), f.file.clone().unwrap()))
            .collect();
        assert_eq!(got, [("file.too-deep", vec!["d"; MAX_DEPTH].join("/"))]);
    }

    #[test]
    fn a_path_inside_a_root_selects_the_root_and_escapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "charts/web/Chart.yaml", "name: web\n");
        write(root, "charts/web/charts/sub/Chart.yaml", "name: sub\n");
        write(root, "charts/web/charts/sub/templates/x.yaml", "a: 1\n");
        let (d, findings) = discover(
            root,
            &[
                PathBuf::from("charts/web/charts/sub/templates/x.yaml"),
                PathBuf::from("../x"),
                PathBuf::from("/etc"),
            ],
        );
        assert_eq!(
            d.roots,
            [Root {
                dir: "charts/web".into(),
                kind: RootKind::Helm
            }]
        );
        assert!(d.plain.is_empty());
        let rules: Vec<_> = findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["file.path", "file.path"]);
    }
}
