//! Rollout simulation: a workload's status converges to its spec after the configured delay.

use crate::store::{Store, WorkloadRef};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Runs until shutdown, converging each workload once its delay has passed.
pub async fn run(
    store: Arc<Store>,
    mut requests: mpsc::UnboundedReceiver<WorkloadRef>,
    delay: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = requests.recv() => next,
        };
        let Some(workload) = next else { return };
        let store = store.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(delay) => {
                    tracing::debug!(kind = %workload.resource.kind, name = %workload.name, generation = workload.generation, "rollout converged");
                    store.converge(&workload);
                }
            }
        });
    }
}
