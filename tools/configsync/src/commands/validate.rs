//! `configsync validate`: checks manifests in a checkout before they are merged (in GitHub
//! Actions, GitLab CI or by hand), with the same engine the validator service runs.
//! Exit 0: valid; 1: findings of error severity or unreadable inputs; 2: usage error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use configsync_validation::engine::{self, Checker, Options, Outcome};
use configsync_validation::policy::{Policies, PolicyMode};
use configsync_validation::references::ExternalRef;
use configsync_validation::report::{Format, Report};
use configsync_validation::schema::{KubeVersion, SchemaOptions};

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `file - Kind name is valid|invalid: reason` lines and a summary.
    Text,
    /// One JSON document: verdict, resources and findings.
    Json,
    /// GitHub Actions workflow annotations.
    Github,
    /// JUnit XML (GitHub and GitLab test reports).
    Junit,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Policy findings keep their severity: `deny` rules fail the run.
    Deny,
    /// Every policy finding is a warning: report, never fail (for rolling out new policies).
    Warn,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Files or directories to validate: relative to --root when it is given, else to the
    /// current directory, each read with the Git work tree holding it as its root (or its own
    /// directory outside any work tree). Default: `configs/<env>` with --env; else each
    /// environment under `configs/` on its own; else the whole root. Directories with a
    /// kustomization.yaml are rendered with kustomize, directories with a Chart.yaml with
    /// `helm template`.
    paths: Vec<PathBuf>,
    /// Validate one environment: its directory `configs/<ENV>`, and `values-<ENV>.yaml` for
    /// Helm charts.
    #[arg(long, env = "CONFIGSYNC_ENV")]
    env: Option<String>,
    /// The repository root: nothing outside it is read (symbolic links leaving it are findings).
    /// Default: the Git work tree holding each path (the nearest directory above it with a
    /// `.git`), else the path's own directory (a file's parent); without paths, the work tree
    /// holding the current directory, else the current directory. Paths in different work
    /// trees are each validated with their own root, and reported with that root's path.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Kubernetes version whose API schemas apply (default: the newest supported).
    #[arg(long, env = "CONFIGSYNC_KUBE_VERSION", value_parser = clap::value_parser!(KubeVersion))]
    kube_version: Option<KubeVersion>,
    /// Allow unknown fields and duplicate keys (strict by default, as kubectl is).
    #[arg(long)]
    no_strict: bool,
    /// Skip the schema check of custom resources whose CRD is not among the inputs or --crd
    /// files (without it, each is an error); their metadata is still checked.
    #[arg(long)]
    ignore_missing_schemas: bool,
    /// CRD files or directories whose schemas validate custom resources (repeatable).
    #[arg(long = "crd", value_name = "PATH")]
    crds: Vec<PathBuf>,
    /// Directory of Rego policies (conftest conventions: `deny`, `violation`, `warn`), in
    /// addition to the built-in baseline (default: `policies/` under --root when present).
    #[arg(long = "policy", value_name = "DIR")]
    policies: Vec<PathBuf>,
    /// `warn` reports policy violations without failing the run.
    #[arg(long, value_enum, default_value_t = Mode::Deny, env = "CONFIGSYNC_POLICY_MODE")]
    policy_mode: Mode,
    /// Objects that exist outside the inputs, so references to them are not findings:
    /// `Kind/name`, `Kind/namespace/name`, `Kind/namespace/*`, `Namespace/name`
    /// (repeatable or comma-separated; kinds accept short names such as cm, sa, svc).
    #[arg(long = "assume-exists", value_name = "REF", value_delimiter = ',')]
    assume_exists: Vec<ExternalRef>,
    /// Longest a Kustomize or Helm render may run.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    render_timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Print only the summary line (text output).
    #[arg(long)]
    summary: bool,
    /// The access policy: its `manages` rules (kinds, namespaces) apply to each environment,
    /// as in the validator service.
    #[arg(long, env = "CONFIGSYNC_ACCESS")]
    access: Option<PathBuf>,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut options = Options {
        schema: SchemaOptions {
            strict: !args.no_strict,
            ignore_missing_schemas: args.ignore_missing_schemas,
        },
        policy_mode: match args.policy_mode {
            Mode::Deny => PolicyMode::Enforce,
            Mode::Warn => PolicyMode::Warn,
        },
        external: args.assume_exists.iter().cloned().collect(),
        ..Options::default()
    };
    if let Some(version) = args.kube_version {
        options.kube_version = version;
    }
    options.limits.strict_keys = !args.no_strict;
    if let Some(path) = &args.access {
        options.scopes = configsync_core::access::AccessPolicy::load(path)?.scopes();
    }
    options.render.timeout = args.render_timeout;

    let cwd = std::env::current_dir()
        .map_err(|e| anyhow::anyhow!("the current directory is unreadable: {e}"))?;
    let roots = roots(&cwd, args.root.as_deref(), &args.paths);
    let several = roots.len() > 1;
    let mut outcome = Outcome::default();
    for (root, paths) in roots {
        let mut run = validate_root(&options, &args, &root, paths)?;
        if several {
            // Names relative to their root would be ambiguous among several roots.
            name_from(&root, &mut run);
        }
        outcome.files += run.files;
        outcome.manifests.extend(run.manifests);
        outcome.findings.extend(run.findings);
    }

    let report = Report::new(outcome.files, &outcome.manifests, outcome.findings);
    let format = match args.output {
        Output::Text => Format::Text,
        Output::Json => Format::Json,
        Output::Github => Format::Github,
        Output::Junit => Format::Junit,
        Output::Sarif => Format::Sarif,
    };
    print!("{}", report.render(format, args.summary));
    Ok(ExitCode::from(report.exit_code()))
}

/// Validates `paths` (relative to `root`; none: the default paths) with `root`'s policies.
fn validate_root(
    options: &Options,
    args: &ValidateArgs,
    root: &Path,
    paths: Vec<PathBuf>,
) -> anyhow::Result<Outcome> {
    // Each environment is its own set of objects: the same name in dev and prod is not a
    // duplicate, and a reference in prod is not satisfied by an object of dev.
    let runs: Vec<(Option<String>, Vec<PathBuf>)> = if !paths.is_empty() {
        vec![(args.env.clone(), paths)]
    } else if let Some(env) = &args.env {
        vec![(Some(env.clone()), vec![PathBuf::from("configs").join(env)])]
    } else {
        match environments(root) {
            Some(envs) => envs
                .into_iter()
                .map(|env| {
                    let dir = PathBuf::from("configs").join(&env);
                    (Some(env), vec![dir])
                })
                .collect(),
            None => vec![(None, vec![PathBuf::from(".")])],
        }
    };
    let (user_policies, policy_findings) = read_policies(root, &args.policies);
    let checker = Checker::new(options.clone(), &user_policies)?;
    let mut outcome = Outcome::default();
    for (env, paths) in runs {
        let run = engine::validate_checkout(&checker, root, &paths, &args.crds, env.as_deref());
        outcome.files += run.files;
        outcome.manifests.extend(run.manifests);
        outcome.findings.extend(run.findings);
    }
    outcome.findings.extend(policy_findings);
    Ok(outcome)
}

/// The roots to validate and the paths under each, in the order the paths were given. With
/// `--root`, that root and the paths as given (relative to it); else each path (relative to
/// `cwd`) under the root that [`locate`] finds for it, and without paths, the root holding
/// `cwd` with no paths (the defaults).
fn roots(cwd: &Path, root: Option<&Path>, paths: &[PathBuf]) -> Vec<(PathBuf, Vec<PathBuf>)> {
    if let Some(root) = root {
        return vec![(root.to_path_buf(), paths.to_vec())];
    }
    if paths.is_empty() {
        return vec![(locate(cwd, Path::new(".")).0, Vec::new())];
    }
    let mut roots: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for path in paths {
        let (root, relative) = locate(cwd, path);
        match roots.iter_mut().find(|(r, _)| *r == root) {
            Some((_, under)) => under.push(relative),
            None => roots.push((root, vec![relative])),
        }
    }
    roots
}

/// The root of a path given without `--root`, and the path relative to it: the Git work tree
/// holding it (the nearest directory above it with a `.git` entry: a directory, or a file in
/// linked worktrees and submodules), else its own directory (a directory itself, a file's
/// parent). The directories leading to the path are resolved (`..`, symbolic links) because
/// the root is compared with the real location; its last component never is, so a link
/// named on the command line is still judged by the walk (a link leaving the root is a
/// finding). A path that does not exist is kept as written below its deepest existing
/// directory, so the walk reports it as unreadable.
fn locate(cwd: &Path, path: &Path) -> (PathBuf, PathBuf) {
    let full = cwd.join(path);
    let is_dir = std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir());
    let (mut dir, mut rest) = match (is_dir, full.parent(), full.file_name()) {
        (false, Some(parent), Some(name)) => (parent.to_path_buf(), vec![name.to_os_string()]),
        _ => (full.clone(), Vec::new()),
    };
    let dir = loop {
        match dir.canonicalize() {
            Ok(canonical) => break canonical,
            Err(_) => match (dir.parent(), dir.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    dir = parent.to_path_buf();
                }
                _ => break dir,
            },
        }
    };
    let root = dir
        .ancestors()
        .find(|a| std::fs::symlink_metadata(a.join(".git")).is_ok())
        .unwrap_or(&dir)
        .to_path_buf();
    let mut relative = dir
        .strip_prefix(&root)
        .unwrap_or(Path::new(""))
        .to_path_buf();
    relative.extend(rest.iter().rev());
    if relative.as_os_str().is_empty() {
        relative = PathBuf::from(".");
    }
    (root, relative)
}

/// Names the files of `outcome` by `root` joined with their name relative to it.
fn name_from(root: &Path, outcome: &mut Outcome) {
    let full = |name: &str| root.join(name).display().to_string();
    for manifest in &mut outcome.manifests {
        manifest.file = full(&manifest.file);
    }
    for finding in &mut outcome.findings {
        finding.file = finding.file.as_deref().map(full);
    }
}

/// The `--policy` directories, or `policies/` under the root when none is given and it exists.
fn read_policies(
    root: &Path,
    dirs: &[PathBuf],
) -> (Vec<(String, String)>, Vec<configsync_core::event::Finding>) {
    let default = root.join("policies");
    let dirs: Vec<PathBuf> = if dirs.is_empty() && default.is_dir() {
        vec![default]
    } else {
        dirs.to_vec()
    };
    let mut sources = Vec::new();
    let mut findings = Vec::new();
    for dir in dirs {
        // Findings name policy files relative to the root, like every other file.
        let relative = |path: String| match Path::new(&path).strip_prefix(root) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => path,
        };
        match Policies::read_dir(&dir) {
            Ok(read) => sources.extend(read.into_iter().map(|(path, rego)| (relative(path), rego))),
            Err(mut finding) => {
                finding.file = finding.file.map(relative);
                findings.push(*finding);
            }
        }
    }
    (sources, findings)
}

/// The environments of a config repository: the directories under `configs/`, sorted.
fn environments(root: &Path) -> Option<Vec<String>> {
    let mut envs: Vec<String> = std::fs::read_dir(root.join("configs"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    envs.sort();
    (!envs.is_empty()).then_some(envs)
}
