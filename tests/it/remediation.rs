//! Policies at work: `auto` reverts a kubectl change (and recreates a deleted object) and
//! records the repair in the drift's correlation; `alert` leaves the change and writes nothing.

use configsync_core::event::{DriftDetected, DriftKind, EventData, FieldDrift, Outgoing};

use configsync_core::harness::WAIT;

use crate::chain::{Setup, configmap, reference};

const DETECTED: &str = "configsync.evt.dev.c1.drift.detected.v1";
const REMEDIATION: &str = "configsync.evt.dev.c1.remediation.>";

#[tokio::test]
async fn under_auto_a_kubectl_change_is_reverted_and_the_repair_is_recorded() {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let watcher = s.drift_watcher();
    let remediator = s.remediator("auto");
    watcher.ready().await;

    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    let drift = s.next_event(DETECTED, |_| true).await;
    let EventData::DriftDetected(d) = &drift.data else {
        unreachable!()
    };
    assert_eq!(d.changed_by.as_deref(), Some("kubectl-patch"));
    s.wait_for_color("settings", "blue").await;

    let started = s
        .next_event(REMEDIATION, |e| {
            matches!(e.data, EventData::RemediationStarted(_))
        })
        .await;
    let succeeded = s
        .next_event(REMEDIATION, |e| {
            matches!(e.data, EventData::RemediationSucceeded(_))
        })
        .await;
    let EventData::RemediationSucceeded(ok) = &succeeded.data else {
        unreachable!()
    };
    assert_eq!(ok.object, reference("ConfigMap", "settings"));
    assert_eq!(ok.revision, "r1");
    assert_eq!(ok.drift_event, drift.id());
    assert!(drift.correlation_id().is_some());
    assert_eq!(succeeded.correlation_id(), drift.correlation_id());
    assert_eq!(started.correlation_id(), drift.correlation_id());
    assert!(started.stream_sequence < succeeded.stream_sequence);
    // The repaired object matches again: the drift-watcher closes the drift.
    s.next_event("configsync.evt.dev.c1.drift.resolved.v1", |_| true)
        .await;

    // A deleted object is recreated, with the markings the applier gives it.
    s.kubectl(&["delete", "configmap", "settings"]).await;
    let deleted = s
        .next_event(
            DETECTED,
            |e| matches!(&e.data, EventData::DriftDetected(d) if d.kind == DriftKind::Deleted),
        )
        .await;
    s.wait_for_color("settings", "blue").await;
    let repaired = s
        .next_event(REMEDIATION, |e| matches!(&e.data, EventData::RemediationSucceeded(r) if r.drift_event == deleted.id()))
        .await;
    assert_eq!(repaired.correlation_id(), deleted.correlation_id());
    let labels = s
        .kubectl(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}",
        ])
        .await;
    assert_eq!(labels.trim(), "configsync");

    remediator.stop().await;
    watcher.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn under_alert_a_kubectl_change_is_only_reported() {
    only_reported("alert").await;
}

#[tokio::test]
async fn under_off_a_kubectl_change_is_left_alone() {
    only_reported("off").await;
}

/// The drift is reported and handled by the remediator, the change stays, nothing is written.
async fn only_reported(policy: &str) {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let watcher = s.drift_watcher();
    let remediator = s.remediator(policy);
    watcher.ready().await;

    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    let drift = s.next_event(DETECTED, |_| true).await;
    let EventData::DriftDetected(d) = &drift.data else {
        unreachable!()
    };
    assert_eq!(d.changed_by.as_deref(), Some("kubectl-patch"));
    s.handled_by_remediator(drift.stream_sequence).await;

    s.wait_for_color("settings", "red").await;
    assert!(
        s.events(REMEDIATION).await.is_empty(),
        "{policy} must not repair"
    );
    remediator.stop().await;
    watcher.stop().await;
    s.stop().await;
}

/// An HPA-style fight: something changes the object back after every repair. After three
/// repairs within the window the remediator records the conflict, names the other manager and
/// stops; the object is left as the other controller wants it.
#[tokio::test]
async fn a_controller_that_keeps_undoing_repairs_ends_in_a_recorded_conflict() {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let watcher = s.drift_watcher();
    let remediator = s.remediator("auto");
    watcher.ready().await;

    let repaired =
        |e: &configsync_core::event::Received| matches!(e.data, EventData::RemediationSucceeded(_));
    for round in 1..=3 {
        s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
            .await;
        s.wait_for_color("settings", "blue").await;
        tokio::time::timeout(WAIT, async {
            while s
                .events(REMEDIATION)
                .await
                .iter()
                .filter(|e| repaired(e))
                .count()
                < round
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the repair is recorded");
    }
    // The fourth time is a fight.
    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    let conflict = s
        .next_event(REMEDIATION, |e| {
            matches!(e.data, EventData::RemediationConflict(_))
        })
        .await;
    let EventData::RemediationConflict(c) = &conflict.data else {
        unreachable!()
    };
    assert_eq!(c.other_manager, "kubectl-patch");
    assert_eq!(c.occurrences, 3);
    assert_eq!(c.object, reference("ConfigMap", "settings"));
    s.wait_for_color("settings", "red").await;

    // And it stays over: another change is not repaired either.
    s.merge_patch("configmap", "settings", r#"{"data":{"color":"yellow"}}"#)
        .await;
    let drift = s
        .next_event(DETECTED, |e| {
            matches!(&e.data, EventData::DriftDetected(d) if d.fields.iter().any(|f| f.live == Some(serde_json::json!("yellow"))))
        })
        .await;
    s.handled_by_remediator(drift.stream_sequence).await;
    s.wait_for_color("settings", "yellow").await;
    let remediations = s.events(REMEDIATION).await;
    assert_eq!(remediations.iter().filter(|e| repaired(e)).count(), 3);
    assert_eq!(
        remediations
            .iter()
            .filter(|e| matches!(e.data, EventData::RemediationConflict(_)))
            .count(),
        1
    );
    remediator.stop().await;
    watcher.stop().await;
    s.stop().await;
}

/// Ignore rules: a field the object's annotation names, and every field of a manager the
/// environment names (an HPA's, here `hpa`), are neither reported nor repaired; when another
/// field drifts, the event lists the ignored ones and the repair leaves them alone.
#[tokio::test]
async fn ignored_fields_are_neither_reported_nor_repaired() {
    let s = Setup::start().await;
    let mut settings = configmap("settings", "blue");
    settings["metadata"]["annotations"] =
        serde_json::json!({"configsync.io/ignore-drift": "/data/size"});
    s.apply("r1", vec![settings, configmap("scaled", "blue")])
        .await;
    let watcher = s.drift_watcher_with(&["--ignore-drift", "dev=manager:hpa"]);
    let remediator = s.remediator("auto");
    watcher.ready().await;

    s.merge_patch("configmap", "settings", r#"{"data":{"size":"xl"}}"#)
        .await;
    s.kubectl(&[
        "patch",
        "configmap",
        "scaled",
        "--type",
        "merge",
        "--field-manager",
        "hpa",
        "-p",
        r#"{"data":{"color":"red"}}"#,
    ])
    .await;
    // Three resyncs (one a second) and the watch events: nothing to report.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        s.events(DETECTED).await.is_empty(),
        "ignored fields reported as drift"
    );

    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    let drift = s.next_event(DETECTED, |_| true).await;
    let EventData::DriftDetected(d) = &drift.data else {
        unreachable!()
    };
    assert_eq!(d.object, reference("ConfigMap", "settings"));
    let paths: Vec<&str> = d.fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/data/color"]);
    assert_eq!(d.ignored.len(), 1, "{:?}", d.ignored);
    assert_eq!(
        (d.ignored[0].path.as_str(), d.ignored[0].rule.as_str()),
        ("/data/size", "/data/size")
    );
    s.wait_for_color("settings", "blue").await;
    s.next_event(REMEDIATION, |e| {
        matches!(e.data, EventData::RemediationSucceeded(_))
    })
    .await;
    let size = s
        .kubectl(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.size}",
        ])
        .await;
    assert_eq!(size.trim(), "xl", "the repair left the ignored field alone");
    let scaled = s
        .kubectl(&["get", "configmap", "scaled", "-o", "jsonpath={.data.color}"])
        .await;
    assert_eq!(scaled.trim(), "red", "the hpa's field is its own");

    remediator.stop().await;
    watcher.stop().await;
    s.stop().await;
}

/// The fence: a repair is written only over the version of the object the drift was seen on.
/// A drift report that is stale when the remediator acts (the object changed since, as when
/// the applier writes a newer revision in between) is refused by the API server's
/// resourceVersion precondition, never written over; a current one is repaired.
#[tokio::test]
async fn a_repair_is_never_written_over_a_newer_version_than_the_drift_saw() {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let remediator = s.remediator("auto");
    let version = || async {
        s.kubectl(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await
        .trim()
        .to_string()
    };
    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    let seen = version().await;
    s.merge_patch("configmap", "settings", r#"{"data":{"color":"green"}}"#)
        .await;
    let drift = |resource_version: String| DriftDetected {
        environment: "dev".into(),
        cluster: "c1".into(),
        revision: "r1".into(),
        object: reference("ConfigMap", "settings"),
        kind: DriftKind::Modified,
        fields: vec![FieldDrift {
            path: "/data/color".into(),
            desired: Some(serde_json::json!("blue")),
            live: Some(serde_json::json!("red")),
        }],
        changed_by: Some("kubectl-patch".into()),
        resource_version: Some(resource_version),
        ignored: vec![],
    };
    // As the drift-watcher would have published it when it saw "red".
    let publish = |d: DriftDetected| {
        let event = Outgoing::builder(&d)
            .cause(d.resource_version.clone().unwrap_or_default())
            .build("configsync://drift-watcher/test")
            .unwrap();
        let publisher = s.log.publisher(std::time::Duration::from_secs(10));
        async move {
            publisher.publish(&event).await.expect("stored");
        }
    };
    publish(drift(seen)).await;
    let failed = s
        .next_event(REMEDIATION, |e| {
            matches!(e.data, EventData::RemediationFailed(_))
        })
        .await;
    let EventData::RemediationFailed(f) = &failed.data else {
        unreachable!()
    };
    assert!(
        f.reason.contains("changed since the drift was seen"),
        "{}",
        f.reason
    );
    let color = s
        .kubectl(&[
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.color}",
        ])
        .await;
    assert_eq!(color.trim(), "green", "nothing stale was written");

    // The drift at the current version is repaired.
    publish(drift(version().await)).await;
    s.wait_for_color("settings", "blue").await;
    s.next_event(REMEDIATION, |e| {
        matches!(e.data, EventData::RemediationSucceeded(_))
    })
    .await;
    remediator.stop().await;
    s.stop().await;
}
