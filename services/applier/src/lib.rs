//! The applier service: applies each validated bundle to every cluster of its environment with
//! server-side apply (field manager `configsync`, Namespaces and CRDs first), and records the
//! outcome per object.
//!
//! Runs alone (the `applier` binary) or inside `configsync up`, with the same code.

mod handler;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use configsync_core::cluster::ClusterArgs;
use configsync_core::config::ServiceArgs;
use configsync_core::event::{
    ApprovalGranted, EventPayload, Received, RollbackRequested, ValidationPassed,
};
use configsync_core::log::ConsumerSpec;
use configsync_core::log::bundles::BundleStore;
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
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

/// The durable consumer shared by the applier's replicas. One event in flight per replica:
/// revisions of an environment are applied in log order (see docs/architecture.md).
pub fn consumer() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        NAME,
        [
            ValidationPassed::TYPE,
            ApprovalGranted::TYPE,
            RollbackRequested::TYPE,
        ]
        .into_iter()
        .map(subject::type_filter)
        .collect(),
    );
    spec.max_in_flight = 1;
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
        .map_err(|e| ServiceError::Other(e.to_string()))?;
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    for target in clusters.all() {
        tracing::info!(environment = %target.environment, cluster = %target.cluster, kubeconfig = %target.kubeconfig.display(), "cluster configured");
    }
    let bundles = BundleStore::open(&service.log.js)
        .await
        .map_err(|e| ServiceError::Other(e.to_string()))?;
    let applier = Arc::new(handler::Applier::new(
        service.log.clone(),
        bundles,
        clusters,
        config.cluster.allow_exec_auth,
    ));
    let runner = service.log.runner(consumer()).await?;
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
