//! The validator service: renders and validates each environment a commit touches and stores the bundle.
//!
//! Runs alone (the `validator` binary) or inside `configsync up`, with the same code.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use configsync_core::config::ServiceArgs;
use configsync_core::log::ConsumerSpec;
use configsync_core::service::{self, ServiceConfig, ServiceError};
use configsync_core::{event::EventPayload, subject};
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
    about = "ConfigSync validator: renders and validates each environment a commit touches and stores the bundle."
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
        vec![subject::type_filter(
            configsync_core::event::CommitDetected::TYPE,
        )],
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
