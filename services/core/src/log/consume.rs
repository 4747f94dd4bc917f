//! The consumer runner every service uses: a durable pull consumer shared by a service's
//! replicas, explicit acks after the handler's effects are durable, naks with backoff for
//! transient errors, dead-letter records for poison, bounded in-flight work, graceful drain.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::dead_letter::{DeadLetters, Poison};
use super::publish::Publisher;
use crate::binding;
use crate::event::{Received, payload_of};
use crate::metrics::{ConsumerLabels, Metrics, OutcomeLabels};
use crate::retry::Backoff;

/// How a handler failed; the runner's ack decision depends on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// A later attempt may succeed (a cluster or the bus is unreachable): nak with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// No attempt will succeed: record a dead letter and terminate the message.
    #[error("terminal: {0}")]
    Terminal(String),
}

impl HandlerError {
    /// `error` as transient or terminal, as the error itself says.
    pub fn classify(error: impl std::fmt::Display, transient: bool) -> Self {
        if transient {
            Self::Transient(error.to_string())
        } else {
            Self::Terminal(error.to_string())
        }
    }
}

impl From<super::publish::PublishError> for HandlerError {
    /// A publish that may succeed later is retried with the event; one that cannot is poison.
    fn from(e: super::publish::PublishError) -> Self {
        let transient = e.is_transient();
        Self::classify(e, transient)
    }
}

impl From<super::bundles::BundleError> for HandlerError {
    /// A store that is unavailable may come back; a missing or corrupt bundle will not.
    fn from(e: super::bundles::BundleError) -> Self {
        let transient = e.is_transient();
        Self::classify(e, transient)
    }
}

impl From<crate::event::BuildError> for HandlerError {
    /// An event that cannot be built never will be.
    fn from(e: crate::event::BuildError) -> Self {
        Self::Terminal(e.to_string())
    }
}

/// Handles one event. Must be idempotent: a message can be delivered again after a crash
/// between the handler's effect and the ack.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, event: Received) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(&self, event: Received) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(event)
    }
}

/// A service's durable consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The durable name, shared by every replica of the service: replicas split the work.
    pub durable: String,
    /// Subjects to consume (see [`crate::subject`]).
    pub filter_subjects: Vec<String>,
    /// Deliveries before a failing message is dead-lettered.
    pub max_deliver: u64,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Messages handled at once by one replica.
    pub max_in_flight: usize,
    /// First and largest nak delay.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How long shutdown waits for in-flight handlers.
    pub drain_timeout: Duration,
}

impl ConsumerSpec {
    /// Defaults for a service consuming `filter_subjects`.
    pub fn new(durable: impl Into<String>, filter_subjects: Vec<String>) -> Self {
        Self {
            durable: durable.into(),
            filter_subjects,
            max_deliver: 5,
            ack_wait: Duration::from_secs(30),
            max_in_flight: 16,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(20),
        }
    }

    fn config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable.clone()),
            description: Some(format!(
                "configsync {} (shared by its replicas)",
                self.durable
            )),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // Unlimited on the server: the runner dead-letters after `max_deliver` itself, so
            // no message is dropped silently (the server would only emit an advisory).
            max_deliver: -1,
            filter_subjects: self.filter_subjects.clone(),
            // Bounds what a replica holds unacknowledged across every replica.
            max_ack_pending: (self.max_in_flight * 4).max(64) as i64,
            ..Default::default()
        }
    }
}

/// Why the runner stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("could not bind consumer {durable} on stream {stream}: {reason}")]
    Bind {
        durable: String,
        stream: String,
        reason: String,
    },
}

/// Counts of what one run handled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub acked: u64,
    pub retried: u64,
    pub dead_lettered: u64,
}

/// Runs a handler over a durable consumer.
pub struct Runner {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    spec: ConsumerSpec,
    dead_letters: DeadLetters,
    metrics: Metrics,
}

impl Runner {
    /// Creates or updates the durable consumer on `stream` and binds to it.
    pub async fn bind(
        js: &jetstream::Context,
        stream: &str,
        spec: ConsumerSpec,
        publisher: Publisher,
        source: &str,
        metrics: Metrics,
    ) -> Result<Self, ConsumeError> {
        let bind_err = |reason: String| ConsumeError::Bind {
            durable: spec.durable.clone(),
            stream: stream.to_string(),
            reason,
        };
        let handle = js
            .get_stream_no_info(stream)
            .await
            .map_err(|e| bind_err(e.to_string()))?;
        let consumer = handle
            .create_consumer(spec.config())
            .await
            .map_err(|e| bind_err(e.to_string()))?;
        let dead_letters = DeadLetters::new(publisher, spec.durable.clone(), source);
        Ok(Self {
            consumer,
            spec,
            dead_letters,
            metrics,
        })
    }

    /// Handles messages until `shutdown`, then stops pulling, waits for in-flight handlers
    /// (up to the drain timeout) and returns what it did.
    pub async fn run<H: Handler>(
        self,
        handler: H,
        shutdown: CancellationToken,
    ) -> Result<RunStats, ConsumeError> {
        let handler = Arc::new(handler);
        let shared = Arc::new(Shared {
            spec: self.spec.clone(),
            dead_letters: self.dead_letters,
            metrics: self.metrics.clone(),
        });
        let slots = Arc::new(Semaphore::new(self.spec.max_in_flight.max(1)));
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut stats = RunStats::default();
        let lag = tokio::spawn(report_lag(
            self.consumer.clone(),
            self.spec.durable.clone(),
            self.metrics.clone(),
            shutdown.clone(),
        ));
        let mut reconnect = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

        'outer: while !shutdown.is_cancelled() {
            let mut messages = match self
                .consumer
                .stream()
                .max_messages_per_batch(self.spec.max_in_flight.max(1))
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    let delay = reconnect.next_delay();
                    tracing::warn!(consumer = %self.spec.durable, error = %e, retry_in = ?delay, "cannot pull messages, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            loop {
                // Take a slot first: a message is only pulled when it can be handled now.
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => { stats.add(done); continue; }
                    permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
                };
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => {
                        let shared = shared.clone();
                        let handler = handler.clone();
                        tasks.spawn(async move {
                            let outcome = shared.process(&*handler, message).await;
                            drop(permit);
                            outcome
                        });
                    }
                    Some(Err(e)) => {
                        // Missed heartbeats and similar while the server restarts: the pull
                        // stream re-establishes itself; just report.
                        tracing::warn!(consumer = %self.spec.durable, error = %e, "pull stream error");
                    }
                    None => {
                        tracing::warn!(consumer = %self.spec.durable, "pull stream ended, re-subscribing");
                        continue 'outer;
                    }
                }
            }
        }

        tracing::info!(consumer = %self.spec.durable, in_flight = tasks.len(), "draining consumer");
        let drained = tokio::time::timeout(self.spec.drain_timeout, async {
            while let Some(done) = tasks.join_next().await {
                stats.add(done);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(consumer = %self.spec.durable, abandoned = tasks.len(), "drain timed out; unacknowledged messages will be redelivered");
            tasks.abort_all();
        }
        lag.abort();
        Ok(stats)
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Acked,
    Retried,
    DeadLettered,
    /// The ack or nak itself failed: the server will redeliver after `ack_wait`.
    Unsettled,
}

impl RunStats {
    fn add(&mut self, done: Result<Outcome, tokio::task::JoinError>) {
        match done {
            Ok(Outcome::Acked) => self.acked += 1,
            Ok(Outcome::Retried) => self.retried += 1,
            Ok(Outcome::DeadLettered) => self.dead_lettered += 1,
            Ok(Outcome::Unsettled) => {}
            Err(e) => {
                tracing::error!(error = %e, "handler task panicked; the message will be redelivered")
            }
        }
    }
}

struct Shared {
    spec: ConsumerSpec,
    dead_letters: DeadLetters,
    metrics: Metrics,
}

impl Shared {
    async fn process<H: Handler>(&self, handler: &H, message: jetstream::Message) -> Outcome {
        let (sequence, delivered, stored_at) = match message.info() {
            Ok(info) => (
                info.stream_sequence,
                info.delivered.max(1) as u64,
                info.published,
            ),
            Err(e) => {
                // Without metadata it cannot be a JetStream delivery; nothing to settle.
                tracing::error!(error = %e, "message without jetstream metadata ignored");
                return Outcome::Unsettled;
            }
        };
        let subject = message.subject.to_string();
        let poison = |reason: String| Poison {
            subject: &subject,
            headers: message.headers.as_ref(),
            payload: &message.payload,
            stream_sequence: sequence,
            delivery_count: delivered,
            reason,
        };

        if delivered > self.spec.max_deliver {
            let reason = format!(
                "gave up after {} deliveries without an acknowledgement (crash loop?)",
                delivered - 1
            );
            return self.dead_letter(&message, poison(reason)).await;
        }
        let decoded = binding::decode(message.headers.as_ref(), &message.payload)
            .map_err(|e| e.to_string())
            .and_then(|event| {
                payload_of(&event)
                    .map(|data| (event, data))
                    .map_err(|e| e.to_string())
            });
        let (event, data) = match decoded {
            Ok(ok) => ok,
            Err(reason) => {
                return self
                    .dead_letter(&message, poison(format!("undecodable event: {reason}")))
                    .await;
            }
        };
        let received = Received {
            event,
            data,
            subject: subject.clone(),
            stream_sequence: sequence,
            stored_at,
            delivered,
        };
        let span = tracing::info_span!("handle", consumer = %self.spec.durable, event.id = received.id(), event.type = received.type_name(), stream.sequence = sequence, delivered);
        let started = std::time::Instant::now();
        let handling = tracing::Instrument::instrument(handler.handle(received), span);
        // A handler may outlast `ack_wait` (a large revision, a slow cluster): tell the server
        // it is still being worked on, or it would hand the message to another replica too.
        let result = {
            tokio::pin!(handling);
            let mut progress = tokio::time::interval(self.spec.ack_wait / 3);
            progress.tick().await;
            loop {
                tokio::select! {
                    result = &mut handling => break result,
                    _ = progress.tick() => {
                        if let Err(e) = message.ack_with(AckKind::Progress).await {
                            tracing::debug!(consumer = %self.spec.durable, stream.sequence = sequence, error = %e, "progress ack failed");
                        }
                    }
                }
            }
        };
        self.metrics
            .handle_seconds
            .get_or_create(&ConsumerLabels {
                consumer: self.spec.durable.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => match message.double_ack().await {
                Ok(()) => self.count("ack", Outcome::Acked),
                Err(e) => {
                    tracing::warn!(consumer = %self.spec.durable, stream.sequence = sequence, error = %e, "ack failed; the message will be redelivered");
                    Outcome::Unsettled
                }
            },
            Err(HandlerError::Terminal(reason)) => {
                self.dead_letter(&message, poison(format!("handler failed: {reason}")))
                    .await
            }
            Err(HandlerError::Transient(reason)) if delivered >= self.spec.max_deliver => {
                let reason = format!("still failing after {delivered} deliveries: {reason}");
                self.dead_letter(&message, poison(reason)).await
            }
            Err(HandlerError::Transient(reason)) => {
                let delay = Backoff::delay_for_attempt(
                    self.spec.retry_initial,
                    self.spec.retry_max,
                    delivered,
                );
                tracing::warn!(consumer = %self.spec.durable, stream.sequence = sequence, delivered, retry_in = ?delay, %reason, "transient failure, will retry");
                match message.ack_with(AckKind::Nak(Some(delay))).await {
                    Ok(()) => self.count("retry", Outcome::Retried),
                    Err(_) => Outcome::Unsettled,
                }
            }
        }
    }

    /// Records the dead letter, then terminates the message. If the record cannot be written,
    /// the message is nak'ed instead, so nothing is lost.
    async fn dead_letter(&self, message: &jetstream::Message, poison: Poison<'_>) -> Outcome {
        match self.dead_letters.record(poison).await {
            Ok(_) => match message.double_ack_with(AckKind::Term).await {
                Ok(()) => self.count("dead_letter", Outcome::DeadLettered),
                Err(_) => Outcome::Unsettled,
            },
            Err(e) => {
                tracing::error!(consumer = %self.spec.durable, error = %e, "could not record dead letter; will retry the message");
                let _ = message
                    .ack_with(AckKind::Nak(Some(self.spec.retry_initial)))
                    .await;
                Outcome::Unsettled
            }
        }
    }

    fn count(&self, outcome: &str, result: Outcome) -> Outcome {
        self.metrics
            .handled
            .get_or_create(&OutcomeLabels {
                consumer: self.spec.durable.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        result
    }
}

/// Publishes the consumer's lag as gauges every few seconds.
async fn report_lag(
    mut consumer: jetstream::consumer::Consumer<pull::Config>,
    durable: String,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let labels = ConsumerLabels { consumer: durable };
    loop {
        if let Ok(info) = consumer.info().await {
            metrics
                .consumer_pending
                .get_or_create(&labels)
                .set(info.num_pending as i64);
            metrics
                .consumer_ack_pending
                .get_or_create(&labels)
                .set(info.num_ack_pending as i64);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
