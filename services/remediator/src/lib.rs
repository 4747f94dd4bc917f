//! The remediator service: repairs drift under each environment's policy (auto, alert or off).
//!
//! Under `auto` a drift is repaired by re-applying the desired object of the target's latest
//! successful apply (forced server-side apply, field manager `configsync`), with
//! `remediation.started` then `remediation.succeeded` or `remediation.failed`; under `alert`
//! the drift event is the only record; under `off` nothing happens.
//!
//! Runs alone (the `remediator` binary) or inside `configsync up`, with the same code.

mod fights;
mod handler;
pub mod policy;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use configsync_core::cluster::ClusterArgs;
use configsync_core::config::ServiceArgs;
use configsync_core::event::Received;
use configsync_core::log::ConsumerSpec;
use configsync_core::service::{Service, ServiceConfig, ServiceError};
use configsync_core::{event::EventPayload, subject};
use tokio_util::sync::CancellationToken;

use crate::policy::Policies;

/// The service's name: its durable consumer, NATS user and event source.
pub const NAME: &str = "remediator";
/// Where /healthz, /readyz and /metrics are served unless --ops-addr says otherwise.
pub const DEFAULT_OPS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9105);

/// The remediator's configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "remediator",
    version,
    about = "ConfigSync remediator: repairs drift under each environment's policy (auto, alert or off)."
)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// An environment's remediation policy: `ENV=auto|alert|off`. Repeat for every
    /// environment; in the env var, separate them with `;`. Unlisted environments: `alert`.
    #[arg(long = "policy", env = "CONFIGSYNC_POLICIES", value_delimiter = ';')]
    pub policies: Vec<policy::PolicySpec>,
    /// Repairs of one object within `--fight-window` that mean another controller keeps
    /// undoing them: the remediator records `remediation.conflict` and stops repairing it.
    #[arg(long, env = "CONFIGSYNC_FIGHT_THRESHOLD", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub fight_threshold: u32,
    /// The window of `--fight-threshold`.
    #[arg(long, env = "CONFIGSYNC_FIGHT_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub fight_window: std::time::Duration,
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

/// The durable consumer shared by the replicas of this service (named after it).
fn spec() -> ConsumerSpec {
    ConsumerSpec::new(
        NAME,
        vec![subject::type_filter(
            configsync_core::event::DriftDetected::TYPE,
        )],
    )
}

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let clusters = config
        .cluster
        .clusters()
        .map_err(|e| ServiceError::setup("the clusters", e))?;
    let policies = Policies::from_parsed(&config.policies)
        .map_err(|e| ServiceError::setup("the remediation policies", e))?;
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    for (environment, policy) in policies.listed() {
        tracing::info!(environment, ?policy, "remediation policy");
    }
    let remediator = Arc::new(handler::Remediator::new(
        service.log.clone(),
        clusters,
        policies,
        config.cluster.allow_exec_auth,
        fights::FightRule {
            threshold: config.fight_threshold,
            window: config.fight_window,
        },
    ));
    let runner = service.log.runner(spec()).await?;
    service.readiness.set(true);
    let result = runner
        .run(
            move |event: Received| remediator.clone().handle(event),
            shutdown,
        )
        .await;
    service.stop().await;
    result.map(|_| ()).map_err(ServiceError::from)
}
