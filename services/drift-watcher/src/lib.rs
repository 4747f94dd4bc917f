//! The drift-watcher service: watches managed objects and reports drift from the desired state.
//!
//! The desired state of each target is the bundle of its latest `apply.succeeded` (a fold of
//! the log, rebuilt at start and refreshed on every apply or prune event); each target's managed
//! objects are watched with kube-runtime and compared on every change and periodic resync.
//!
//! Runs alone (the `drift-watcher` binary) or inside `configsync up`, with the same code.

pub mod attribution;
pub mod compare;
pub mod desired;
mod history;
pub mod report;
mod watch;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use configsync_core::cluster::ClusterArgs;
use configsync_core::config::ServiceArgs;
use configsync_core::event::{EventData, Received};
use configsync_core::log::{ConsumerSpec, HandlerError};
use configsync_core::names::Target;
use configsync_core::service::{Service, ServiceConfig, ServiceError};
use configsync_core::{event::EventPayload, subject};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use configsync_core::retry::Backoff;

use crate::report::Reporter;
use crate::watch::TargetWatch;
use configsync_core::cluster::{AppliedBundle, DesiredError, DesiredSource};

/// The service's name: its durable consumer, NATS user and event source.
pub const NAME: &str = "drift-watcher";
/// Where /healthz, /readyz and /metrics are served unless --ops-addr says otherwise.
pub const DEFAULT_OPS_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9104);

/// The drift-watcher's configuration.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "drift-watcher",
    version,
    about = "ConfigSync drift-watcher: watches managed objects and reports drift from the desired state."
)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How often every desired object is compared with the live one, besides watch events.
    #[arg(long, env = "CONFIGSYNC_DRIFT_RESYNC", default_value = "30s", value_parser = humantime::parse_duration)]
    pub resync: Duration,
    /// Fields of an environment that are not drift: `ENV=/json/pointer` (a `*` segment
    /// matches any one; the field and everything under it) or `ENV=manager:NAME` (every field
    /// that field manager owns, e.g. an HPA's). Repeatable; objects add their own with the
    /// `configsync.io/ignore-drift` annotation. Ignored fields are neither reported nor
    /// repaired.
    #[arg(
        long = "ignore-drift",
        env = "CONFIGSYNC_IGNORE_DRIFT",
        value_delimiter = ';'
    )]
    pub ignore_drift: Vec<configsync_core::ignore::EnvironmentRule>,
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
        [
            configsync_core::event::ApplyStarted::TYPE,
            configsync_core::event::ApplySucceeded::TYPE,
            configsync_core::event::ApplyFailed::TYPE,
            configsync_core::event::ResourcePruned::TYPE,
        ]
        .into_iter()
        .map(subject::type_filter)
        .collect(),
    )
}

/// Runs the service until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServiceError> {
    let clusters = config
        .cluster
        .clusters()
        .map_err(|e| ServiceError::setup("the clusters", e))?;
    let service = Service::start(NAME, &config.service, DEFAULT_OPS_ADDR, &shutdown).await?;
    let log = service.log.clone();
    let publisher = log.publisher(Duration::from_secs(60));

    let mut reporters: HashMap<Target, Reporter> = clusters
        .all()
        .map(|t| {
            let reporter = Reporter::new(
                t.environment.as_str(),
                t.cluster.as_str(),
                &log.source,
                publisher.clone(),
            );
            (t.target(), reporter)
        })
        .collect();
    match history::seed(&log, &mut reporters).await {
        Ok(folded) => tracing::debug!(events = folded, "drift events of the log folded"),
        // Drifts still drifted are then reported again, under the same ids (so stored once
        // within the duplicate window).
        Err(e) => tracing::warn!(error = %e, "cannot read the drift events of the log"),
    }

    let (synced_tx, mut synced_rx) = mpsc::channel(reporters.len().max(1));
    let mut receivers = Vec::new();
    let mut senders = HashMap::new();
    let mut applying = HashMap::new();
    for target in clusters.all() {
        let (tx, rx) = tokio::sync::watch::channel(Latest::Unknown);
        let (applying_tx, applying_rx) = tokio::sync::watch::channel(None);
        senders.insert(target.target(), tx);
        applying.insert(target.target(), applying_tx);
        receivers.push((target.clone(), rx, applying_rx));
    }
    let refresher = Arc::new(Refresher {
        source: DesiredSource::new(log.clone()),
        senders,
        applying,
    });

    let mut tasks = tokio::task::JoinSet::new();
    for (target, rx, applying) in receivers {
        let key = target.target();
        let Some(reporter) = reporters.remove(&key) else {
            continue;
        };
        tracing::info!(environment = %target.environment, cluster = %target.cluster, drifted = reporter.drifted(), "watching cluster");
        tasks.spawn(refresher.clone().load_until_known(
            target.environment.to_string(),
            target.cluster.to_string(),
            shutdown.child_token(),
        ));
        let ignore_rules = configsync_core::ignore::EnvironmentRule::of(
            &config.ignore_drift,
            target.environment.as_str(),
        );
        let task = TargetWatch {
            target,
            allow_exec_auth: config.cluster.allow_exec_auth,
            resync: config.resync,
            desired: rx,
            applying,
            ignore_rules,
            reporter,
            synced: synced_tx.clone(),
        };
        tasks.spawn(task.run(shutdown.child_token()));
    }
    drop(synced_tx);

    // Ready once every target has been compared once.
    let targets = refresher.senders.len();
    let readiness = service.readiness.clone();
    tokio::spawn(async move {
        for _ in 0..targets {
            if synced_rx.recv().await.is_none() {
                return;
            }
        }
        tracing::info!(targets, "first comparison of every target done");
        readiness.set(true);
    });

    let runner = log.runner(spec()).await?;
    let result = runner
        .run(
            move |event: Received| refresher.clone().handle(event),
            shutdown.clone(),
        )
        .await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    service.stop().await;
    result.map(|_| ()).map_err(ServiceError::from)
}

/// What this replica knows of a target's desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum Latest {
    /// Not read from the log yet.
    Unknown,
    /// The log holds no successful apply of the target: nothing is desired yet.
    NotApplied,
    Applied(Arc<AppliedBundle>),
}

/// Keeps each target's desired state current from the log.
struct Refresher {
    source: DesiredSource,
    senders: HashMap<Target, tokio::sync::watch::Sender<Latest>>,
    /// Whether the applier is applying to the target now (between its `apply.started` and
    /// the outcome): differences are then its writes, not drift.
    applying: HashMap<Target, tokio::sync::watch::Sender<Option<std::time::Instant>>>,
}

impl Refresher {
    /// A delivery only says "this target changed": replicas split deliveries, so each reads
    /// the target's latest apply from the log instead of trusting the event it was handed.
    async fn handle(self: Arc<Self>, event: Received) -> Result<(), HandlerError> {
        let (env, cluster, applying) = match &event.data {
            EventData::ApplyStarted(a) => (a.environment.as_str(), a.cluster.as_str(), Some(true)),
            EventData::ApplySucceeded(a) => {
                (a.environment.as_str(), a.cluster.as_str(), Some(false))
            }
            EventData::ApplyFailed(a) => (a.environment.as_str(), a.cluster.as_str(), Some(false)),
            EventData::ResourcePruned(p) => (p.environment.as_str(), p.cluster.as_str(), None),
            _ => return Ok(()),
        };
        if applying != Some(true) {
            self.reload(env, cluster).await?;
        }
        if let (Some(applying), Some(flag)) = (
            applying,
            Target::parse(env, cluster)
                .ok()
                .and_then(|t| self.applying.get(&t)),
        ) {
            let since = applying.then(std::time::Instant::now);
            flag.send_if_modified(|now| {
                let changed = now.is_some() != since.is_some();
                *now = since;
                changed
            });
        }
        Ok(())
    }

    /// Reads the target's latest apply from the log and publishes it to the target's watch.
    async fn reload(&self, env: &str, cluster: &str) -> Result<(), DesiredError> {
        let Some(sender) = Target::parse(env, cluster)
            .ok()
            .and_then(|t| self.senders.get(&t))
        else {
            tracing::debug!(environment = env, cluster, "target not watched here");
            return Ok(());
        };
        let latest = match self.source.latest(env, cluster).await? {
            Some(bundle) => Latest::Applied(Arc::new(bundle)),
            None => Latest::NotApplied,
        };
        // Concurrent reloads may finish out of order: only a later apply replaces the state.
        let replaced = sender.send_if_modified(|current| {
            let newer = match (&*current, &latest) {
                (Latest::Applied(c), Latest::Applied(l)) => l.sequence > c.sequence,
                (Latest::Unknown, _) | (Latest::NotApplied, Latest::Applied(_)) => true,
                _ => false,
            };
            if newer {
                *current = latest.clone();
            }
            newer
        });
        if let (true, Latest::Applied(bundle)) = (replaced, &latest) {
            tracing::info!(environment = env, cluster, revision = %bundle.revision, "desired state updated");
        }
        Ok(())
    }

    /// The first read of a target's desired state, retried until the log answers.
    async fn load_until_known(
        self: Arc<Self>,
        env: String,
        cluster: String,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self.reload(&env, &cluster).await {
                Ok(()) => return,
                Err(e) if e.is_transient() => {
                    tracing::warn!(environment = %env, cluster = %cluster, error = %e, "cannot read the desired state; retrying");
                }
                Err(e) => {
                    // Only a new apply of the target (through the consumer) can fix this.
                    tracing::error!(environment = %env, cluster = %cluster, error = %e, "cannot read the desired state");
                    return;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }
}
