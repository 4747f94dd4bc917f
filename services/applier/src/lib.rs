//! The applier service: applies validated bundles to every cluster of an environment with server-side apply.
//!
//! Runs alone (the `applier` binary) or inside `configsync up`, with the same code.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use configsync_core::config::ServiceArgs;
use configsync_core::log::ConsumerSpec;
use configsync_core::service::{self, ServiceConfig, ServiceError};
use configsync_core::{event::EventPayload, subject};
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
    about = "ConfigSync applier: applies validated bundles to every cluster of an environment with server-side apply."
)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
}

impl ServiceConfig for Config {
    fn service_args(&self) -> &ServiceArgs {
        &self.service
    }
}

/// The durable consumer shared by the replicas of this service, if it consumes events.
pub fn consumer() -> Option<ConsumerSpec> {
    Some(ConsumerSpec::new(
        NAME,
        [
            configsync_core::event::ValidationPassed::TYPE,
            configsync_core::event::ApprovalGranted::TYPE,
            configsync_core::event::RollbackRequested::TYPE,
        ]
        .into_iter()
        .map(subject::type_filter)
        .collect(),
    ))
}

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    service::run_bound(
        NAME,
        &config.service,
        DEFAULT_OPS_ADDR,
        consumer(),
        shutdown,
    )
    .await
}
