//! The applier against a real nats-server and kubesim over HTTP: validated bundles reach the
//! cluster with server-side apply; refusals, superseded revisions and a cluster that is down.
//! The rollout lifecycle (writes, prune, health, rollback, pins) is in `rollout`.

mod rollout;

use std::time::Duration;

use clap::Parser;
use configsync_core::event::{
    EventData, ObjectAction, ObjectRef, Outgoing, Received, ValidationPassed,
};
use configsync_core::harness::{
    Bus, NatsServer, SOURCE, WAIT, events_so_far, free_addr, wait_for_event,
};
use configsync_core::log::EventLog;
use configsync_core::log::bundles::BundleStore;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

type Task = tokio::task::JoinHandle<Result<(), configsync_core::service::ServiceError>>;

struct Setup {
    _server: NatsServer,
    log: EventLog,
    kubeconfig: tempfile::NamedTempFile,
    shutdown: CancellationToken,
    task: Task,
}

/// A nats-server with the stream and bundle store, and a kubeconfig for `sim` (context `dev`).
async fn bus(sim: &kubesim::KubeSim) -> (NatsServer, EventLog, tempfile::NamedTempFile) {
    let Bus { server, log } = Bus::start().await;
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    sim.write_kubeconfig(kubeconfig.path(), "dev").unwrap();
    (server, log, kubeconfig)
}

/// Runs the applier in process for cluster `dev/c1` of `kubeconfig`.
fn start_applier(
    nats_url: &str,
    kubeconfig: &tempfile::NamedTempFile,
) -> (CancellationToken, Task) {
    start_applier_with(nats_url, kubeconfig, &[])
}

/// [`start_applier`] with more flags.
fn start_applier_with(
    nats_url: &str,
    kubeconfig: &tempfile::NamedTempFile,
    extra: &[&str],
) -> (CancellationToken, Task) {
    let cluster = format!("dev/c1={}#dev", kubeconfig.path().display());
    let ops = free_addr().to_string();
    let mut args = vec![
        "applier",
        "--nats-url",
        nats_url,
        "--ops-addr",
        &ops,
        "--cluster",
        &cluster,
    ];
    args.extend_from_slice(extra);
    let config = configsync_applier::Config::try_parse_from(args).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(configsync_applier::run(config, shutdown.clone()));
    (shutdown, task)
}

/// A kubesim and, against it, a bus and the applier for `dev/c1`.
async fn started() -> (kubesim::KubeSim, Setup) {
    let sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let s = setup(&sim).await;
    (sim, s)
}

impl Setup {
    /// Stops the applier and checks it ended cleanly.
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn setup(sim: &kubesim::KubeSim) -> Setup {
    let (server, log, kubeconfig) = bus(sim).await;
    let (shutdown, task) = start_applier(&server.url(), &kubeconfig);
    Setup {
        _server: server,
        log,
        kubeconfig,
        shutdown,
        task,
    }
}

fn configmap(name: &str, namespace: &str, color: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": {"color": color}})
}

fn reference(o: &Value) -> ObjectRef {
    configsync_core::cluster::object_ref(o).unwrap()
}

/// Stores a bundle and publishes its validation, as the validator does.
async fn validated(log: &EventLog, revision: &str, objects: Vec<Value>) -> Outgoing {
    validated_as(log, "dev", revision, objects, 0).await
}

/// [`validated`] for any environment, with the commit's place in history.
async fn validated_as(
    log: &EventLog,
    environment: &str,
    revision: &str,
    objects: Vec<Value>,
    commit_sequence: u64,
) -> Outgoing {
    validated_again(log, environment, revision, objects, commit_sequence, "").await
}

/// [`validated_as`], published as a distinct event (`attempt` is one more cause of its id): a
/// validator retry of the same commit after the duplicate window.
async fn validated_again(
    log: &EventLog,
    environment: &str,
    revision: &str,
    objects: Vec<Value>,
    commit_sequence: u64,
    attempt: &str,
) -> Outgoing {
    let bundle = json!({"environment": environment, "revision": revision, "objects": objects});
    publish_validation(log, bundle, commit_sequence, attempt).await
}

/// Stores `bundle` (a bundle's JSON: environment, revision, objects and perhaps apps) and
/// publishes its `validation.passed`.
async fn publish_validation(
    log: &EventLog,
    bundle: Value,
    commit_sequence: u64,
    attempt: &str,
) -> Outgoing {
    let environment = bundle["environment"].as_str().unwrap().to_string();
    let revision = bundle["revision"].as_str().unwrap().to_string();
    let objects: Vec<Value> = bundle["objects"].as_array().unwrap().clone();
    let (environment, revision) = (environment.as_str(), revision.as_str());
    let digest = BundleStore::open(&log.js)
        .await
        .unwrap()
        .put(&serde_json::to_vec(&bundle).unwrap())
        .await
        .unwrap();
    let payload = ValidationPassed {
        environment: environment.into(),
        revision: revision.into(),
        bundle_digest: digest,
        objects: objects.iter().map(reference).collect(),
        warnings: vec![],
        commit_sequence,
        author: None,
    };
    let event = Outgoing::builder(&payload)
        .cause(revision)
        .cause(environment)
        .cause(attempt)
        .build(SOURCE)
        .unwrap();
    log.publisher(Duration::from_secs(10))
        .publish(&event)
        .await
        .expect("the validation is stored");
    event
}

/// Waits for an apply outcome (succeeded or failed) of `revision`, optionally a transient one.
async fn outcome(log: &EventLog, revision: &str, transient_failure: bool) -> Received {
    wait_for_event(&log.js, "configsync.evt.dev.c1.apply.>", |e| {
        let wanted = e.revision() == Some(revision)
            && match &e.data {
                EventData::ApplySucceeded(_) => !transient_failure,
                EventData::ApplyFailed(f) => f.transient == transient_failure,
                _ => false,
            };
        wanted.then(|| e.clone())
    })
    .await
}

async fn live_configmap(sim: &kubesim::KubeSim, name: &str) -> Option<DynamicObject> {
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
    Api::<DynamicObject>::namespaced_with(client, "default", &ar)
        .get_opt(name)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_validated_bundle_is_applied_then_updated_and_marked_as_managed() {
    let (sim, s) = started().await;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}});
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    // The namespace comes last in the bundle: the applier must still create it first.
    let first = validated(
        &s.log,
        "r1",
        vec![
            configmap("settings", "default", "blue"),
            deployment,
            namespace,
        ],
    )
    .await;
    let done = outcome(&s.log, "r1", false).await;
    let EventData::ApplySucceeded(ok) = &done.data else {
        unreachable!()
    };
    assert!(
        ok.results.iter().all(|r| r.action == ObjectAction::Created),
        "{:?}",
        ok.results
    );
    assert_eq!(ok.results[0].object.kind, "Namespace");
    assert_eq!(
        done.correlation_id(),
        first
            .event()
            .extension("correlationid")
            .map(|v| v.to_string())
            .as_deref()
    );

    let live = live_configmap(&sim, "settings").await.expect("applied");
    assert_eq!(live.data["data"]["color"], "blue");
    assert_eq!(
        live.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "configsync"
    );
    assert_eq!(
        live.metadata.annotations.as_ref().unwrap()["configsync.io/revision"],
        "r1"
    );
    let managers: Vec<_> = live
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, ["configsync"]);

    validated(
        &s.log,
        "r2",
        vec![configmap("settings", "default", "green")],
    )
    .await;
    let done = outcome(&s.log, "r2", false).await;
    let EventData::ApplySucceeded(ok) = &done.data else {
        unreachable!()
    };
    assert_eq!(ok.results[0].action, ObjectAction::Configured);
    assert_eq!(
        live_configmap(&sim, "settings").await.unwrap().data["data"]["color"],
        "green"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_dry_run_refusal_fails_the_revision_with_the_reason_and_writes_nothing() {
    let (sim, s) = started().await;
    validated(
        &s.log,
        "r1",
        vec![
            configmap("ok", "default", "blue"),
            configmap("lost", "nowhere", "red"),
        ],
    )
    .await;
    let done = outcome(&s.log, "r1", false).await;
    let EventData::ApplyFailed(failed) = &done.data else {
        panic!("expected failed, got {:?}", done.data)
    };
    assert!(!failed.transient);
    assert!(
        failed.reason.contains("ConfigMap nowhere/lost")
            && failed.reason.contains("nothing was written"),
        "{}",
        failed.reason
    );
    let actions: Vec<_> = failed
        .results
        .iter()
        .map(|r| (r.object.name.as_str(), r.action))
        .collect();
    assert_eq!(actions, [("lost", ObjectAction::Failed)]);
    assert!(
        failed.results[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("nowhere")),
        "the API's own message: {:?}",
        failed.results[0]
    );
    assert!(
        live_configmap(&sim, "ok").await.is_none(),
        "the dry run refused part of the revision: none of it may be written"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_older_revision_never_overwrites_a_newer_one() {
    let (sim, s) = started().await;
    // Stop the applier so that both validations are in the log before it reads either.
    s.shutdown.cancel();
    s.task.await.unwrap().unwrap();
    validated(&s.log, "old", vec![configmap("settings", "default", "old")]).await;
    validated(&s.log, "new", vec![configmap("settings", "default", "new")]).await;
    let (shutdown, task) = start_applier(&s._server.url(), &s.kubeconfig);
    outcome(&s.log, "new", false).await;
    assert_eq!(
        live_configmap(&sim, "settings").await.unwrap().data["data"]["color"],
        "new"
    );
    // Nothing was ever applied for the superseded revision.
    for e in events_so_far(&s.log.js, "configsync.evt.dev.c1.apply.>").await {
        assert_ne!(
            e.revision(),
            Some("old"),
            "superseded revision was applied: {:?}",
            e.data
        );
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_cluster_down_at_apply_time_gets_the_change_when_it_is_back() {
    let sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let addr = sim.addr();
    let s = setup(&sim).await;
    sim.shutdown().await;
    validated(&s.log, "r1", vec![configmap("settings", "default", "blue")]).await;
    let waiting = outcome(&s.log, "r1", true).await;
    let EventData::ApplyFailed(failed) = &waiting.data else {
        unreachable!()
    };
    assert!(failed.reason.contains("unreachable"), "{}", failed.reason);

    let back = kubesim::KubeSim::start_on(addr, kubesim::Config::default())
        .await
        .expect("same port again");
    outcome(&s.log, "r1", false).await;
    assert_eq!(
        live_configmap(&back, "settings").await.unwrap().data["data"]["color"],
        "blue"
    );
    s.stop().await;
}

/// Polls `GET /readyz` on `addr` until it answers 200.
async fn ready(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await;
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer).await;
                if answer.contains(" 200 ") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the binary becomes ready in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_from_environment_variables_applies_and_stops_on_sigterm() {
    let sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let (server, log, kubeconfig) = bus(&sim).await;
    let ops = free_addr();

    // Configured only through the environment, as a Deployment would configure it.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_applier"))
        .env("CONFIGSYNC_NATS_URL", server.url())
        .env("CONFIGSYNC_OPS_ADDR", ops.to_string())
        .env(
            "CONFIGSYNC_CLUSTERS",
            format!("dev/c1={}#dev", kubeconfig.path().display()),
        )
        .env("CONFIGSYNC_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the applier binary starts");
    ready(ops).await;
    validated(
        &log,
        "r1",
        vec![configmap("from-binary", "default", "blue")],
    )
    .await;
    outcome(&log, "r1", false).await;
    assert!(live_configmap(&sim, "from-binary").await.is_some());

    let pid = child.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("stops on SIGTERM in time")
        .unwrap();
    assert!(status.success(), "a clean shutdown exits 0: {status:?}");
}
