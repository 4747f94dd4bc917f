//! The event log on NATS JetStream: the stream, publishing, consuming, dead letters, replay.

pub mod bundles;
pub mod consume;
pub mod dead_letter;
pub mod publish;
pub mod replay;
pub mod stream;

use std::time::Duration;

use async_nats::jetstream;

pub use consume::{ConsumeError, ConsumerSpec, Handler, HandlerError, RunStats, Runner};
pub use dead_letter::{DEAD_LETTER_TYPE, DeadLetters};
pub use publish::{PendingAck, PublishError, Published, Publisher};
pub use replay::{
    Entry, Fold, Reader, ReplayError, ReplayStats, Start, Until, last_event, replay,
    replay_filtered,
};
pub use stream::{Ensured, StreamError, StreamSpec};

use crate::metrics::Metrics;

/// A process's handle on the event log: the JetStream context, the stream's definition and
/// the identity it publishes as.
#[derive(Clone)]
pub struct EventLog {
    pub js: jetstream::Context,
    pub spec: StreamSpec,
    /// The CloudEvents `source` of this process's events, e.g. `configsync://applier/host-1`.
    pub source: String,
    pub metrics: Metrics,
}

impl EventLog {
    /// A handle for `client`; `source` names this service instance.
    pub fn new(
        client: async_nats::Client,
        source: impl Into<String>,
        metrics: Metrics,
    ) -> Result<Self, StreamError> {
        Ok(Self {
            js: jetstream::new(client),
            spec: StreamSpec::from_definition(1)?,
            source: source.into(),
            metrics,
        })
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        self.spec.name()
    }

    /// A publisher that retries transient failures for up to `retry_for`.
    pub fn publisher(&self, retry_for: Duration) -> Publisher {
        Publisher::new(self.js.clone(), self.spec.max_message_size(), retry_for)
    }

    /// Binds a durable consumer; its dead letters are published with the same retry window.
    pub async fn runner(&self, spec: ConsumerSpec) -> Result<Runner, ConsumeError> {
        Runner::bind(
            &self.js,
            self.stream(),
            spec,
            self.publisher(Duration::from_secs(60)),
            &self.source,
            self.metrics.clone(),
        )
        .await
    }

    /// Waits until the stream exists (another process may be creating it), up to `deadline`.
    pub async fn wait_for_stream(&self, deadline: Duration) -> Result<(), StreamError> {
        let until = tokio::time::Instant::now() + deadline;
        let mut backoff =
            crate::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match self.js.get_stream_no_info(self.stream()).await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= until => {
                    return Err(StreamError::Request(format!(
                        "stream {} is not available ({e}); create it with `configsync nats init`",
                        self.stream()
                    )));
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::info!(stream = self.stream(), error = %e, retry_in = ?delay, "waiting for the event stream");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
