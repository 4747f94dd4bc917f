//! Helm charts: `helm template` on a chart whose dependencies are vendored (a remote
//! repository would be fetched), whose value files stay inside the chart directory
//! (CVE-2022-24348, Argo CD's value-file path traversal) and which holds no symbolic link.

use std::path::Path;

use configsync_core::event::Finding;
use serde_yaml::Value;

use super::reference::{Target, resolve};
use super::{RenderOptions, Rendered, finding, join, line_of, sandbox};

/// Largest `Chart.yaml` read for the checks.
const MAX_CHART_BYTES: u64 = 1024 * 1024;
/// Longest release name Helm accepts.
const MAX_RELEASE_NAME: usize = 53;
/// Largest value file read for the values kept out of error output.
const MAX_VALUES_BYTES: u64 = 8 * 1024 * 1024;
/// Value strings this short or shorter would drop most error lines (`true`, `app`) and are
/// not what a secret looks like.
const MIN_HIDDEN_VALUE_CHARS: usize = 3;

/// What the checks learnt about the chart in a root-relative directory.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Chart {
    pub release: String,
    /// Value files, root-relative, in the order given to `helm template -f`.
    pub values: Vec<String>,
}

/// Checks the chart in `dir` for environment `env`: every finding, or what `helm template`
/// needs.
pub(super) fn check(repo_root: &Path, dir: &str, env: Option<&str>) -> Result<Chart, Vec<Finding>> {
    let chart_file = join(dir, "Chart.yaml");
    let mut findings = links(repo_root, dir);
    let mut release = None;
    match read_chart(repo_root, &chart_file) {
        Ok((text, value)) => {
            release = value.get("name").and_then(Value::as_str).map(release_name);
            findings.extend(dependencies(repo_root, dir, &chart_file, &text, &value));
        }
        Err(f) => findings.push(*f),
    }
    let mut values = Vec::new();
    if is_regular(&repo_root.join(dir).join("values.yaml")) {
        values.push(join(dir, "values.yaml"));
    }
    if let Some(env) = env {
        let file = format!("values-{env}.yaml");
        let plain_name = !env.is_empty()
            && env != "."
            && !env.contains("..")
            && env
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain_name {
            findings.push(finding(
                "render.path-escape",
                &chart_file,
                None,
                format!(
                    "value file '{file}' is not a plain file name inside the chart directory; \
                     refused"
                ),
            ));
        } else if is_regular(&repo_root.join(dir).join(&file)) {
            values.push(join(dir, &file));
        }
    }
    if !findings.is_empty() {
        return Err(findings);
    }
    let fallback = dir.rsplit('/').next().map(release_name);
    Ok(Chart {
        release: release
            .or(fallback)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "release".into()),
        values,
    })
}

/// A regular file, not reached through a link (links are findings of their own).
fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

fn read_chart(repo_root: &Path, file: &str) -> Result<(String, Value), Box<Finding>> {
    let full = repo_root.join(file);
    let meta = std::fs::symlink_metadata(&full).map_err(|e| {
        Box::new(finding(
            "render.invalid",
            file,
            None,
            format!("cannot read: {e}"),
        ))
    })?;
    if !meta.is_file() {
        // A link is reported by `links`; anything else is not a chart file.
        return Err(Box::new(finding(
            "render.invalid",
            file,
            None,
            "Chart.yaml is not a regular file".into(),
        )));
    }
    if meta.len() > MAX_CHART_BYTES {
        return Err(Box::new(finding(
            "render.invalid",
            file,
            None,
            format!(
                "Chart.yaml is {} bytes, over the limit of {MAX_CHART_BYTES}",
                meta.len()
            ),
        )));
    }
    let text = std::fs::read_to_string(&full).map_err(|e| {
        Box::new(finding(
            "render.invalid",
            file,
            None,
            format!("cannot read: {e}"),
        ))
    })?;
    let value = super::parse_yaml(&text).map_err(|(line, message)| {
        Box::new(finding(
            "render.invalid",
            file,
            line,
            format!("not valid YAML: {message}"),
        ))
    })?;
    Ok((text, value))
}

/// `dependencies[].repository`: a remote one is accepted only when the dependency is
/// vendored under `charts/` (then `helm template` never fetches it); a `file://` one must
/// stay inside the repository.
fn dependencies(
    repo_root: &Path,
    dir: &str,
    file: &str,
    text: &str,
    chart: &Value,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(Value::Sequence(deps)) = chart.get("dependencies") else {
        return findings;
    };
    for dep in deps {
        let name = dep.get("name").and_then(Value::as_str).unwrap_or_default();
        let repository = dep
            .get("repository")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim();
        let line = line_of(text, repository).filter(|_| !repository.is_empty());
        if let Some(local) = repository.strip_prefix("file://") {
            match resolve(dir, local) {
                Target::Local(_) => {}
                _ => findings.push(finding(
                    "render.path-escape",
                    file,
                    line,
                    format!(
                        "dependency '{name}' repository '{repository}' leaves the repository \
                         root; refused"
                    ),
                )),
            }
            continue;
        }
        let remote = repository.contains("://")
            || repository.starts_with('@')
            || repository.starts_with("alias:");
        if remote && !vendored(&repo_root.join(dir).join("charts"), name) {
            findings.push(finding(
                "render.remote-source",
                file,
                line,
                format!(
                    "dependency '{name}' comes from '{repository}' and is not vendored under \
                     charts/; fetching is refused (run `helm dependency build` and commit charts/)"
                ),
            ));
        }
    }
    findings
}

/// Whether `charts/` holds dependency `name`, unpacked or as `name-<version>.tgz`.
fn vendored(charts: &Path, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    if charts.join(name).join("Chart.yaml").is_file() {
        return true;
    }
    std::fs::read_dir(charts).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|rest| rest.ends_with(".tgz"))
            }) && e.file_type().is_ok_and(|t| t.is_file())
        })
    })
}

/// Every symbolic link in the chart: Helm follows links in charts, and a value file or
/// template reached through one may be anywhere on the machine.
fn links(repo_root: &Path, dir: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut stack = vec![dir.to_string()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(repo_root.join(&current)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        for name in names {
            let rel = join(&current, &name);
            let Ok(meta) = std::fs::symlink_metadata(repo_root.join(&rel)) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(repo_root.join(&rel))
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                findings.push(finding(
                    "render.symlink",
                    &rel,
                    None,
                    format!(
                        "symbolic link (to '{target}') inside a chart; links are not followed \
                         or copied"
                    ),
                ));
            } else if meta.is_dir() {
                stack.push(rel);
            }
        }
    }
    findings.sort_by(|a, b| a.file.cmp(&b.file));
    findings
}

/// Every string value longer than `MIN_HIDDEN_VALUE_CHARS` in the value files: a chart's
/// values may be secrets, and Helm's errors quote them. An unreadable or invalid file yields
/// none (Helm then fails on the file, not on a value).
fn value_strings(repo_root: &Path, files: &[String]) -> Vec<String> {
    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) if s.chars().count() > MIN_HIDDEN_VALUE_CHARS => {
                out.push(s.clone());
            }
            Value::Sequence(items) => items.iter().for_each(|v| collect(v, out)),
            Value::Mapping(map) => map.values().for_each(|v| collect(v, out)),
            Value::Tagged(tagged) => collect(&tagged.value, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for file in files {
        let full = repo_root.join(file);
        if !std::fs::symlink_metadata(&full)
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_VALUES_BYTES)
        {
            continue;
        }
        let parsed = std::fs::read_to_string(&full)
            .ok()
            .and_then(|text| super::parse_yaml::<Value>(&text).ok());
        if let Some(value) = parsed {
            collect(&value, &mut out);
        }
    }
    out
}

/// A release name Helm accepts: lower-case letters, digits and '-', at most 53 characters.
fn release_name(name: &str) -> String {
    let cleaned: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_RELEASE_NAME)
        .collect();
    cleaned.trim_matches('-').to_string()
}

/// Checks then renders the chart in `dir` with `helm template <release> <dir> -f ...`,
/// without `--namespace`.
pub(super) fn render(
    repo_root: &Path,
    dir: &str,
    options: &RenderOptions,
) -> Result<Rendered, Vec<Finding>> {
    let name = join(dir, "Chart.yaml");
    let checked = check(repo_root, dir, options.env.as_deref());
    let Some(program) = sandbox::find_tool("helm", options) else {
        let mut findings = checked.err().unwrap_or_default();
        findings.push(finding(
            "render.tool-missing",
            &name,
            None,
            "helm is not on PATH: install Helm 3 (https://helm.sh/docs/intro/install/) to \
             render charts"
                .into(),
        ));
        return Err(findings);
    };
    let chart = checked?;
    let redactions = sandbox::Redactions {
        secrets: Vec::new(),
        drop_lines_with: value_strings(repo_root, &chart.values),
    };
    let mut args = vec!["template".to_string(), chart.release, dir.to_string()];
    for file in chart.values {
        args.push("-f".into());
        args.push(file);
    }
    sandbox::run(repo_root, &name, &program, &args, options, &redactions)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::render::test_write as write;

    #[test]
    fn vendored_dependencies_and_value_files_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "charts/web/Chart.yaml",
            "apiVersion: v2\nname: Web_App\ndependencies:\n\
             - name: redis\n  repository: https://charts.example.com\n\
             - name: pg\n  repository: oci://registry.example/pg\n\
             - name: lib\n  repository: file://../lib\n",
        );
        write(root, "charts/web/charts/redis/Chart.yaml", "name: redis\n");
        write(root, "charts/web/charts/pg-1.2.3.tgz", "");
        write(root, "charts/web/values.yaml", "a: 1\n");
        write(root, "charts/web/values-prod.yaml", "a: 2\n");
        let chart = check(root, "charts/web", Some("prod")).unwrap();
        assert_eq!(
            chart,
            Chart {
                release: "web-app".into(),
                values: vec![
                    "charts/web/values.yaml".into(),
                    "charts/web/values-prod.yaml".into()
                ],
            }
        );
        let no_env_file = check(root, "charts/web", Some("dev")).unwrap();
        assert_eq!(no_env_file.values, ["charts/web/values.yaml"]);
    }

    #[test]
    fn remote_dependencies_escapes_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "c/Chart.yaml",
            "apiVersion: v2\nname: c\ndependencies:\n\
             - name: redis\n  repository: https://charts.example.com\n\
             - name: x\n  repository: \"@stable\"\n\
             - name: up\n  repository: file://../../outside\n",
        );
        std::os::unix::fs::symlink("/etc/passwd", root.join("c/values.yaml")).unwrap();
        let findings = check(root, "c", Some("../../etc/passwd")).unwrap_err();
        let got: Vec<_> = findings
            .iter()
            .map(|f| (f.rule.as_str(), f.file.as_deref().unwrap(), f.line))
            .collect();
        assert_eq!(
            got,
            [
                ("render.symlink", "c/values.yaml", None),
                ("render.remote-source", "c/Chart.yaml", Some(5)),
                ("render.remote-source", "c/Chart.yaml", Some(7)),
                ("render.path-escape", "c/Chart.yaml", Some(9)),
                ("render.path-escape", "c/Chart.yaml", None),
            ]
        );
    }
}
