//! The auditor service: indexes every event for audit search and verifies the log.
//!
//! Runs alone (the `auditor` binary) or inside `configsync up`, with the same code.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use configsync_core::config::ServiceArgs;
use configsync_core::log::ConsumerSpec;
use configsync_core::service::{self, ServiceConfig, ServiceError};
use configsync_core::subject;
use tokio_util::sync::CancellationToken;

/// The service's name: its durable consumer, NATS user and event source.
pub const NAME: &str = "auditor";
/// Where /healthz, /readyz and /metrics are served unless --ops-addr says otherwise.
pub const DEFAULT_OPS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9106);

/// The auditor's configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "auditor",
    version,
    about = "ConfigSync auditor: indexes every event for audit search and verifies the log."
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
        vec![format!("{}.>", subject::ROOT)],
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
