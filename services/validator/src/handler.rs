//! Handling one commit-detected event: for each environment the commit touches, read
//! `configs/<env>/` at the revision, load and check the manifests, store the bundle, and emit
//! validation passed or failed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use configsync_core::event::{
    CommitDetected, EventData, Finding, Outgoing, Received, Severity, ValidationFailed,
    ValidationPassed,
};
use configsync_core::git::{self, GitError, Mirror, TreeFile};
use configsync_core::log::bundles::{Bundle, BundleApp, BundleStore};
use configsync_core::log::{HandlerError, Publisher};

use configsync_validation::engine::{self, Checker, Options};
use configsync_validation::{apps, policy, render};

/// One source the validator reads commits of: its identity in the events and its mirror.
pub struct Source {
    pub id: configsync_core::names::SourceId,
    pub mirror: Mirror,
}

impl Source {
    /// Where the source's root is in the repository: `""` or `<sub-directory>/`.
    fn prefix(&self) -> String {
        self.id
            .path
            .as_ref()
            .map(|p| format!("{p}/"))
            .unwrap_or_default()
    }
}

/// Everything the handler needs, shared by concurrent handlings.
pub struct Validator {
    /// The sources followed; a commit is read from the mirror of the one it names.
    pub sources: Vec<Source>,
    pub bundles: BundleStore,
    pub publisher: Publisher,
    pub source: String,
    /// Set on shutdown to abort a fetch in progress.
    pub interrupt: Arc<AtomicBool>,
    pub options: Options,
    /// Schemas and the baseline policies, for revisions without a `policies/` directory.
    pub checker: Arc<Checker>,
    /// What each environment may contain (`manages`), when an access policy is given.
    pub access: Option<configsync_core::access::AccessPolicy>,
}

/// The repository's own Rego policies at a revision (`policies/*.rego`), which apply to every
/// environment of that revision.
const POLICY_DIR: &str = "policies";

/// What reading an environment's directory produced.
enum EnvFiles {
    Files(Vec<TreeFile>),
    /// The content itself is unacceptable (a symlink, a file too large, no directory).
    Finding(Finding),
}

/// Which environments a commit is validated for.
enum Environments {
    These(Vec<String>),
    /// Every directory under `configs/` at the revision.
    All,
}

impl Validator {
    /// A finding when the environment takes only verified signed commits and this one is not:
    /// it is recorded and not deployed there, while other environments proceed.
    fn unverified_commit(&self, environment: &str, commit: &CommitDetected) -> Option<Finding> {
        let rules = self.access.as_ref()?.rules(environment);
        if !rules.require_signed_commits {
            return None;
        }
        let why = match &commit.signature {
            Some(s) if s.verified => return None,
            Some(s) => s.reason.clone().unwrap_or_else(|| "not verified".into()),
            None => "the commit is not signed".into(),
        };
        Some(Finding {
            severity: Severity::Error,
            rule: "commit.signature".into(),
            message: format!(
                "environment {environment} deploys only commits signed by a key of the access policy, for the committer's e-mail: {why}"
            ),
            file: None,
            line: None,
            column: None,
            object: None,
            path: None,
        })
    }

    /// Handles one event; only commit-detected events of this repository are acted on.
    pub async fn handle(self: Arc<Self>, event: Received) -> Result<(), HandlerError> {
        let EventData::CommitDetected(commit) = &event.data else {
            return Ok(());
        };
        let Some(index) = self.sources.iter().position(|s| {
            s.id.repository == commit.repository
                && s.id.branch == commit.branch
                && s.id.path == commit.path
        }) else {
            tracing::debug!(repository = %commit.repository, branch = %commit.branch, path = commit.path.as_deref().unwrap_or(""), "commit of a source not configured here ignored");
            return Ok(());
        };
        // Rendering reads the whole tree (Kustomize bases, charts, `policies/`), and after a
        // rewrite what is deployed may differ anywhere: then every environment is validated
        // again (unchanged objects cost the applier nothing). Otherwise only those touched.
        let every = commit.whole_tree || !commit.other_paths.is_empty();
        if !every && commit.environments.is_empty() {
            tracing::info!(revision = %commit.sha, "commit touches no environment");
            return Ok(());
        }
        let environments = if every {
            Environments::All
        } else {
            Environments::These(
                commit
                    .environments
                    .iter()
                    .map(|e| e.environment.clone())
                    .collect(),
            )
        };
        let (files, policies) = self
            .clone()
            .read_environments(index, commit.sha.clone(), environments)
            .await?;
        let checker = self.checker_for(policies).await?;
        for (environment, files) in files {
            let outgoing = self
                .validate(commit, &environment, files, &checker, &event)
                .await?;
            self.publisher.publish(&outgoing).await?;
        }
        Ok(())
    }

    /// The checker for a revision: the shared one, or one with the revision's own policies.
    async fn checker_for(
        &self,
        policies: Vec<(String, String)>,
    ) -> Result<Arc<Checker>, HandlerError> {
        if policies.is_empty() {
            return Ok(self.checker.clone());
        }
        let options = self.options.clone();
        let checker = tokio::task::spawn_blocking(move || Checker::new(options, &policies))
            .await
            .map_err(|e| HandlerError::Transient(format!("policy compilation failed: {e}")))?
            .map_err(|e| HandlerError::Terminal(e.to_string()))?;
        Ok(Arc::new(checker))
    }

    /// Fetches the source (so the revision is present) and reads each environment's
    /// directory, and the `policies/` (Rego sources), under the source's sub-directory; the
    /// files' paths are made relative to it, so rendering and findings see it as the root.
    async fn read_environments(
        self: Arc<Self>,
        source: usize,
        sha: String,
        environments: Environments,
    ) -> Result<(Vec<(String, EnvFiles)>, Vec<(String, String)>), HandlerError> {
        tokio::task::spawn_blocking(move || {
            let source = &self.sources[source];
            let prefix = source.prefix();
            let relative = |files: Vec<TreeFile>| -> Vec<TreeFile> {
                files
                    .into_iter()
                    .map(|mut f| {
                        if let Some(rest) = f.path.strip_prefix(&prefix) {
                            f.path = rest.to_string();
                        }
                        f
                    })
                    .collect()
            };
            let revision =
                git::parse_sha(&sha).map_err(|e| HandlerError::Terminal(e.to_string()))?;
            let repo = source.mirror.repository().map_err(git_error)?;
            if repo.find_commit(revision).is_err() {
                drop(repo);
                source
                    .mirror
                    .fetch(&source.id.branch, &self.interrupt)
                    .map_err(git_error)?;
            }
            let repo = source.mirror.repository().map_err(git_error)?;
            if repo.find_commit(revision).is_err() {
                return Err(HandlerError::Terminal(format!(
                    "revision {sha} is not in the remote (rewritten history?)"
                )));
            }
            let environments = match environments {
                Environments::These(list) => list,
                Environments::All => git::list_dirs(&repo, revision, &format!("{prefix}configs"))
                    .map_err(git_error)?
                    .into_iter()
                    .filter(|env| {
                        let valid = configsync_core::names::Name::new(env.as_str()).is_ok();
                        if !valid {
                            tracing::warn!(directory = %env, "configs/ holds a directory that is no environment name; skipped");
                        }
                        valid
                    })
                    .collect(),
            };
            let mut out = Vec::new();
            for env in environments {
                let dir = format!("{prefix}configs/{env}");
                let limits = git::Limits::default();
                let files = match git::read_dir(&repo, revision, &dir, &limits) {
                    // Kustomize bases and Helm charts may live anywhere in the source:
                    // rendering needs its whole tree.
                    Ok(files) if files.iter().any(|f| is_render_root_file(&f.path)) => {
                        match git::read_dir(&repo, revision, &prefix, &limits) {
                            Ok(all) => EnvFiles::Files(relative(all)),
                            Err(e) => match content_finding(&e, &dir) {
                                Some(f) => EnvFiles::Finding(f),
                                None => return Err(git_error(e)),
                            },
                        }
                    }
                    Ok(files) => EnvFiles::Files(relative(files)),
                    Err(e) => match content_finding(&e, &dir) {
                        Some(f) => EnvFiles::Finding(f),
                        None => return Err(git_error(e)),
                    },
                };
                out.push((env, files));
            }
            let policy_dir = format!("{prefix}{POLICY_DIR}");
            let policies = match git::read_dir(&repo, revision, &policy_dir, &git::Limits::default())
            {
                Ok(files) => relative(files)
                    .into_iter()
                    .filter(|f| policy::is_policy_file(&f.path))
                    .map(|f| (f.path, String::from_utf8_lossy(&f.bytes).into_owned()))
                    .collect(),
                Err(GitError::PathNotFound { .. }) => Vec::new(),
                Err(e) => return Err(git_error(e)),
            };
            Ok((out, policies))
        })
        .await
        .map_err(|e| HandlerError::Transient(format!("reader task failed: {e}")))?
    }

    async fn validate(
        &self,
        commit: &CommitDetected,
        environment: &str,
        files: EnvFiles,
        checker: &Arc<Checker>,
        cause: &Received,
    ) -> Result<Outgoing, HandlerError> {
        let findings_of = |findings: Vec<Finding>| ValidationFailed {
            environment: environment.into(),
            revision: commit.sha.clone(),
            findings,
        };
        if let Some(finding) = self.unverified_commit(environment, commit) {
            tracing::warn!(environment, revision = %commit.sha, reason = %finding.message, "commit signature not verified: not deployed here");
            return build(
                &findings_of(vec![finding]),
                environment,
                cause,
                &self.source,
            );
        }
        let failed = match files {
            EnvFiles::Finding(f) => Some(findings_of(vec![f])),
            EnvFiles::Files(files) => {
                let files: Vec<(String, Vec<u8>)> =
                    files.into_iter().map(|f| (f.path, f.bytes)).collect();
                // Rendering, loading and checking are blocking work: off the runtime.
                let checker = checker.clone();
                let dir = PathBuf::from(format!("configs/{environment}"));
                let env = environment.to_string();
                let mut loaded = tokio::task::spawn_blocking(move || {
                    engine::validate_files(&checker, &files, &[dir], Some(&env))
                })
                .await
                .map_err(|e| HandlerError::Transient(format!("validation task failed: {e}")))?
                .map_err(|e| {
                    HandlerError::Transient(format!("validation scratch directory: {e}"))
                })?;
                loaded
                    .findings
                    .sort_by_key(|f| f.severity != Severity::Error);
                if loaded.has_errors() {
                    Some(findings_of(loaded.findings))
                } else if loaded.manifests.is_empty() {
                    let mut f = no_manifests(&format!("configs/{environment}"));
                    f.message = format!(
                        "configs/{environment}/ has no manifests (yaml, yml or json files); refusing to empty the environment"
                    );
                    Some(findings_of(vec![f]))
                } else {
                    let mut apps: BTreeMap<String, BundleApp> = loaded
                        .apps
                        .iter()
                        .map(|(name, needs)| {
                            let app = BundleApp {
                                needs: needs.clone(),
                                objects: Vec::new(),
                            };
                            (name.clone(), app)
                        })
                        .collect();
                    for (i, m) in loaded.manifests.iter().enumerate() {
                        if let Some(app) = apps::app_of(&m.file).and_then(|a| apps.get_mut(a)) {
                            app.objects.push(i as u32);
                        }
                    }
                    let bundle = Bundle {
                        environment: environment.into(),
                        revision: commit.sha.clone(),
                        objects: loaded.manifests.iter().map(|m| m.object.clone()).collect(),
                        apps,
                    };
                    let digest = self.bundles.put(&bundle.to_bytes()).await?;
                    let passed = ValidationPassed {
                        environment: environment.into(),
                        revision: commit.sha.clone(),
                        bundle_digest: digest,
                        objects: loaded
                            .manifests
                            .iter()
                            .map(|m| m.reference.clone())
                            .collect(),
                        warnings: loaded.findings,
                        commit_sequence: cause.stream_sequence,
                        author: Some(commit.author.email.to_ascii_lowercase())
                            .filter(|e| !e.is_empty()),
                    };
                    tracing::info!(environment, revision = %commit.sha, objects = passed.objects.len(), "validation passed");
                    return build(&passed, environment, cause, &self.source);
                }
            }
        };
        let failed = failed.expect("every branch without a bundle fails");
        tracing::warn!(environment, revision = %commit.sha, findings = failed.findings.len(), first = %failed.findings[0].message, "validation failed");
        build(&failed, environment, cause, &self.source)
    }
}

fn build<P: configsync_core::event::EventPayload>(
    payload: &P,
    environment: &str,
    cause: &Received,
    source: &str,
) -> Result<Outgoing, HandlerError> {
    Outgoing::builder(payload)
        .caused_by(cause)
        .cause(environment)
        .subject(format!("configs/{environment}"))
        .build(source)
        .map_err(|e| HandlerError::Terminal(e.to_string()))
}

fn no_manifests(dir: &str) -> Finding {
    Finding::file_error(
        "environment.empty",
        dir,
        None,
        format!("{dir}/ does not exist"),
    )
}

/// Git errors that are about the repository's content become findings, not retries.
fn content_finding(error: &GitError, dir: &str) -> Option<Finding> {
    let rule = match error {
        GitError::PathNotFound { .. } => return Some(no_manifests(dir)),
        GitError::Refused { .. } => "file.refused",
        GitError::TooLarge { .. } => "file.too-large",
        GitError::InvalidPath { .. } => "file.path",
        _ => return None,
    };
    let mut f = no_manifests(dir);
    f.rule = rule.into();
    f.message = error.to_string();
    Some(f)
}

/// Whether `path` makes its directory a Kustomize or Helm root.
fn is_render_root_file(path: &str) -> bool {
    render::is_render_input(path.rsplit('/').next().unwrap_or(path))
}

fn git_error(e: GitError) -> HandlerError {
    let transient = e.is_transient();
    HandlerError::classify(e, transient)
}
