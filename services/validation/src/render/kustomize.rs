//! Kustomize roots: every path a kustomization (and the bases and components it includes)
//! names is checked before kustomize runs. Remote bases are refused (kustomize would clone
//! them), as are absolute paths and paths leaving the repository (the CVE-2022-24877 class),
//! `helmCharts` (inflated from a chart repository) and symbolic links (CVE-2022-24904 class).

use std::collections::BTreeSet;
use std::path::Path;

use configsync_core::event::Finding;
use serde_yaml::Value;

use super::discover::kustomization_file;
use super::reference::{Target, resolve, symlink_on_path};
use super::{RenderOptions, Rendered, finding, join, line_of, sandbox};

/// Largest kustomization file read for the checks.
const MAX_KUSTOMIZATION_BYTES: u64 = 1024 * 1024;
/// Largest secret generator file (`files`, `envs`) read for its secrets; kustomize's error
/// messages quote lines and values, not whole large files.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Fields listing paths or kustomization directories (`resources` may also name files).
const INCLUDES: [&str; 3] = ["resources", "bases", "components"];
/// Fields listing files.
const FILE_LISTS: [&str; 3] = ["crds", "configurations", "patchesStrategicMerge"];
/// Fields listing plugin configuration files or inline configurations.
const PLUGIN_LISTS: [&str; 3] = ["generators", "transformers", "validators"];
/// Fields whose entries each have a `path`.
const PATH_ENTRIES: [&str; 3] = ["patches", "patchesJson6902", "replacements"];
/// Fields that make kustomize fetch and inflate Helm charts.
const HELM_FIELDS: [&str; 3] = ["helmCharts", "helmGlobals", "helmChartInflationGenerator"];

/// A kustomization's local directory references, for `discover`.
#[derive(Debug, Default)]
pub(super) struct References {
    pub dirs: Vec<String>,
    pub is_component: bool,
}

/// The kustomization in root-relative `dir`, parsed, with its text and file name.
struct Kustomization {
    file: String,
    text: String,
    value: Value,
}

fn read(repo_root: &Path, dir: &str) -> Result<Option<Kustomization>, Box<Finding>> {
    let Some(name) = kustomization_file(&repo_root.join(dir)) else {
        return Ok(None);
    };
    let file = join(dir, name);
    let full = repo_root.join(&file);
    let meta = std::fs::symlink_metadata(&full).map_err(|e| {
        Box::new(finding(
            "render.invalid",
            &file,
            None,
            format!("cannot read: {e}"),
        ))
    })?;
    if meta.file_type().is_symlink() {
        return Err(Box::new(finding(
            "render.symlink",
            &file,
            None,
            "the kustomization is a symbolic link; links are not followed".into(),
        )));
    }
    if meta.len() > MAX_KUSTOMIZATION_BYTES {
        return Err(Box::new(finding(
            "render.invalid",
            &file,
            None,
            format!(
                "kustomization is {} bytes, over the limit of {MAX_KUSTOMIZATION_BYTES}",
                meta.len()
            ),
        )));
    }
    let text = std::fs::read_to_string(&full).map_err(|e| {
        Box::new(finding(
            "render.invalid",
            &file,
            None,
            format!("cannot read: {e}"),
        ))
    })?;
    let value: Value = super::parse_yaml(&text).map_err(|(line, message)| {
        finding(
            "render.invalid",
            &file,
            line,
            format!("not valid YAML: {message}"),
        )
    })?;
    if !matches!(value, Value::Mapping(_) | Value::Null) {
        return Err(Box::new(finding(
            "render.invalid",
            &file,
            Some(1),
            "a kustomization must be a YAML mapping".into(),
        )));
    }
    Ok(Some(Kustomization { file, text, value }))
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::Sequence(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => vec![s.as_str()],
        _ => Vec::new(),
    }
}

/// Local directories named by `resources`, `bases` and `components` of the kustomization
/// in `dir` (parse errors are left to `render`, which reports them).
pub(super) fn local_references(repo_root: &Path, dir: &str) -> References {
    let Ok(Some(k)) = read(repo_root, dir) else {
        return References::default();
    };
    let dirs = INCLUDES
        .iter()
        .flat_map(|field| strings(k.value.get(field)))
        .filter_map(|entry| match resolve(dir, entry) {
            Target::Local(path) if repo_root.join(&path).is_dir() => Some(path),
            _ => None,
        })
        .collect();
    References {
        dirs,
        is_component: k.value.get("kind").and_then(Value::as_str) == Some("Component"),
    }
}

/// What the checks of a kustomization (and those it includes) found.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub findings: Vec<Finding>,
    /// Secret generator material that must not appear in kustomize's error output: each
    /// literal whole and its value, each line and value of `envs` files, and the lines of
    /// `files` entries.
    pub secrets: Vec<String>,
}

/// Every finding on the kustomization in `dir` and on those it includes, and their secrets.
pub(super) fn check(repo_root: &Path, dir: &str) -> Checked {
    let mut checker = Checker {
        repo_root,
        visited: BTreeSet::new(),
        links: BTreeSet::new(),
        checked: Checked::default(),
    };
    checker.kustomization(dir);
    checker.checked
}

struct Checker<'a> {
    repo_root: &'a Path,
    visited: BTreeSet<String>,
    links: BTreeSet<String>,
    checked: Checked,
}

impl Checker<'_> {
    fn kustomization(&mut self, dir: &str) {
        if !self.visited.insert(dir.to_string()) {
            return;
        }
        self.scan_links(dir);
        let k = match read(self.repo_root, dir) {
            Ok(Some(k)) => k,
            Ok(None) => {
                self.checked.findings.push(finding(
                    "render.invalid",
                    dir,
                    None,
                    "directory has no kustomization.yaml".into(),
                ));
                return;
            }
            Err(f) => {
                // A linked kustomization was already reported by `scan_links`.
                let reported = f.rule == "render.symlink"
                    && f.file
                        .as_ref()
                        .is_some_and(|file| self.links.contains(file));
                if !reported {
                    self.checked.findings.push(*f);
                }
                return;
            }
        };
        for field in HELM_FIELDS {
            if k.value.get(field).is_some() {
                self.checked.findings.push(finding(
                    "render.remote-source",
                    &k.file,
                    line_of(&k.text, &format!("{field}:")),
                    format!(
                        "`{field}` makes kustomize fetch and inflate Helm charts; refused \
                         (render the chart as its own Helm root instead)"
                    ),
                ));
            }
        }
        for field in INCLUDES {
            for entry in strings(k.value.get(field)) {
                if let Some(path) = self.path(&k, dir, field, entry) {
                    let full = self.repo_root.join(&path);
                    if std::fs::symlink_metadata(&full).is_err() {
                        self.checked.findings.push(finding(
                            "render.remote-source",
                            &k.file,
                            line_of(&k.text, entry),
                            format!(
                                "`{field}` entry '{entry}' is not in the repository; kustomize \
                                 would try to fetch it as a remote base; refused"
                            ),
                        ));
                    } else if full.is_dir() {
                        self.kustomization(&path);
                    }
                }
            }
        }
        for field in FILE_LISTS {
            for entry in strings(k.value.get(field)) {
                // patchesStrategicMerge also takes inline patches.
                if !entry.contains('\n') {
                    self.path(&k, dir, field, entry);
                }
            }
        }
        for field in PLUGIN_LISTS {
            for entry in strings(k.value.get(field)) {
                if !entry.contains('\n') {
                    self.path(&k, dir, field, entry);
                }
            }
        }
        for field in PATH_ENTRIES {
            if let Some(Value::Sequence(items)) = k.value.get(field) {
                for item in items {
                    for entry in strings(item.get("path")) {
                        self.path(&k, dir, field, entry);
                    }
                }
            }
        }
        for entry in strings(k.value.get("openapi").and_then(|o| o.get("path"))) {
            self.path(&k, dir, "openapi", entry);
        }
        for generator in ["configMapGenerator", "secretGenerator"] {
            let secret = generator == "secretGenerator";
            if let Some(Value::Sequence(items)) = k.value.get(generator) {
                for item in items {
                    if secret {
                        for literal in strings(item.get("literals")) {
                            self.literal(literal);
                        }
                    }
                    for entry in strings(item.get("files")) {
                        // `key=path` names the key; the path is after the first '='.
                        let path = entry.split_once('=').map_or(entry, |(_, p)| p);
                        if let Some(path) = self.path(&k, dir, generator, path)
                            && secret
                        {
                            self.secret_file(&path, false);
                        }
                    }
                    for field in ["envs", "env"] {
                        for entry in strings(item.get(field)) {
                            if let Some(path) = self.path(&k, dir, generator, entry)
                                && secret
                            {
                                self.secret_file(&path, true);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A `key=value` literal (or an env file line): the whole of it and its value, quoted
    /// or not, are secret.
    fn literal(&mut self, literal: &str) {
        let literal = literal.trim();
        self.checked.secrets.push(literal.to_string());
        if let Some((_, value)) = literal.split_once('=') {
            let value = value.trim();
            self.checked.secrets.push(value.to_string());
            let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
            self.checked.secrets.push(unquoted.to_string());
        }
    }

    /// The secrets of a generator's file (root-relative, checked): every line, and for an
    /// env file every line's value. A file too large or unreadable fails kustomize with a
    /// message about the file, not its contents.
    fn secret_file(&mut self, path: &str, env: bool) {
        let full = self.repo_root.join(path);
        let small = std::fs::symlink_metadata(&full)
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_SECRET_FILE_BYTES);
        let Some(bytes) = small.then(|| std::fs::read(&full).ok()).flatten() else {
            return;
        };
        let text = String::from_utf8_lossy(&bytes);
        self.checked.secrets.push(text.trim().to_string());
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !env {
                self.checked.secrets.push(line.to_string());
            } else if !line.starts_with('#') {
                self.literal(line);
            }
        }
    }

    /// Checks one path named in `k`; the root-relative path when it is local and safe.
    fn path(&mut self, k: &Kustomization, dir: &str, field: &str, entry: &str) -> Option<String> {
        let line = line_of(&k.text, entry);
        let refuse = |rule: &str, why: &str| {
            finding(
                rule,
                &k.file,
                line,
                format!("`{field}` entry '{entry}' {why}; refused"),
            )
        };
        match resolve(dir, entry) {
            Target::Remote => {
                self.checked.findings.push(refuse(
                    "render.remote-source",
                    "is a remote source (kustomize would fetch it)",
                ));
                None
            }
            Target::Absolute => {
                self.checked
                    .findings
                    .push(refuse("render.path-escape", "is an absolute path"));
                None
            }
            Target::Escapes => {
                self.checked
                    .findings
                    .push(refuse("render.path-escape", "leaves the repository root"));
                None
            }
            Target::Local(path) => match symlink_on_path(self.repo_root, &path) {
                Some(link) => {
                    if self.links.insert(link.clone()) {
                        self.checked.findings.push(finding(
                            "render.symlink",
                            &k.file,
                            line,
                            format!(
                                "`{field}` entry '{entry}' goes through the symbolic link \
                                 {link}; links are not followed"
                            ),
                        ));
                    }
                    None
                }
                None => Some(path),
            },
        }
    }

    /// Every symbolic link under `dir`: the scratch copy leaves them out, and a link may
    /// point anywhere on the machine.
    fn scan_links(&mut self, dir: &str) {
        let mut stack = vec![dir.to_string()];
        while let Some(current) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(self.repo_root.join(&current)) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n != ".git")
                .collect();
            names.sort();
            for name in names {
                let rel = join(&current, &name);
                let Ok(meta) = std::fs::symlink_metadata(self.repo_root.join(&rel)) else {
                    continue;
                };
                if meta.file_type().is_symlink() {
                    if self.links.insert(rel.clone()) {
                        let target = std::fs::read_link(self.repo_root.join(&rel))
                            .map(|t| t.display().to_string())
                            .unwrap_or_default();
                        self.checked.findings.push(finding(
                            "render.symlink",
                            &rel,
                            None,
                            format!(
                                "symbolic link (to '{target}') inside a kustomization being \
                                 rendered; links are not followed or copied"
                            ),
                        ));
                    }
                } else if meta.is_dir() && !self.visited.contains(&rel) {
                    stack.push(rel);
                }
            }
        }
    }
}

/// Checks then renders the kustomization in `dir` with `kustomize build` (or `kubectl
/// kustomize`), with kustomize's default load restrictions.
pub(super) fn render(
    repo_root: &Path,
    dir: &str,
    options: &RenderOptions,
) -> Result<Rendered, Vec<Finding>> {
    let name = kustomization_file(&repo_root.join(dir))
        .map_or_else(|| join(dir, "kustomization.yaml"), |n| join(dir, n));
    let Checked {
        mut findings,
        secrets,
    } = check(repo_root, dir);
    let tool = sandbox::find_tool("kustomize", options)
        .map(|p| (p, "build"))
        .or_else(|| sandbox::find_tool("kubectl", options).map(|p| (p, "kustomize")));
    let Some((program, verb)) = tool else {
        findings.push(finding(
            "render.tool-missing",
            &name,
            None,
            "neither kustomize nor kubectl is on PATH: install kubectl (it includes \
             kustomize) or kustomize to render kustomizations"
                .into(),
        ));
        return Err(findings);
    };
    if !findings.is_empty() {
        return Err(findings);
    }
    let args = vec![verb.to_string(), dir.to_string()];
    let redactions = sandbox::Redactions {
        secrets,
        drop_lines_with: Vec::new(),
    };
    sandbox::run(repo_root, &name, &program, &args, options, &redactions)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::render::test_write as write;

    fn rules(findings: &[Finding]) -> Vec<(String, String, Option<u32>)> {
        findings
            .iter()
            .map(|f| (f.rule.clone(), f.file.clone().unwrap(), f.line))
            .collect()
    }

    #[test]
    fn every_path_field_is_checked_and_bases_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "app/prod/kustomization.yaml",
            "resources:\n\
             - ../base\n\
             - https://example.com/x.yaml\n\
             - gone/dir\n\
             patches:\n\
             - path: /etc/passwd\n\
             patchesStrategicMerge:\n\
             - |\n  apiVersion: v1\n  kind: ConfigMap\n\
             configMapGenerator:\n\
             - name: c\n  files:\n  - key=../../../secret.txt\n  envs:\n  - ok.env\n\
             openapi:\n  path: ../../../schema.json\n\
             helmCharts:\n- name: x\n",
        );
        write(root, "app/prod/ok.env", "A=1\n");
        write(
            root,
            "app/base/kustomization.yaml",
            "resources:\n- git::https://example.com/repo.git\n- d.yaml\n",
        );
        write(root, "app/base/d.yaml", "kind: Deployment\n");
        let found = rules(&check(root, "app/prod").findings);
        let prod = "app/prod/kustomization.yaml".to_string();
        let base = "app/base/kustomization.yaml".to_string();
        assert_eq!(
            found,
            [
                ("render.remote-source".into(), prod.clone(), Some(19)),
                ("render.remote-source".into(), base, Some(2)),
                ("render.remote-source".into(), prod.clone(), Some(3)),
                ("render.remote-source".into(), prod.clone(), Some(4)),
                ("render.path-escape".into(), prod.clone(), Some(6)),
                ("render.path-escape".into(), prod.clone(), Some(18)),
                ("render.path-escape".into(), prod, Some(14)),
            ],
            "{found:?}"
        );
    }

    #[test]
    fn symlinks_are_refused_and_invalid_files_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a/kustomization.yaml", "resources: [x.yaml]\n");
        std::os::unix::fs::symlink("/etc/passwd", root.join("a/x.yaml")).unwrap();
        write(root, "b/kustomization.yaml", "resources: [\n");
        write(root, "real.yaml", "resources: []\n");
        std::fs::create_dir_all(root.join("c")).unwrap();
        std::os::unix::fs::symlink("../real.yaml", root.join("c/kustomization.yaml")).unwrap();
        let a = rules(&check(root, "a").findings);
        assert_eq!(
            a,
            [("render.symlink".into(), "a/x.yaml".into(), None)],
            "the link is reported once"
        );
        let b = check(root, "b").findings;
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].rule, "render.invalid");
        let c = rules(&check(root, "c").findings);
        assert_eq!(
            c,
            [("render.symlink".into(), "c/kustomization.yaml".into(), None)]
        );
    }
}
