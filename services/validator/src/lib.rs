//! The validator service: for each commit, renders and validates every environment the commit
//! touches, stores the bundle by digest, and emits validation passed or failed.
//!
//! Runs alone (the `validator` binary) or inside `configsync up`, with the same code.

mod handler;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use configsync_core::config::{GitRemoteArgs, ServiceArgs, SourceSpec};
use configsync_core::event::{CommitDetected, EventPayload, Received};
use configsync_core::git::{self, Mirror};
use configsync_core::log::ConsumerSpec;
use configsync_core::log::bundles::BundleStore;
use configsync_core::service::{Service, ServiceConfig, ServiceError};
use configsync_core::subject;
use configsync_validation::engine::{Checker, Options};
use configsync_validation::policy::PolicyMode;
use configsync_validation::references::ExternalRef;
use configsync_validation::schema::KubeVersion;
use tokio_util::sync::CancellationToken;

/// The service's name: its durable consumer, NATS user and event source.
pub const NAME: &str = "validator";
/// Where /healthz, /readyz and /metrics are served unless --ops-addr says otherwise.
pub const DEFAULT_OPS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9102);

/// The validator's configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "validator",
    version,
    about = "ConfigSync validator: validates each environment a commit touches"
)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The configuration repository, as the git-watcher follows it (`https://`, `ssh://`,
    /// `git://`, `file://` or a local path): the one-source form.
    #[arg(
        long,
        env = "CONFIGSYNC_REPO",
        required_unless_present = "sources",
        conflicts_with = "sources"
    )]
    pub repo: Option<String>,
    /// The sources, exactly as given to the git-watcher (`--source`, repeatable,
    /// `NAME=URL[#BRANCH[:SUBDIR]][,interval=DURATION]`): a commit is read from the mirror of
    /// the source it came from, with its sub-directory as the root.
    #[arg(
        long = "source",
        env = "CONFIGSYNC_SOURCES",
        hide_env_values = true,
        value_delimiter = ' '
    )]
    pub sources: Vec<SourceSpec>,
    /// How the repository is reached: credentials, allowed hosts, timeout (the same flags as
    /// the git-watcher's).
    #[command(flatten)]
    pub remote: GitRemoteArgs,
    /// The tracked branch of --repo.
    #[arg(long, env = "CONFIGSYNC_BRANCH", default_value = "main")]
    pub branch: String,
    /// Where the validator keeps its mirror of the repository (default: under the system
    /// temporary directory, named after the repository); with --source, each source's
    /// mirror is the sub-directory named after it.
    #[arg(long, env = "CONFIGSYNC_VALIDATOR_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Kubernetes version whose API schemas apply (default: the newest supported).
    #[arg(long, env = "CONFIGSYNC_KUBE_VERSION", value_parser = clap::value_parser!(KubeVersion))]
    pub kube_version: Option<KubeVersion>,
    /// `warn` reports policy violations (baseline and the repository's `policies/`) without
    /// failing validation.
    #[arg(long, env = "CONFIGSYNC_POLICY_MODE", default_value = "deny", value_parser = parse_policy_mode)]
    pub policy_mode: PolicyMode,
    /// Objects that exist outside the repository (`Kind/name`, `Kind/namespace/name`,
    /// `Kind/namespace/*`, `Namespace/name`), so references to them are not findings.
    #[arg(long, env = "CONFIGSYNC_ASSUME_EXISTS", value_delimiter = ',')]
    pub assume_exists: Vec<ExternalRef>,
    /// The access policy (docs/security.md): its `manages` rules limit the kinds and
    /// namespaces each environment's revisions may contain.
    #[arg(long = "access", env = "CONFIGSYNC_ACCESS")]
    pub access: Option<PathBuf>,
}

fn parse_policy_mode(text: &str) -> Result<PolicyMode, String> {
    match text {
        "deny" => Ok(PolicyMode::Enforce),
        "warn" => Ok(PolicyMode::Warn),
        other => Err(format!("policy mode {other:?} is neither deny nor warn")),
    }
}

impl Config {
    /// The checks' options from the flags.
    pub fn check_options(&self) -> Options {
        let mut options = Options {
            policy_mode: self.policy_mode,
            external: self.assume_exists.iter().cloned().collect(),
            ..Options::default()
        };
        if let Some(version) = self.kube_version {
            options.kube_version = version;
        }
        options
    }
}

impl Config {
    /// Each source with the directory of its mirror: `--repo` keeps the directory it always
    /// had (an upgrade costs no fetch); each `--source` gets its own.
    fn mirrors(&self) -> Vec<(SourceSpec, PathBuf)> {
        let temp = std::env::temp_dir().join("configsync-validator");
        if let Some(repo) = &self.repo {
            // The validator matches commits by repository, branch and sub-directory, never
            // by name.
            let spec = SourceSpec::single(repo, &self.branch);
            let dir = self
                .work_dir
                .clone()
                .unwrap_or_else(|| git::default_mirror_dir(&temp, repo));
            return vec![(spec, dir)];
        }
        self.sources
            .iter()
            .map(|spec| {
                let dir = match &self.work_dir {
                    Some(dir) => dir.join(spec.name.as_str()),
                    None => git::default_mirror_dir(&temp, &spec.id().to_string()),
                };
                (spec.clone(), dir)
            })
            .collect()
    }
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

/// The durable consumer shared by the validator's replicas.
pub fn consumer() -> ConsumerSpec {
    ConsumerSpec::new(NAME, vec![subject::type_filter(CommitDetected::TYPE)])
}

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let access = config
        .access
        .as_deref()
        .map(configsync_core::access::AccessPolicy::load)
        .transpose()?;
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    let remote = config
        .remote
        .remote_options()
        .map_err(|e| ServiceError::setup("reading the Git remote options", e))?;
    let mut sources = Vec::new();
    for (spec, dir) in config.mirrors() {
        let (url, mirror_dir, remote) = (spec.url.clone(), dir.clone(), remote.clone());
        let mirror =
            tokio::task::spawn_blocking(move || Mirror::open_or_init(&mirror_dir, &url, remote))
                .await?
                .map_err(|e| ServiceError::setup("opening the repository mirror", e))?;
        tracing::info!(source = %spec.name, repo = %configsync_core::credentials::redact_url(&spec.url), branch = %spec.branch, path = spec.path.as_deref().unwrap_or(""), mirror = %dir.display(), "validating source");
        sources.push(handler::Source {
            id: spec.id(),
            mirror,
        });
    }
    let bundles = BundleStore::open(&service.log.js).await?;
    // The schemas and baseline policies are prepared once; a revision with its own
    // `policies/` gets a checker of its own.
    let mut options = config.check_options();
    if let Some(policy) = &access {
        options.scopes = policy.scopes();
    }
    let checker = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || Checker::new(options, &[]))
            .await?
            .map_err(|e| ServiceError::setup("preparing schemas and policies", e))?
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let validator = Arc::new(handler::Validator {
        sources,
        bundles,
        publisher: service.log.publisher(Duration::from_secs(60)),
        source: service.log.source.clone(),
        interrupt: interrupt.clone(),
        options,
        checker: Arc::new(checker),
        access,
    });
    let runner = service.log.runner(consumer()).await?;
    service.readiness.set(true);
    tracing::info!("validator consuming");
    let on_shutdown = {
        let interrupt = interrupt.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            interrupt.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let handle = move |event: Received| validator.clone().handle(event);
    let result = runner.run(handle, shutdown).await;
    on_shutdown.abort();
    service.stop().await;
    result.map(|_| ()).map_err(ServiceError::from)
}
