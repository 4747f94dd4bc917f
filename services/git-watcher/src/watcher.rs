//! The polling loop: rebuild the last seen commit from the log, then fetch, publish what is new
//! in order, and wait; failures are published once per episode and retried with backoff.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use configsync_core::event::Outgoing;
use configsync_core::git::{GitError, RemoteOptions};
use configsync_core::log::Publisher;
use configsync_core::names::SourceId;
use configsync_core::ops::Readiness;
use configsync_core::retry::Backoff;
use configsync_core::service::{Service, ServiceError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::Followed;
use crate::events::{self, Whole};
use crate::failures::FailureReporter;
use crate::last_seen::{LastSeen, last_seen};
use crate::poll::{self, DetectedCommit, Found, Polled};

/// How long a publish retries a NATS hiccup before the poll counts as failed (and is retried).
const PUBLISH_RETRY: Duration = Duration::from_secs(30);
/// The longest wait between attempts while failing, unless the poll interval is longer.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why one poll did not complete.
enum Failure {
    /// The source could not be read: published as `source.failed`.
    Source(GitError),
    /// The event log refused or did not acknowledge an event: retried, nothing to publish.
    Log(String),
    /// The blocking task died (a panic inside gix).
    Internal(String),
}

/// How one poll ended.
enum Outcome {
    Done,
    Failed(Failure),
    Stopped,
}

/// The git-watcher's running state.
pub struct Watcher {
    /// The branch (and sub-directory) followed, of the remote as published: credentials
    /// removed.
    followed: SourceId,
    /// The source's name, as its events carry it.
    name: String,
    /// The remote as configured, only ever handed to gix.
    url: String,
    interval: Duration,
    mirror_dir: PathBuf,
    source: String,
    publisher: Publisher,
    log: configsync_core::log::EventLog,
    readiness: Readiness,
    failures: FailureReporter,
    last: LastSeen,
    /// The keys commit signatures are checked against.
    access: Option<configsync_core::access::AccessPolicy>,
    /// Credentials, host guard and timeout of the fetch.
    remote: RemoteOptions,
    /// Notified by the webhook receiver: poll now rather than at the end of the interval.
    wake: Arc<Notify>,
}

impl Watcher {
    pub fn new(
        followed: Followed,
        service: &Service,
        access: Option<configsync_core::access::AccessPolicy>,
        remote: RemoteOptions,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            followed: followed.spec.id(),
            name: followed.spec.name.to_string(),
            url: followed.spec.url,
            interval: followed.interval,
            mirror_dir: followed.mirror_dir,
            source: service.log.source.clone(),
            publisher: service.log.publisher(PUBLISH_RETRY),
            log: service.log.clone(),
            readiness: service.readiness.clone(),
            failures: FailureReporter::default(),
            last: LastSeen::default(),
            access,
            remote,
            wake,
        }
    }

    /// Polls until `shutdown`; returns early only if the log cannot be replayed.
    pub async fn run(mut self, shutdown: &CancellationToken) -> Result<(), ServiceError> {
        let replayed = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = last_seen(&self.log, &self.followed) => r,
        };
        self.last = replayed
            .map_err(|e| ServiceError::setup("rebuilding the last seen commit from the log", e))?;
        tracing::info!(
            source = %self.name,
            repository = %self.followed.repository,
            branch = %self.followed.branch,
            path = self.followed.path.as_deref().unwrap_or(""),
            last_seen = self.last.sha.as_deref().unwrap_or("none"),
            mirror = %self.mirror_dir.display(),
            interval = ?self.interval,
            "following branch"
        );
        let max_backoff = self.interval.max(MAX_BACKOFF.min(self.interval * 16));
        let mut backoff = Backoff::new(self.interval, max_backoff);
        loop {
            let delay = match self.poll_once(shutdown).await {
                Outcome::Stopped => break,
                Outcome::Done => {
                    backoff = Backoff::new(self.interval, max_backoff);
                    self.readiness.set(true);
                    self.interval
                }
                Outcome::Failed(failure) => {
                    let delay = backoff.next_delay();
                    self.report(failure, delay).await;
                    delay
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
                // A push webhook: poll now. Deliveries during a poll left one permit, so the
                // push they announce is fetched right after.
                _ = self.wake.notified() => {
                    tracing::debug!(repository = %self.followed.repository, "woken by a webhook");
                }
            }
        }
        tracing::info!(repository = %self.followed.repository, branch = %self.followed.branch, "stopped following branch");
        Ok(())
    }

    async fn poll_once(&mut self, shutdown: &CancellationToken) -> Outcome {
        let interrupt = Arc::new(AtomicBool::new(false));
        let task = tokio::task::spawn_blocking({
            let (dir, url, branch, path, remote) = (
                self.mirror_dir.clone(),
                self.url.clone(),
                self.followed.branch.clone(),
                self.followed.path.clone(),
                self.remote.clone(),
            );
            let (last, unannounced) = (self.last.sha.clone(), self.last.rewritten_from.is_some());
            let interrupt = interrupt.clone();
            move || {
                poll::poll(
                    &dir,
                    &url,
                    remote,
                    &branch,
                    path.as_deref(),
                    last.as_deref(),
                    unannounced,
                    &interrupt,
                )
            }
        });
        let polled = tokio::select! {
            _ = shutdown.cancelled() => {
                // The blocking fetch cannot be cancelled; ask it to stop and leave it behind.
                interrupt.store(true, Ordering::Relaxed);
                return Outcome::Stopped;
            }
            joined = task => joined,
        };
        let polled = match polled {
            Ok(Ok(polled)) => polled,
            Ok(Err(e)) => return Outcome::Failed(Failure::Source(e)),
            Err(e) => return Outcome::Failed(Failure::Internal(e.to_string())),
        };
        let published = tokio::select! {
            _ = shutdown.cancelled() => return Outcome::Stopped,
            r = self.publish(polled) => r,
        };
        match published {
            Ok(()) => {
                if self.failures.recovered() {
                    tracing::info!(repository = %self.followed.repository, branch = %self.followed.branch, "source recovered");
                }
                Outcome::Done
            }
            Err(reason) => Outcome::Failed(Failure::Log(reason)),
        }
    }

    /// Publishes what a poll found, in order, moving the last seen commit after each event so
    /// that a failure part-way resumes where it stopped.
    async fn publish(&mut self, polled: Polled) -> Result<(), String> {
        if let Some(tip) = polled.unannounced {
            tracing::info!(sha = %tip.info.sha, "announcing the tip of an earlier rewrite");
            let from = self.last.rewritten_from.clone();
            self.announce(
                &tip,
                Whole::AfterRewrite(from.as_deref().unwrap_or_default()),
            )
            .await?;
        }
        match polled.found {
            Found::Unchanged => {}
            Found::First(tip) => {
                tracing::info!(
                    repository = %self.followed.repository,
                    branch = %self.followed.branch,
                    sha = %tip.info.sha,
                    "branch never followed before: announcing its tip only"
                );
                self.announce(&tip, Whole::First).await?;
            }
            Found::Advanced(commits) => {
                for commit in &commits {
                    self.announce(commit, Whole::No).await?;
                }
            }
            Found::Rewritten { previous, tip } => {
                tracing::warn!(
                    repository = %self.followed.repository,
                    branch = %self.followed.branch,
                    previous_sha = %previous,
                    new_sha = %tip.info.sha,
                    "branch rewritten: the new tip does not descend from the last commit seen"
                );
                let event = events::source_rewritten(
                    &self.followed,
                    &self.name,
                    &previous,
                    &tip.info.sha,
                    &self.source,
                )?;
                self.send(&event).await?;
                self.last = LastSeen {
                    sha: Some(tip.info.sha.clone()),
                    rewritten_from: Some(previous.clone()),
                };
                self.announce(&tip, Whole::AfterRewrite(&previous)).await?;
            }
        }
        Ok(())
    }

    async fn announce(&mut self, commit: &DetectedCommit, whole: Whole<'_>) -> Result<(), String> {
        let event = events::commit_detected(
            &self.followed,
            &self.name,
            commit,
            whole,
            &self.source,
            self.access.as_ref(),
        )?;
        let duplicate = self.send(&event).await?;
        tracing::info!(
            source = %self.name,
            repository = %self.followed.repository,
            branch = %self.followed.branch,
            sha = %commit.info.sha,
            paths = commit.paths.len(),
            event.id = event.id(),
            duplicate,
            "commit detected"
        );
        self.last = LastSeen {
            sha: Some(commit.info.sha.clone()),
            rewritten_from: None,
        };
        Ok(())
    }

    /// Publishes one event; true when JetStream already had it.
    async fn send(&self, event: &Outgoing) -> Result<bool, String> {
        self.publisher
            .publish(event)
            .await
            .map(|p| p.duplicate)
            .map_err(|e| e.to_string())
    }

    /// Logs a failed poll (every attempt, at warn) and publishes `source.failed` when the
    /// failure is new or its reason changed.
    async fn report(&mut self, failure: Failure, retry_in: Duration) {
        let error = match failure {
            Failure::Log(reason) => {
                tracing::warn!(repository = %self.followed.repository, branch = %self.followed.branch, error = %reason, retry_in = ?retry_in, "publishing to the event log failed");
                return;
            }
            Failure::Internal(reason) => {
                tracing::error!(repository = %self.followed.repository, branch = %self.followed.branch, error = %reason, retry_in = ?retry_in, "polling the source crashed");
                return;
            }
            Failure::Source(error) => error,
        };
        let reason = error.to_string();
        let transient = error.is_transient();
        tracing::warn!(
            repository = %self.followed.repository,
            branch = %self.followed.branch,
            error = %reason,
            transient,
            retry_in = ?retry_in,
            "reading the source failed"
        );
        if !self.failures.failed(&reason) {
            return;
        }
        let event = match events::source_failed(
            &self.followed,
            &self.name,
            &reason,
            transient,
            self.last.sha.as_deref(),
            &self.source,
        ) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the source-failed event");
                return;
            }
        };
        if let Err(e) = self.send(&event).await {
            tracing::warn!(error = %e, "cannot publish the source-failed event; will retry");
            self.failures.unreported();
        }
    }
}
