//! Prometheus metrics shared by the runner, the publisher and the services.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub consumer: String,
    /// `ack`, `retry` or `dead_letter`.
    pub outcome: String,
}

/// The metric families of one process.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    /// Messages handled, by consumer and outcome.
    pub handled: Family<OutcomeLabels, Counter>,
    /// Time spent in handlers, by consumer.
    pub handle_seconds: Family<ConsumerLabels, Histogram>,
    /// Messages in the stream not yet delivered to the consumer: its lag.
    pub consumer_pending: Family<ConsumerLabels, Gauge>,
    /// Messages delivered but not yet acknowledged.
    pub consumer_ack_pending: Family<ConsumerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("configsync");
        let handled = Family::<OutcomeLabels, Counter>::default();
        let handle_seconds = Family::<ConsumerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let consumer_pending = Family::<ConsumerLabels, Gauge>::default();
        let consumer_ack_pending = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "events_handled",
            "Events handled by consumer and outcome",
            handled.clone(),
        );
        registry.register(
            "handle_seconds",
            "Time spent handling one event",
            handle_seconds.clone(),
        );
        registry.register(
            "consumer_pending",
            "Events in the stream not yet delivered to the consumer (lag)",
            consumer_pending.clone(),
        );
        registry.register(
            "consumer_ack_pending",
            "Events delivered but not yet acknowledged",
            consumer_ack_pending.clone(),
        );
        Self {
            registry: Arc::new(Mutex::new(registry)),
            handled,
            handle_seconds,
            consumer_pending,
            consumer_ack_pending,
        }
    }

    /// Registers a service's own metric.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(name, help, metric);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Encoding into a String cannot fail for lack of space.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}
