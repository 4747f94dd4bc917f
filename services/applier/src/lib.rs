//! The applier service: rolls each environment's wanted revision (the newest validated one, or
//! the pin after a rollback) out to every cluster of the environment: a server-side dry run of
//! the whole revision, an ordered apply of what changed, prune behind a guard, and health.
//!
//! Runs alone (the `applier` binary) or inside `configsync up`, with the same code.

mod declared;
mod handler;
mod health;
mod rollout;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use configsync_core::access::AccessPolicy;
use configsync_core::cluster::ClusterArgs;
use configsync_core::config::ServiceArgs;
use configsync_core::event::{
    ApprovalGranted, ApprovalRejected, EventPayload, PruneApproved, Received, RollbackRequested,
    UnpinRequested, ValidationPassed,
};
use configsync_core::log::ConsumerSpec;
use configsync_core::log::bundles::BundleStore;
use configsync_core::names::{Name, Target};
use configsync_core::service::{Service, ServiceConfig, ServiceError};
use configsync_core::subject;
use tokio_util::sync::CancellationToken;

/// The service's name: its durable consumer, NATS user and event source.
pub const NAME: &str = "applier";
/// Where /healthz, /readyz and /metrics are served unless --ops-addr says otherwise.
pub const DEFAULT_OPS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9103);

/// The applier's configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "applier",
    version,
    about = "ConfigSync applier: applies validated bundles to the clusters of each environment"
)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// How revisions are rolled out.
#[derive(clap::Args, Debug, Clone)]
pub struct RolloutArgs {
    /// How long the objects of a revision may take to become healthy before the target is
    /// reported degraded.
    #[arg(long, env = "CONFIGSYNC_HEALTH_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub health_timeout: Duration,
    /// The largest share of a target's objects one revision may delete without a person's
    /// approval (`configsync prune approve`); deleting all of them always needs one.
    #[arg(long, env = "CONFIGSYNC_PRUNE_MAX_SHARE", default_value_t = 0.5, value_parser = share)]
    pub prune_max_share: f64,
    /// Roll an environment back to its last healthy revision when a new one degrades
    /// (repeatable; in the env var, separated by `,`).
    #[arg(
        long = "auto-rollback",
        env = "CONFIGSYNC_AUTO_ROLLBACK",
        value_delimiter = ','
    )]
    pub auto_rollback: Vec<Name>,
    /// Each request to a cluster fails after this long: a cluster that hangs delays only
    /// itself.
    #[arg(long, env = "CONFIGSYNC_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Promotion order: `ENV=PREVIOUS` applies a revision to ENV only once every cluster of
    /// PREVIOUS is healthy on it (or on a later commit). Repeatable; in the env var, separated
    /// by `,`.
    #[arg(long = "promote-after", env = "CONFIGSYNC_PROMOTE_AFTER", value_delimiter = ',', value_parser = promotion)]
    pub promote_after: Vec<(Name, Name)>,
    /// Cluster waves: `ENV/CLUSTER=N` puts a cluster in wave N (default 0); a wave starts only
    /// once every earlier wave of the environment is healthy on the revision, and a degraded
    /// wave stops the rollout there. Repeatable; in the env var, separated by `,`.
    #[arg(long = "wave", env = "CONFIGSYNC_WAVES", value_delimiter = ',', value_parser = wave)]
    pub waves: Vec<(Target, u32)>,
    /// The access policy (YAML; see docs/security.md): who may approve, reject, roll back,
    /// unpin and allow held prunes, and how many approvals each environment needs. Without
    /// one, no approvals are needed and people's actions are accepted unsigned.
    #[arg(long = "access", env = "CONFIGSYNC_ACCESS")]
    pub access: Option<std::path::PathBuf>,
    /// Requests in flight per cluster while applying one level of objects.
    #[arg(
        long = "apply-concurrency",
        env = "CONFIGSYNC_APPLY_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,
}

impl Default for RolloutArgs {
    fn default() -> Self {
        Self {
            health_timeout: Duration::from_secs(300),
            prune_max_share: 0.5,
            auto_rollback: Vec::new(),
            request_timeout: Duration::from_secs(30),
            concurrency: 16,
            promote_after: Vec::new(),
            waves: Vec::new(),
            access: None,
        }
    }
}

impl RolloutArgs {
    /// The environment `environment` is promoted from, if any.
    pub fn promoted_from(&self, environment: &Name) -> Option<&Name> {
        self.promote_after
            .iter()
            .find(|(env, _)| env == environment)
            .map(|(_, previous)| previous)
    }

    /// The environments promoted from `environment`.
    pub fn promoted_to(&self, environment: &Name) -> impl Iterator<Item = &Name> {
        self.promote_after
            .iter()
            .filter(move |(_, previous)| previous == environment)
            .map(|(env, _)| env)
    }

    /// The wave of a target (0 unless configured).
    pub fn wave(&self, target: &Target) -> u32 {
        self.waves
            .iter()
            .find(|(t, _)| t == target)
            .map(|(_, w)| *w)
            .unwrap_or(0)
    }
}

fn promotion(s: &str) -> Result<(Name, Name), String> {
    let (env, previous) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ENV=PREVIOUS, e.g. prod=staging"))?;
    let env = Name::new(env).map_err(|e| e.to_string())?;
    let previous = Name::new(previous).map_err(|e| e.to_string())?;
    if env == previous {
        return Err(format!(
            "{s:?}: an environment cannot be promoted from itself"
        ));
    }
    Ok((env, previous))
}

fn wave(s: &str) -> Result<(Target, u32), String> {
    let (target, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ENV/CLUSTER=N, e.g. prod/eu-1=1"))?;
    let target: Target = target
        .parse()
        .map_err(|e: configsync_core::names::InvalidName| e.to_string())?;
    let n = n
        .parse()
        .map_err(|_| format!("{s:?}: the wave is a whole number"))?;
    Ok((target, n))
}

fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a share between 0 and 1"))
    }
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

/// The durable consumer shared by the applier's replicas. Events of different environments
/// are handled at the same time, those of one environment one after another (see
/// docs/architecture.md).
fn consumer() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        NAME,
        [
            ValidationPassed::TYPE,
            ApprovalGranted::TYPE,
            ApprovalRejected::TYPE,
            RollbackRequested::TYPE,
            UnpinRequested::TYPE,
            PruneApproved::TYPE,
        ]
        .into_iter()
        .map(subject::type_filter)
        .collect(),
    );
    spec.max_in_flight = 4;
    // A cluster that is down makes the change wait, not vanish: retry (with backoff capped at
    // 30 s) for about three days before giving up to the dead-letter record.
    spec.max_deliver = 10_000;
    spec.retry_max = Duration::from_secs(30);
    spec
}

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let clusters = config
        .cluster
        .clusters()
        .map_err(|e| ServiceError::setup("the clusters", e))?;
    // A policy that does not load stops the applier: running without it would approve
    // everything.
    let policy = config
        .rollout
        .access
        .as_deref()
        .map(AccessPolicy::load)
        .transpose()?;
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    if let Some(policy) = &policy {
        tracing::info!(path = %policy.path.display(), environments = policy.file.environments.len(), "access policy loaded");
    }
    for target in clusters.all() {
        tracing::info!(environment = %target.environment, cluster = %target.cluster, kubeconfig = %target.kubeconfig.display(), "cluster configured");
    }
    let bundles = BundleStore::open(&service.log.js).await?;
    let applier = Arc::new(handler::Applier::new(
        service.log.clone(),
        bundles,
        clusters,
        config.cluster.allow_exec_auth,
        config.rollout,
        policy,
        shutdown.clone(),
    ));
    applier.health.bind(&applier);
    let runner = service.log.runner(consumer()).await?;
    // What waited while no applier ran (a cluster configured since, a health check cut
    // short by a restart) is picked up from the log, beside the consumer: a cluster that
    // hangs at start must not hold up the others' events.
    applier.clone().catch_up();
    service.readiness.set(true);
    let result = runner
        .run(
            move |event: Received| applier.clone().handle(event),
            shutdown,
        )
        .await;
    service.stop().await;
    result.map(|_| ()).map_err(ServiceError::from)
}
