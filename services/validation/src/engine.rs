//! The validation pipeline in one place, so `configsync validate` in CI and the validator
//! service on a commit give the same verdict: render, load, then check schemas, policies and
//! references, collecting every finding (never stopping at the first).

use std::path::{Path, PathBuf};

use configsync_core::event::{Finding, Severity};

use crate::manifests::{self, Limits, Manifest};
use crate::policy::{Policies, PolicyLimits, PolicyMode};
use crate::references::{self, External};
use crate::render::{self, RenderOptions};
use crate::schema::{KubeVersion, SchemaError, SchemaOptions, Schemas};
use crate::{positions, sources};

/// What a run checks and how strictly: the flags of `configsync validate`.
#[derive(Debug, Clone)]
pub struct Options {
    pub kube_version: KubeVersion,
    pub schema: SchemaOptions,
    pub policy_mode: PolicyMode,
    pub policy_limits: PolicyLimits,
    pub external: External,
    pub limits: Limits,
    pub render: RenderOptions,
    /// What ConfigSync may manage per environment (the access policy's `manages`): objects
    /// outside are error findings.
    pub scopes: std::collections::BTreeMap<String, configsync_core::access::Scope>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kube_version: KubeVersion::newest(),
            schema: SchemaOptions {
                strict: true,
                ignore_missing_schemas: false,
            },
            policy_mode: PolicyMode::Enforce,
            policy_limits: PolicyLimits::default(),
            external: External::default(),
            limits: Limits::default(),
            render: RenderOptions::default(),
            scopes: Default::default(),
        }
    }
}

/// The checks prepared once (schemas decompressed and compiled, policies compiled) and run
/// on any number of inputs: the validator service keeps one for its lifetime.
pub struct Checker {
    schemas: Schemas,
    policies: Policies,
    options: Options,
    /// Findings from preparing the checks (a policy that does not compile), repeated in
    /// every outcome so no run passes while its policies are broken.
    setup_findings: Vec<Finding>,
}

impl Checker {
    /// Prepares the built-in schemas of the chosen version, the baseline policies and the
    /// user's policies (path relative to the repository root, Rego source).
    pub fn new(options: Options, user_policies: &[(String, String)]) -> Result<Self, SchemaError> {
        let schemas = Schemas::builtin(options.kube_version)?;
        let (policies, setup_findings) = Policies::new(user_policies, options.policy_limits);
        Ok(Self {
            schemas,
            policies,
            options,
            setup_findings,
        })
    }

    /// Checks loaded manifests: each against its schema (built-in, or from the CRDs among
    /// `manifests` and `extra_crds`), then the policies, then the references between them.
    pub fn check(&self, manifests: &[Manifest], extra_crds: &[Manifest]) -> Vec<Finding> {
        let mut findings = self.setup_findings.clone();
        let has_crds = extra_crds
            .iter()
            .chain(manifests)
            .any(|m| m.reference.kind == "CustomResourceDefinition");
        // The built-in schemas are shared; a run with CRDs compiles them into its own copy.
        let with_crds;
        let schemas = if has_crds {
            let mut copy = self.schemas.clone();
            findings.extend(copy.add_crds(extra_crds.iter().chain(manifests)));
            with_crds = copy;
            &with_crds
        } else {
            &self.schemas
        };
        for manifest in manifests {
            findings.extend(schemas.check(manifest, &self.options.schema));
        }
        findings.extend(self.policies.evaluate(manifests, self.options.policy_mode));
        // CRDs given apart (--crd) still say whether their custom resources are namespaced.
        if extra_crds.is_empty() {
            findings.extend(references::check(manifests, &self.options.external));
        } else {
            let with_crds: Vec<Manifest> = manifests.iter().chain(extra_crds).cloned().collect();
            findings.extend(references::check(&with_crds, &self.options.external));
        }
        findings.extend(order_findings(manifests));
        findings
    }

    pub fn options(&self) -> &Options {
        &self.options
    }
}

/// `configsync.io/depends-on` annotations that name nothing in the revision, are malformed
/// or form a cycle: caught here, so the applier never meets them at run time.
fn order_findings(manifests: &[Manifest]) -> Vec<Finding> {
    let objects: Vec<&serde_json::Value> = manifests.iter().map(|m| &m.object).collect();
    if !configsync_core::order::declares_dependencies(&objects) {
        return Vec::new();
    }
    match configsync_core::order::levels(&objects) {
        Ok(_) => Vec::new(),
        Err(e) => {
            let at = manifests
                .iter()
                .find(|m| configsync_core::order::key_of(&m.object) == e.object());
            vec![match at {
                Some(m) => m.finding(Severity::Error, e.rule(), e.to_string()),
                None => Finding::file_error(e.rule(), "", None, e.to_string()),
            }]
        }
    }
}

/// What validating a checkout produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Files read or rendered (for the summary).
    pub files: usize,
    pub manifests: Vec<Manifest>,
    pub findings: Vec<Finding>,
    /// What each app needs (empty when no app declares anything).
    pub apps: crate::apps::AppNeeds,
}

impl Outcome {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Validates `paths` (relative to `root`) of a checkout: plain manifests are read, Kustomize
/// and Helm roots rendered in a sandbox (Helm with `values-<env>.yaml` for `env`), and
/// everything checked by `checker`. `crd_paths` are extra CRD files (`--crd`).
pub fn validate_checkout(
    checker: &Checker,
    root: &Path,
    paths: &[PathBuf],
    crd_paths: &[PathBuf],
    env: Option<&str>,
) -> Outcome {
    let options = checker.options();
    let mut outcome = Outcome::default();
    let (discovered, discover_findings) = render::discover(root, paths);
    outcome.findings.extend(discover_findings);

    let plain: Vec<PathBuf> = discovered.plain.iter().map(PathBuf::from).collect();
    let read = sources::read(root, &plain, options.limits.max_file_bytes as u64);
    outcome.findings.extend(read.findings);
    let render_options = RenderOptions {
        env: env
            .map(str::to_string)
            .or_else(|| options.render.env.clone()),
        ..options.render.clone()
    };
    let mut rendered = Vec::new();
    for target in &discovered.roots {
        match render::render(root, target, &render_options) {
            Ok(output) => {
                outcome.findings.extend(output.warnings);
                rendered.push((output.name, output.yaml));
            }
            Err(findings) => outcome.findings.extend(findings),
        }
    }
    outcome.files = read.files.len() + rendered.len();
    let mut loaded = manifests::load_with_rendered(&read.files, &rendered, options.limits);
    // ConfigSync's own App documents are read, never checked as Kubernetes objects.
    outcome.apps = crate::apps::extract(&mut loaded.manifests, &mut loaded.findings);
    outcome.findings.extend(loaded.findings);
    if let Some(scope) = env.and_then(|e| options.scopes.get(e)) {
        for m in &loaded.manifests {
            let r = &m.reference;
            if let Some((rule, message)) =
                scope.refuses(&r.api_version, &r.kind, r.namespace.as_deref(), &r.name)
            {
                outcome
                    .findings
                    .push(m.finding(Severity::Error, rule, message));
            }
        }
    }

    let crds = read_crds(crd_paths, options.limits);
    outcome.findings.extend(crds.findings);

    let mut checked = checker.check(&loaded.manifests, &crds.manifests);
    pinpoint(&mut checked, &read.files);
    // Lines of rendered output are lines of no file a person can open: the finding names
    // the kustomization or chart, and its object.
    for finding in checked.iter_mut().chain(outcome.findings.iter_mut()) {
        if finding
            .file
            .as_ref()
            .is_some_and(|f| rendered.iter().any(|(name, _)| name == f))
        {
            finding.line = None;
            finding.column = None;
        }
    }
    outcome.findings.extend(checked);
    outcome.manifests = loaded.manifests;
    outcome
}

/// `--crd` files and directories: given by the person running the check, not found in the
/// repository, so they may lie anywhere; inside each, the usual rules apply (no links out).
fn read_crds(paths: &[PathBuf], limits: Limits) -> manifests::Loaded {
    let mut files = Vec::new();
    let mut findings = Vec::new();
    for path in paths {
        let (base, inner) = if path.is_dir() {
            (path.as_path(), PathBuf::from("."))
        } else {
            match (path.parent(), path.file_name()) {
                (Some(parent), Some(name)) => (parent, PathBuf::from(name)),
                _ => (Path::new("."), path.clone()),
            }
        };
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        // Kubebuilder keeps CRDs under a kustomization (config/crd): read it as plain files.
        let read = sources::read_plain(base, &[inner], limits.max_file_bytes as u64);
        let shown = |name: String| base.join(name).display().to_string();
        files.extend(
            read.files
                .into_iter()
                .map(|(name, bytes)| (shown(name), bytes)),
        );
        findings.extend(read.findings);
    }
    let mut loaded = manifests::load(&files, limits);
    // Only whole CRDs matter; such directories also hold patches (partial CRDs) and
    // configuration, whose shape is not this run's business.
    loaded.manifests.retain(|m| {
        m.reference.kind == "CustomResourceDefinition"
            && m.object.pointer("/spec/group").is_some()
            && m.object.pointer("/spec/versions").is_some()
    });
    findings.extend(
        loaded
            .findings
            .drain(..)
            .filter(|f| !f.rule.starts_with("object.")),
    );
    loaded.findings = findings;
    loaded
}

/// How many findings of one document are moved to their field's line.
const MAX_PINPOINTED_PER_DOCUMENT: usize = 20;

/// Moves findings that carry a JSON path from their document's first line to the line and
/// column of the field itself, in the files read as they are (rendered output has no lines a
/// person could open).
fn pinpoint(findings: &mut [Finding], files: &[(String, Vec<u8>)]) {
    // Each lookup parses the document again: a hostile document with thousands of findings
    // would make this quadratic, so only the first ones of each document are moved.
    let mut per_document: std::collections::HashMap<(&str, u32), usize> = Default::default();
    for finding in findings {
        let (Some(file), Some(line), Some(path)) = (&finding.file, finding.line, &finding.path)
        else {
            continue;
        };
        if finding.column.is_some() {
            continue;
        }
        let Ok(index) = files.binary_search_by(|(name, _)| name.as_str().cmp(file)) else {
            continue;
        };
        let done = per_document
            .entry((files[index].0.as_str(), line))
            .or_default();
        if *done >= MAX_PINPOINTED_PER_DOCUMENT {
            continue;
        }
        *done += 1;
        let Ok(text) = std::str::from_utf8(&files[index].1) else {
            continue;
        };
        let Some(start) = line_offset(text, line) else {
            continue;
        };
        if let Some((l, column)) = positions::locate(&text[start..], path) {
            finding.line = Some(line + l - 1);
            finding.column = Some(column);
        }
    }
}

/// The byte offset where 1-based `line` starts.
fn line_offset(text: &str, line: u32) -> Option<usize> {
    if line <= 1 {
        return Some(0);
    }
    text.match_indices('\n')
        .nth(line as usize - 2)
        .map(|(i, _)| i + 1)
}

/// Validates files held in memory, such as a tree read from Git at a revision: they are
/// written to a scratch directory first, so rendering sees the same layout as in a checkout.
/// Paths come from the Git reader, which refuses `..`, absolute paths and links; they are
/// checked again here because this writes to disk.
pub fn validate_files(
    checker: &Checker,
    files: &[(String, Vec<u8>)],
    paths: &[PathBuf],
    env: Option<&str>,
) -> std::io::Result<Outcome> {
    let scratch = tempfile::Builder::new()
        .prefix("configsync-validate-")
        .tempdir()?;
    for (path, bytes) in files {
        let relative = Path::new(path);
        let inside = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{path} is not a path inside the repository"),
            ));
        }
        let target = scratch.path().join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, bytes)?;
    }
    Ok(validate_checkout(checker, scratch.path(), paths, &[], env))
}
