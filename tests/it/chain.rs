//! Shared setup for the tests of services that need something applied first: a real
//! nats-server, kubesim over HTTP (optionally enforcing RBAC, each service then acting as its
//! ServiceAccount), the real applier, and the drift-watcher and remediator run in-process;
//! helpers to apply a bundle, wait for events and read live values with kubectl.

use std::time::Duration;

use clap::Parser;
use configsync_core::event::{EventData, ObjectRef, Outgoing, Received, ValidationPassed};
use configsync_core::harness::WAIT;
use configsync_core::harness::{
    Bus, NatsServer, SOURCE, events_so_far, eventually_true, free_addr, wait_for_event,
};
use configsync_core::log::EventLog;
use configsync_core::log::bundles::BundleStore;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

type Task = tokio::task::JoinHandle<Result<(), configsync_core::service::ServiceError>>;

/// A running service and how to stop it.
pub struct Running {
    pub shutdown: CancellationToken,
    pub task: Task,
    pub ops: std::net::SocketAddr,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the service stops in time")
            .unwrap()
            .unwrap();
    }

    /// Waits until /readyz answers 200.
    pub async fn ready(&self) {
        tokio::time::timeout(WAIT, async {
            loop {
                if configsync::commands::http::status(self.ops, "/readyz").await == Some(200) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the service becomes ready in time");
    }
}

pub struct Setup {
    pub server: NatsServer,
    pub log: EventLog,
    pub sim: kubesim::KubeSim,
    /// The test's own kubeconfig (under RBAC: [`ADMIN`]'s).
    pub kubeconfig: tempfile::NamedTempFile,
    /// Under RBAC, each service's kubeconfig, with its ServiceAccount's token.
    identities: Option<std::collections::HashMap<&'static str, tempfile::NamedTempFile>>,
    pub applier: Running,
}

/// Under RBAC, the user of the test's own requests: allowed everything.
pub const ADMIN: &str = "test-admin";

/// The user a service acts as under RBAC: its ServiceAccount of `deploy/kubernetes`.
pub fn service_account(service: &str) -> String {
    format!("system:serviceaccount:configsync:configsync-{service}")
}

impl Setup {
    /// nats-server, kubesim and the applier of environment `dev`, cluster `c1`.
    pub async fn start() -> Self {
        Self::start_with(kubesim::Config::default()).await
    }

    /// As [`Setup::start`], with kubesim enforcing `rbac`: each service acts as its
    /// ServiceAccount ([`service_account`]), the test as [`ADMIN`].
    pub async fn start_with_rbac(rbac: kubesim::rbac::Rbac) -> Self {
        let config = kubesim::Config {
            rbac: Some(std::sync::Arc::new(rbac.superuser(ADMIN))),
            ..Default::default()
        };
        Self::start_with(config).await
    }

    async fn start_with(config: kubesim::Config) -> Self {
        let rbac = config.rbac.is_some();
        let sim = kubesim::KubeSim::start(config).await.unwrap();
        let Bus { server, log } = Bus::start().await;
        let kubeconfig = tempfile::NamedTempFile::new().unwrap();
        let identities = if rbac {
            kubesim::write_kubeconfig(kubeconfig.path(), &sim.kubeconfig_yaml_as("dev", ADMIN))
                .unwrap();
            let mut files = std::collections::HashMap::new();
            for service in ["applier", "drift-watcher", "remediator"] {
                let file = tempfile::NamedTempFile::new().unwrap();
                let yaml = sim.kubeconfig_yaml_as("dev", &service_account(service));
                kubesim::write_kubeconfig(file.path(), &yaml).unwrap();
                files.insert(service, file);
            }
            Some(files)
        } else {
            sim.write_kubeconfig(kubeconfig.path(), "dev").unwrap();
            None
        };
        let spec = |service: &str| match &identities {
            Some(files) => cluster_spec(&files[service]),
            None => cluster_spec(&kubeconfig),
        };
        let ops = free_addr();
        let config = configsync_applier::Config::try_parse_from([
            "applier",
            "--nats-url",
            &server.url(),
            "--ops-addr",
            &ops.to_string(),
            "--cluster",
            &spec("applier"),
        ])
        .unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(configsync_applier::run(config, shutdown.clone()));
        Setup {
            server,
            log,
            sim,
            kubeconfig,
            identities,
            applier: Running {
                shutdown,
                task,
                ops,
            },
        }
    }

    /// Starts a remediator with `--policy dev=<policy>`.
    pub fn remediator(&self, policy: &str) -> Running {
        let ops = free_addr();
        let config = configsync_remediator::Config::try_parse_from([
            "remediator",
            "--nats-url",
            &self.server.url(),
            "--ops-addr",
            &ops.to_string(),
            "--cluster",
            &self.cluster_spec_of("remediator"),
            "--policy",
            &format!("dev={policy}"),
        ])
        .unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(configsync_remediator::run(config, shutdown.clone()));
        Running {
            shutdown,
            task,
            ops,
        }
    }

    /// Waits until the remediator's durable consumer has acknowledged `sequence`: it has
    /// handled that event, whatever it did about it.
    pub async fn handled_by_remediator(&self, sequence: u64) {
        let stream = self.log.js.get_stream(self.log.stream()).await.unwrap();
        eventually_true("the remediator handles the drift", || async {
            if let Ok(mut consumer) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("remediator")
                .await
                && let Ok(info) = consumer.info().await
            {
                info.ack_floor.stream_sequence >= sequence
            } else {
                false
            }
        })
        .await;
    }

    /// Polls the live value of `data.color` of ConfigMap `name` until it is `want`.
    pub async fn wait_for_color(&self, name: &str, want: &str) {
        let path = self.kubeconfig.path().display().to_string();
        eventually_true(&format!("configmap {name} has color {want}"), || async {
            let out = tokio::process::Command::new("kubectl")
                .args([
                    "--kubeconfig",
                    path.as_str(),
                    "--context",
                    "dev",
                    "get",
                    "configmap",
                    name,
                    "-o",
                    "jsonpath={.data.color}",
                ])
                .output()
                .await
                .expect("kubectl runs");
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == want
        })
        .await;
    }

    /// Starts a drift-watcher (resync every second, so that the resync path is exercised too).
    pub fn drift_watcher(&self) -> Running {
        self.drift_watcher_with(&[])
    }

    /// [`Setup::drift_watcher`] with more flags.
    pub fn drift_watcher_with(&self, extra: &[&str]) -> Running {
        let ops = free_addr();
        let (url, ops_text) = (self.server.url(), ops.to_string());
        let cluster = self.cluster_spec_of("drift-watcher");
        let mut args = vec![
            "drift-watcher",
            "--nats-url",
            &url,
            "--ops-addr",
            &ops_text,
            "--cluster",
            &cluster,
            "--resync",
            "1s",
        ];
        args.extend_from_slice(extra);
        let config = configsync_drift_watcher::Config::try_parse_from(args).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(configsync_drift_watcher::run(config, shutdown.clone()));
        Running {
            shutdown,
            task,
            ops,
        }
    }

    /// Stores a bundle, publishes its validation and waits until the applier applied it.
    pub async fn apply(&self, revision: &str, objects: Vec<Value>) {
        let bundle = json!({"environment": "dev", "revision": revision, "objects": objects});
        let digest = BundleStore::open(&self.log.js)
            .await
            .unwrap()
            .put(&serde_json::to_vec(&bundle).unwrap())
            .await
            .unwrap();
        let payload = ValidationPassed {
            environment: "dev".into(),
            revision: revision.into(),
            bundle_digest: digest,
            objects: objects
                .iter()
                .map(|o| configsync_core::cluster::object_ref(o).unwrap())
                .collect(),
            warnings: vec![],
            commit_sequence: 0,
            author: None,
        };
        let event = Outgoing::builder(&payload)
            .cause(revision)
            .build(SOURCE)
            .unwrap();
        self.log
            .publisher(Duration::from_secs(10))
            .publish(&event)
            .await
            .expect("the validation is stored");
        let applied = self
            .next_event("configsync.evt.dev.c1.apply.>", |e| {
                e.revision() == Some(revision) && !matches!(e.data, EventData::ApplyStarted(_))
            })
            .await;
        assert!(
            matches!(applied.data, EventData::ApplySucceeded(_)),
            "{:?}",
            applied.data
        );
    }

    /// The first event on `filter` (from the beginning of the log) that satisfies `wanted`.
    pub async fn next_event(&self, filter: &str, wanted: impl Fn(&Received) -> bool) -> Received {
        wait_for_event(&self.log.js, filter, |e| wanted(e).then(|| e.clone())).await
    }

    /// Every event on `filter` now in the log.
    pub async fn events(&self, filter: &str) -> Vec<Received> {
        events_so_far(&self.log.js, filter).await
    }

    /// Runs the real kubectl against kubesim; panics with its output when it fails.
    /// `kubectl patch KIND NAME --type merge -p PATCH`: a change made behind ConfigSync's back
    /// (field manager `kubectl-patch`).
    pub async fn merge_patch(&self, kind: &str, name: &str, patch: &str) -> String {
        self.kubectl(&["patch", kind, name, "--type", "merge", "-p", patch])
            .await
    }

    pub async fn kubectl(&self, args: &[&str]) -> String {
        let path = self.kubeconfig.path().display().to_string();
        let mut all = vec!["--kubeconfig", path.as_str(), "--context", "dev"];
        all.extend_from_slice(args);
        let out = tokio::process::Command::new("kubectl")
            .args(&all)
            .output()
            .await
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn stop(self) {
        self.applier.stop().await;
        self.sim.shutdown().await;
    }

    /// The `--cluster` of `service`: its own kubeconfig under RBAC.
    fn cluster_spec_of(&self, service: &str) -> String {
        match &self.identities {
            Some(files) => cluster_spec(&files[service]),
            None => cluster_spec(&self.kubeconfig),
        }
    }
}

fn cluster_spec(kubeconfig: &tempfile::NamedTempFile) -> String {
    format!("dev/c1={}#dev", kubeconfig.path().display())
}

pub fn configmap(name: &str, color: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"color": color, "size": "m"}})
}

pub fn reference(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: kind.into(),
        namespace: Some("default".into()),
        name: name.into(),
    }
}

pub fn secret(name: &str, password_b64: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"}, "type": "Opaque", "data": {"password": password_b64}})
}
