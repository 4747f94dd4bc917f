//! `configsync validate`: checks manifests in a checkout before they are merged (in GitHub
//! Actions, GitLab CI or by hand), with the same engine the validator service runs.
//! Exit 0: valid; 1: findings of error severity or unreadable inputs; 2: usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use configsync_validation::manifests::{self, Limits};
use configsync_validation::report::{Format, Report};
use configsync_validation::sources;

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

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Files or directories to validate, relative to --root (default: `configs/<env>` with
    /// --env, else the whole root).
    paths: Vec<PathBuf>,
    /// Validate one environment's directory, `configs/<ENV>`.
    #[arg(long)]
    env: Option<String>,
    /// The repository root: nothing outside it is read (symbolic links leaving it are findings).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Print only the summary line (text output).
    #[arg(long)]
    summary: bool,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits::default();
    let paths = if !args.paths.is_empty() {
        args.paths.clone()
    } else if let Some(env) = &args.env {
        vec![PathBuf::from("configs").join(env)]
    } else {
        vec![PathBuf::from(".")]
    };
    let read = sources::read(&args.root, &paths, limits.max_file_bytes as u64);
    let loaded = manifests::load(&read.files, limits);
    let mut findings = read.findings;
    findings.extend(loaded.findings);
    let report = Report::new(read.files.len(), &loaded.manifests, findings);
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
