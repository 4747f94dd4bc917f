//! The rollout lifecycle against a real nats-server and kubesim: only changed objects are
//! written, prune and its guard, health, automatic rollback and pins, the order of revisions by
//! branch history, waiting revisions, and a hung cluster that delays only itself.

use std::time::{Duration, Instant};

use configsync_core::event::{EventData, ObjectAction, Outgoing, PruneApproved};
use configsync_core::harness::{WAIT, events_so_far, wait_for_event};
use configsync_core::log::EventLog;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::{
    bus, configmap, live_configmap, outcome, publish_validation, start_applier_with, started,
    validated, validated_again, validated_as,
};

fn resource_version(o: &DynamicObject) -> String {
    o.metadata.resource_version.clone().unwrap()
}

fn annotation(o: &DynamicObject, key: &str) -> Option<String> {
    o.metadata.annotations.as_ref()?.get(key).cloned()
}

fn with_annotation(mut o: Value, key: &str, value: &str) -> Value {
    o["metadata"]["annotations"] = json!({ key: value });
    o
}

fn deployment(name: &str, image: &str, never_ready: bool) -> Value {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": image}]}}}});
    if never_ready {
        d["metadata"]["annotations"] = json!({"kubesim.configsync.io/never-ready": "true"});
    }
    d
}

#[tokio::test]
async fn a_revision_that_changes_nothing_writes_nothing_and_a_new_one_writes_only_what_changed() {
    let (sim, s) = started().await;
    validated(
        &s.log,
        "r1",
        vec![
            configmap("a", "default", "blue"),
            configmap("b", "default", "x"),
        ],
    )
    .await;
    outcome(&s.log, "r1", false).await;
    let (a1, b1) = (
        live_configmap(&sim, "a").await.unwrap(),
        live_configmap(&sim, "b").await.unwrap(),
    );

    // The same objects in a new revision: nothing to write.
    let writes_before = sim.requests().writes();
    validated(
        &s.log,
        "r2",
        vec![
            configmap("a", "default", "blue"),
            configmap("b", "default", "x"),
        ],
    )
    .await;
    let done = outcome(&s.log, "r2", false).await;
    let EventData::ApplySucceeded(ok) = &done.data else {
        unreachable!()
    };
    assert_eq!(
        (ok.counts.created, ok.counts.configured, ok.counts.unchanged),
        (0, 0, 2)
    );
    assert!(ok.results.is_empty(), "only written objects are listed");
    let (a2, b2) = (
        live_configmap(&sim, "a").await.unwrap(),
        live_configmap(&sim, "b").await.unwrap(),
    );
    assert_eq!(
        resource_version(&a1),
        resource_version(&a2),
        "a not written"
    );
    assert_eq!(
        resource_version(&b1),
        resource_version(&b2),
        "b not written"
    );
    assert_eq!(
        sim.requests().writes(),
        writes_before,
        "no write request at all (dry runs are not writes): {:?}",
        sim.requests()
    );

    // One object changes: only it is written, and its annotation names that revision.
    validated(
        &s.log,
        "r3",
        vec![
            configmap("a", "default", "green"),
            configmap("b", "default", "x"),
        ],
    )
    .await;
    let done = outcome(&s.log, "r3", false).await;
    let EventData::ApplySucceeded(ok) = &done.data else {
        unreachable!()
    };
    assert_eq!((ok.counts.configured, ok.counts.unchanged), (1, 1));
    assert_eq!(ok.results.len(), 1);
    assert_eq!(ok.results[0].object.name, "a");
    assert_eq!(ok.results[0].action, ObjectAction::Configured);
    let (a3, b3) = (
        live_configmap(&sim, "a").await.unwrap(),
        live_configmap(&sim, "b").await.unwrap(),
    );
    assert_eq!(a3.data["data"]["color"], "green");
    assert_eq!(
        annotation(&a3, "configsync.io/revision").as_deref(),
        Some("r3")
    );
    assert_eq!(resource_version(&b1), resource_version(&b3));
    assert_eq!(
        annotation(&b3, "configsync.io/revision").as_deref(),
        Some("r1"),
        "b was last changed by r1"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_immutable_field_refused_by_the_dry_run_fails_the_revision_and_writes_nothing() {
    let (sim, s) = started().await;
    validated(
        &s.log,
        "r1",
        vec![
            deployment("web", "nginx:1.26", false),
            configmap("a", "default", "blue"),
        ],
    )
    .await;
    outcome(&s.log, "r1", false).await;
    let mut moved = deployment("web", "nginx:1.26", false);
    moved["spec"]["selector"]["matchLabels"]["app"] = "web-2".into();
    moved["spec"]["template"]["metadata"]["labels"]["app"] = "web-2".into();
    let writes_before = sim.requests().writes();
    validated(
        &s.log,
        "r2",
        vec![moved, configmap("a", "default", "green")],
    )
    .await;
    let done = outcome(&s.log, "r2", false).await;
    let EventData::ApplyFailed(failed) = &done.data else {
        panic!("expected a refusal, got {:?}", done.data)
    };
    assert!(!failed.transient);
    assert_eq!(failed.results.len(), 1, "{:?}", failed.results);
    let message = failed.results[0].message.as_deref().unwrap_or_default();
    assert!(
        message.contains("422") && message.contains("field is immutable"),
        "the API's own reason: {message}"
    );
    assert_eq!(
        live_configmap(&sim, "a").await.unwrap().data["data"]["color"],
        "blue",
        "nothing of r2 was written"
    );
    assert_eq!(sim.requests().writes(), writes_before);
    s.stop().await;
}

#[tokio::test]
async fn removed_objects_are_pruned_but_not_disabled_or_someone_elses() {
    let (sim, s) = started().await;
    let kept = with_annotation(
        configmap("kept", "default", "1"),
        "configsync.io/prune",
        "disabled",
    );
    validated(
        &s.log,
        "r1",
        vec![
            configmap("a", "default", "1"),
            configmap("b", "default", "1"),
            configmap("gone", "default", "1"),
            kept,
            configmap("taken", "default", "1"),
            configmap("c", "default", "1"),
        ],
    )
    .await;
    outcome(&s.log, "r1", false).await;

    // Someone else deletes `taken` and creates their own object of that name.
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
    let api = Api::<DynamicObject>::namespaced_with(client, "default", &ar);
    api.delete("taken", &Default::default()).await.unwrap();
    let theirs: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "taken"}, "data": {"owner": "team-b"}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &theirs).await.unwrap();

    // Three of six leave Git: half, within the guard's default share.
    validated(
        &s.log,
        "r2",
        vec![
            configmap("a", "default", "1"),
            configmap("b", "default", "1"),
            configmap("c", "default", "1"),
        ],
    )
    .await;
    let done = outcome(&s.log, "r2", false).await;
    let EventData::ApplySucceeded(ok) = &done.data else {
        unreachable!()
    };
    assert_eq!(ok.counts.pruned, 1);
    assert!(live_configmap(&sim, "gone").await.is_none(), "pruned");
    assert!(
        live_configmap(&sim, "kept").await.is_some(),
        "prune: disabled"
    );
    let taken = live_configmap(&sim, "taken").await.expect("someone else's");
    assert_eq!(taken.data["data"]["owner"], "team-b");
    let pruned: Vec<String> = events_so_far(&s.log.js, "configsync.evt.dev.c1.resource.pruned.v1")
        .await
        .into_iter()
        .filter_map(|e| match e.data {
            EventData::ResourcePruned(p) => Some(p.object.name),
            _ => None,
        })
        .collect();
    assert_eq!(pruned, ["gone"]);
    s.stop().await;
}

#[tokio::test]
async fn the_prune_guard_holds_a_large_deletion_until_a_person_approves_it() {
    let (sim, s) = started().await;
    let four: Vec<Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| configmap(n, "default", "1"))
        .collect();
    validated(&s.log, "r1", four).await;
    outcome(&s.log, "r1", false).await;
    validated(&s.log, "r2", vec![configmap("a", "default", "1")]).await;
    outcome(&s.log, "r2", false).await;
    let held = wait_for_event(
        &s.log.js,
        "configsync.evt.dev.c1.prune.held.v1",
        |e| match &e.data {
            EventData::PruneHeld(h) => Some(h.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!((held.would_delete, held.inventory), (3, 4));
    assert!(held.reason.contains("75%"), "{}", held.reason);
    for name in ["b", "c", "d"] {
        assert!(live_configmap(&sim, name).await.is_some(), "{name} held");
    }

    let approval = PruneApproved {
        environment: "dev".into(),
        cluster: "c1".into(),
        revision: "r2".into(),
        reason: "retiring the old config maps".into(),
        approved_by: "alice@example.com".into(),
        signature: None,
    };
    let event = Outgoing::builder(&approval)
        .actor("alice@example.com")
        .cause("approve")
        .build("configsync://cli/test")
        .unwrap();
    s.log
        .publisher(Duration::from_secs(10))
        .publish(&event)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while live_configmap(&sim, "d").await.is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the approved prune deletes them");
    for name in ["b", "c", "d"] {
        assert!(live_configmap(&sim, name).await.is_none(), "{name} pruned");
    }
    assert!(live_configmap(&sim, "a").await.is_some());
    let approvals = events_so_far(&s.log.js, "configsync.evt.dev.c1.prune.approved.v1").await;
    assert_eq!(approvals[0].actor(), Some("alice@example.com"));
    let completed =
        wait_for_event(
            &s.log.js,
            "configsync.evt.dev.c1.prune.completed.v1",
            |e| match &e.data {
                EventData::PruneCompleted(p) => Some(p.clone()),
                _ => None,
            },
        )
        .await;
    assert_eq!(
        (completed.deleted, completed.approved_by.as_str()),
        (3, "alice@example.com")
    );
    s.stop().await;
}

/// An applier with automatic rollback for dev, with revision "good" (one Deployment) healthy.
struct AutoRollback {
    sim: kubesim::KubeSim,
    _server: configsync_core::harness::NatsServer,
    _kubeconfig: tempfile::NamedTempFile,
    log: EventLog,
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), configsync_core::service::ServiceError>>,
}

async fn healthy_with_auto_rollback() -> AutoRollback {
    let sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let (server, log, kubeconfig) = bus(&sim).await;
    let (shutdown, task) = start_applier_with(
        &server.url(),
        &kubeconfig,
        &["--health-timeout", "20s", "--auto-rollback", "dev"],
    );
    validated_as(
        &log,
        "dev",
        "good",
        vec![deployment("web", "nginx:1.26", false)],
        10,
    )
    .await;
    wait_for_event(&log.js, "configsync.evt.dev.c1.health.>", |e| {
        match &e.data {
            EventData::HealthReady(h) if h.revision == "good" => Some(()),
            EventData::HealthDegraded(h) if h.revision == "good" => panic!("{h:?}"),
            _ => None,
        }
    })
    .await;
    AutoRollback {
        sim,
        _server: server,
        _kubeconfig: kubeconfig,
        log,
        shutdown,
        task,
    }
}

#[tokio::test]
async fn a_degraded_revision_is_rolled_back_pinned_and_a_newer_commit_lifts_the_pin() {
    let AutoRollback {
        sim,
        _server,
        _kubeconfig,
        log,
        shutdown,
        task,
    } = healthy_with_auto_rollback().await;

    let committed = Instant::now();
    validated_as(
        &log,
        "dev",
        "bad",
        vec![deployment("web", "nginx:1.27", true)],
        20,
    )
    .await;
    let degraded = wait_for_event(
        &log.js,
        "configsync.evt.dev.c1.health.degraded.v1",
        |e| match &e.data {
            EventData::HealthDegraded(h) if h.revision == "bad" => Some(h.clone()),
            _ => None,
        },
    )
    .await;
    assert!(
        degraded.unhealthy[0]
            .reason
            .contains("timed out progressing"),
        "{degraded:?}"
    );
    // The applier pins by itself: an event only it may publish, not a request anyone with
    // operator rights could forge.
    let rollback = wait_for_event(
        &log.js,
        "configsync.evt.dev._.rollout.pinned.v1",
        |e| match &e.data {
            EventData::EnvironmentPinned(p) => Some((p.clone(), e.actor().map(str::to_string))),
            _ => None,
        },
    )
    .await;
    assert_eq!(rollback.0.revision, "good");
    assert_eq!(rollback.0.actor, "configsync");
    assert_eq!(rollback.1.as_deref(), Some("configsync"));
    assert!(
        rollback.0.reason.contains("degraded"),
        "{}",
        rollback.0.reason
    );
    let mut verdicts = 0;
    wait_for_event(
        &log.js,
        "configsync.evt.dev.c1.health.ready.v1",
        |e| match &e.data {
            // The second verdict for "good": the one after the rollback.
            EventData::HealthReady(h) if h.revision == "good" => {
                verdicts += 1;
                (verdicts == 2).then_some(())
            }
            _ => None,
        },
    )
    .await;
    let live = live_deployment(&sim, "web").await;
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    eprintln!(
        "commit of a never-ready revision to healthy again: {:?}",
        committed.elapsed()
    );
    let pinned = events_so_far(&log.js, "configsync.evt.dev._.rollout.pinned.v1").await;
    assert_eq!(pinned.len(), 1);

    // The bad commit validated again (a validator retry, a redelivery): the pin holds.
    validated_again(
        &log,
        "dev",
        "bad",
        vec![deployment("web", "nginx:1.27", true)],
        20,
        "retry",
    )
    .await;
    wait_for_event(
        &log.js,
        "configsync.evt.dev._.rollout.waiting.v1",
        |e| match &e.data {
            EventData::RolloutWaiting(w) if w.revision == "bad" && w.reason.contains("pinned") => {
                Some(())
            }
            _ => None,
        },
    )
    .await;
    assert_eq!(
        live_deployment(&sim, "web").await["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );

    // A newer commit lifts the pin and is applied.
    validated_as(
        &log,
        "dev",
        "fixed",
        vec![deployment("web", "nginx:1.28", false)],
        30,
    )
    .await;
    outcome(&log, "fixed", false).await;
    let unpinned = events_so_far(&log.js, "configsync.evt.dev._.rollout.unpinned.v1").await;
    assert_eq!(unpinned.len(), 1);
    assert_eq!(unpinned[0].actor(), Some("configsync"));
    assert_eq!(
        live_deployment(&sim, "web").await["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_rollback_target_that_degrades_too_stops_the_automatic_rollback() {
    let AutoRollback {
        sim: _sim,
        _server,
        _kubeconfig,
        log,
        shutdown,
        task,
    } = healthy_with_auto_rollback().await;
    validated_as(
        &log,
        "dev",
        "bad",
        vec![deployment("web", "nginx:1.27", true)],
        20,
    )
    .await;
    wait_for_event(&log.js, "configsync.evt.dev._.rollout.pinned.v1", |_| {
        Some(())
    })
    .await;
    // A person rolls back to "bad" anyway: it degrades again, and since it is itself a
    // rollback, nothing rolls it back automatically: the loop guard stops and says so.
    let request = configsync_core::event::RollbackRequested {
        environment: "dev".into(),
        to_revision: "bad".into(),
        reason: "testing the loop guard".into(),
        requested_by: "bob@example.com".into(),
        cluster: None,
        signature: None,
    };
    let event = Outgoing::builder(&request)
        .actor("bob@example.com")
        .cause("by-hand")
        .build("configsync://cli/test")
        .unwrap();
    log.publisher(Duration::from_secs(10))
        .publish(&event)
        .await
        .unwrap();
    let stopped = wait_for_event(
        &log.js,
        "configsync.evt.dev.c1.rollout.waiting.v1",
        |e| match &e.data {
            EventData::RolloutWaiting(w) if w.reason.contains("automatic rollback stopped") => {
                Some(w.clone())
            }
            _ => None,
        },
    )
    .await;
    assert_eq!(stopped.revision, "bad");
    let pins = events_so_far(&log.js, "configsync.evt.dev._.rollout.pinned.v1").await;
    assert_eq!(
        pins.len(),
        2,
        "the automatic one and the person's; no third: {pins:?}"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_older_commit_validated_last_is_never_applied_over_a_newer_one() {
    let (sim, s) = started().await;
    // The validator finished the newer commit first; the older one's result lands last.
    validated_as(
        &s.log,
        "dev",
        "newer",
        vec![configmap("settings", "default", "new")],
        20,
    )
    .await;
    outcome(&s.log, "newer", false).await;
    validated_as(
        &s.log,
        "dev",
        "older",
        vec![configmap("settings", "default", "old")],
        10,
    )
    .await;
    settled(&s.log).await;
    assert_eq!(
        live_configmap(&sim, "settings").await.unwrap().data["data"]["color"],
        "new"
    );
    let applied: Vec<_> = events_so_far(&s.log.js, "configsync.evt.dev.c1.apply.>")
        .await
        .into_iter()
        .filter(|e| e.revision() == Some("older"))
        .collect();
    assert!(
        applied.is_empty(),
        "the older commit was applied: {applied:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_revision_for_an_environment_without_clusters_is_recorded_as_waiting() {
    let (_sim, s) = started().await;
    validated_as(
        &s.log,
        "staging",
        "r1",
        vec![configmap("x", "default", "x")],
        5,
    )
    .await;
    let waiting = wait_for_event(
        &s.log.js,
        "configsync.evt.staging._.rollout.waiting.v1",
        |e| match &e.data {
            EventData::RolloutWaiting(w) => Some(w.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(waiting.revision, "r1");
    assert!(
        waiting.reason.contains("no cluster is configured"),
        "{}",
        waiting.reason
    );
    s.stop().await;
}

#[tokio::test]
async fn a_custom_resource_and_its_definition_in_one_revision_apply_in_order() {
    let (_sim, s) = started().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "shop"}, "spec": {"size": 3}});
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    // Deliberately in the wrong order in the bundle.
    validated(&s.log, "r1", vec![widget, crd, namespace]).await;
    let done = outcome(&s.log, "r1", false).await;
    let EventData::ApplySucceeded(ok) = &done.data else {
        panic!("expected success, got {:?}", done.data)
    };
    let kinds: Vec<&str> = ok.results.iter().map(|r| r.object.kind.as_str()).collect();
    assert_eq!(kinds, ["Namespace", "CustomResourceDefinition", "Widget"]);
    s.stop().await;
}

#[tokio::test]
async fn a_hung_cluster_delays_only_its_own_environment() {
    let sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let (server, log, kubeconfig) = bus(&sim).await;
    // A "cluster" that accepts connections and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let _accepting = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            open.push(socket);
        }
    });
    let hung_kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        hung_kubeconfig.path(),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hung\n  cluster:\n    server: http://{hung_addr}\ncontexts:\n- name: hung\n  context:\n    cluster: hung\n    user: hung\ncurrent-context: hung\nusers:\n- name: hung\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let staging = format!("staging/s1={}#hung", hung_kubeconfig.path().display());
    let (shutdown, task) = start_applier_with(
        &server.url(),
        &kubeconfig,
        &["--cluster", &staging, "--request-timeout", "10s"],
    );
    validated_as(
        &log,
        "staging",
        "s-r1",
        vec![configmap("x", "default", "x")],
        1,
    )
    .await;
    let started = Instant::now();
    validated_as(&log, "dev", "d-r1", vec![configmap("y", "default", "y")], 2).await;
    outcome(&log, "d-r1", false).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "dev waited for the hung staging cluster: {:?}",
        started.elapsed()
    );
    let waiting = wait_for_event(
        &log.js,
        "configsync.evt.staging.s1.apply.failed.v1",
        |e| match &e.data {
            EventData::ApplyFailed(f) if f.transient => Some(f.clone()),
            _ => None,
        },
    )
    .await;
    assert!(waiting.reason.contains("unreachable"), "{}", waiting.reason);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

async fn live_deployment(sim: &kubesim::KubeSim, name: &str) -> Value {
    let client = kube::Client::try_from(kube::Config::new(sim.url().parse().unwrap())).unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    let live = Api::<DynamicObject>::namespaced_with(client, "default", &ar)
        .get(name)
        .await
        .unwrap();
    serde_json::to_value(live).unwrap()
}

/// Waits until the applier has handled (and acknowledged) every event delivered to it.
async fn settled(log: &EventLog) {
    tokio::time::timeout(WAIT, async {
        loop {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = log
                .js
                .get_consumer_from_stream("applier", log.stream())
                .await
                .unwrap();
            let info = consumer.info().await.unwrap();
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the applier handles every event in time");
}

fn statefulset(name: &str, never_ready: bool) -> Value {
    let mut s = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": "db:1"}]}}}});
    if never_ready {
        s["metadata"]["annotations"] = json!({"kubesim.configsync.io/never-ready": "true"});
    }
    s
}

/// A second kubesim, with a kubeconfig whose context is `context`.
async fn another_cluster(context: &str) -> (kubesim::KubeSim, tempfile::NamedTempFile) {
    let sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    sim.write_kubeconfig(kubeconfig.path(), context).unwrap();
    (sim, kubeconfig)
}

#[tokio::test]
async fn prod_waits_for_staging_to_be_healthy_on_the_revision() {
    let staging_sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let (prod_sim, prod_kubeconfig) = another_cluster("prod").await;
    let (server, log, staging_kubeconfig) = bus(&staging_sim).await;
    let staging = format!("staging/s1={}#dev", staging_kubeconfig.path().display());
    let prod = format!("prod/p1={}#prod", prod_kubeconfig.path().display());
    let (shutdown, task) = start_applier_with(
        &server.url(),
        &staging_kubeconfig,
        &[
            "--cluster",
            &staging,
            "--cluster",
            &prod,
            "--promote-after",
            "prod=staging",
            "--health-timeout",
            "60s",
        ],
    );
    // Commit 1 touches both: staging's never becomes ready, so prod must not get it.
    validated_as(&log, "staging", "c1", vec![statefulset("db", true)], 1).await;
    validated_as(
        &log,
        "prod",
        "c1",
        vec![configmap("prod-settings", "default", "one")],
        1,
    )
    .await;
    let waiting = wait_for_event(
        &log.js,
        "configsync.evt.prod._.rollout.waiting.v1",
        |e| match &e.data {
            EventData::RolloutWaiting(w) => Some(w.clone()),
            _ => None,
        },
    )
    .await;
    assert!(
        waiting
            .reason
            .contains("waiting for staging to be healthy on c1")
            && waiting.reason.contains("prod after staging"),
        "{}",
        waiting.reason
    );
    assert!(live_configmap(&prod_sim, "prod-settings").await.is_none());

    // Commit 2 fixes staging: once it is healthy there, prod gets commit 1 (its newest).
    validated_as(&log, "staging", "c2", vec![statefulset("db", false)], 2).await;
    tokio::time::timeout(WAIT, async {
        while live_configmap(&prod_sim, "prod-settings").await.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("prod applied once staging was healthy on a later commit");
    let staging_ready = events_so_far(&log.js, "configsync.evt.staging.s1.health.ready.v1").await;
    let prod_started = events_so_far(&log.js, "configsync.evt.prod.p1.apply.started.v1").await;
    assert!(
        prod_started[0].stream_sequence > staging_ready[0].stream_sequence,
        "prod started before staging was healthy"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_wave_starts_when_the_one_before_is_healthy_and_a_degraded_canary_stops_the_rollout() {
    let canary_sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let (rest_sim, rest_kubeconfig) = another_cluster("dev").await;
    let (server, log, canary_kubeconfig) = bus(&canary_sim).await;
    let rest = format!("dev/rest={}#dev", rest_kubeconfig.path().display());
    // dev/c1 (the canary) is wave 0; dev/rest is wave 1.
    let (shutdown, task) = start_applier_with(
        &server.url(),
        &canary_kubeconfig,
        &[
            "--cluster",
            &rest,
            "--wave",
            "dev/rest=1",
            "--health-timeout",
            "60s",
        ],
    );
    validated_as(
        &log,
        "dev",
        "r1",
        vec![deployment("web", "nginx:1.26", false)],
        1,
    )
    .await;
    wait_for_event(
        &log.js,
        "configsync.evt.dev.rest.health.ready.v1",
        |e| match &e.data {
            EventData::HealthReady(h) if h.revision == "r1" => Some(()),
            _ => None,
        },
    )
    .await;
    let canary_ready = events_so_far(&log.js, "configsync.evt.dev.c1.health.ready.v1").await;
    let rest_started = events_so_far(&log.js, "configsync.evt.dev.rest.apply.started.v1").await;
    assert!(
        rest_started[0].stream_sequence > canary_ready[0].stream_sequence,
        "wave 1 started before wave 0 was healthy"
    );

    validated_as(
        &log,
        "dev",
        "r2",
        vec![deployment("web", "nginx:1.27", true)],
        2,
    )
    .await;
    let stopped = wait_for_event(
        &log.js,
        "configsync.evt.dev.rest.rollout.waiting.v1",
        |e| match &e.data {
            EventData::RolloutWaiting(w) if w.revision == "r2" && w.reason.contains("degraded") => {
                Some(w.clone())
            }
            _ => None,
        },
    )
    .await;
    assert!(stopped.reason.contains("wave 0"), "{}", stopped.reason);
    settled(&log).await;
    let rest_r2: Vec<_> = events_so_far(&log.js, "configsync.evt.dev.rest.apply.>")
        .await
        .into_iter()
        .filter(|e| e.revision() == Some("r2"))
        .collect();
    assert!(
        rest_r2.is_empty(),
        "wave 1 got the degraded revision: {rest_r2:?}"
    );
    assert_eq!(
        live_deployment(&rest_sim, "web").await["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_app_is_applied_only_once_the_apps_it_needs_are_healthy() {
    let (sim, s) = started().await;
    // api needs db: with a db that never becomes ready, api is held, not applied.
    let bundle = |revision: &str, db_ready: bool| {
        json!({
            "environment": "dev",
            "revision": revision,
            "objects": [
                // A fix changes the spec (a new generation), as it would in a real cluster.
                deployment("db", if db_ready { "postgres:16.1" } else { "postgres:16" }, !db_ready),
                configmap("api", "default", "blue"),
            ],
            "apps": {
                "db": {"needs": [], "objects": [0]},
                "api": {"needs": ["db"], "objects": [1]},
            },
        })
    };
    publish_validation(&s.log, bundle("r1", false), 1, "").await;
    let failed = outcome(&s.log, "r1", false).await;
    let EventData::ApplyFailed(f) = &failed.data else {
        panic!("r1 was applied: {:?}", failed.data);
    };
    assert!(
        f.reason.contains("apps held, not applied: api (needs db)")
            && f.reason.contains("Deployment db"),
        "{}",
        f.reason
    );
    assert!(live_configmap(&sim, "api").await.is_none(), "api held");
    assert_eq!(
        live_deployment(&sim, "db").await["spec"]["template"]["spec"]["containers"][0]["image"],
        "postgres:16",
        "db itself is applied"
    );

    // A db that becomes ready lets api follow, in the same rollout.
    publish_validation(&s.log, bundle("r2", true), 2, "").await;
    let ok = outcome(&s.log, "r2", false).await;
    assert!(
        matches!(ok.data, EventData::ApplySucceeded(_)),
        "{:?}",
        ok.data
    );
    assert!(live_configmap(&sim, "api").await.is_some(), "api applied");
    s.stop().await;
}

#[tokio::test]
async fn apps_waiting_for_what_they_need_give_way_to_a_newer_revision() {
    // A long health timeout and an upstream that never becomes ready and never fails: before
    // the rollout gave way, r2 waited behind r1's wait for the whole timeout.
    let sim = kubesim::KubeSim::start(kubesim::Config::default())
        .await
        .unwrap();
    let (server, log, kubeconfig) = bus(&sim).await;
    let (shutdown, task) =
        start_applier_with(&server.url(), &kubeconfig, &["--health-timeout", "10m"]);
    let bundle = |revision: &str, db_ready: bool| {
        json!({
            "environment": "dev",
            "revision": revision,
            "objects": [
                statefulset("db", !db_ready),
                configmap("api", "default", revision),
            ],
            "apps": {
                "db": {"needs": [], "objects": [0]},
                "api": {"needs": ["db"], "objects": [1]},
            },
        })
    };
    publish_validation(&log, bundle("r1", false), 1, "").await;
    wait_for_event(&log.js, "configsync.evt.dev.c1.apply.started.v1", |e| {
        (e.revision() == Some("r1")).then_some(())
    })
    .await;
    // db is applied within milliseconds; then r1 waits for it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    publish_validation(&log, bundle("r2", true), 2, "").await;
    let ok = outcome(&log, "r2", false).await;
    assert!(
        matches!(ok.data, EventData::ApplySucceeded(_)),
        "{:?}",
        ok.data
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "r2 waited {:?} behind r1",
        started.elapsed()
    );
    let api = live_configmap(&sim, "api").await.expect("api applied");
    assert_eq!(api.data["data"]["color"], "r2");
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
