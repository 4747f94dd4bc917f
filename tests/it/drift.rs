//! Drift made with kubectl: detected with the manager's name, resolved when restored, deletion,
//! Secret redaction, and no second report after a restart.

use configsync_core::event::{DriftDetected, DriftKind, EventData, Received};
use serde_json::json;

use crate::chain::{Setup, configmap, reference, secret};

const DETECTED: &str = "configsync.evt.dev.c1.drift.detected.v1";
const RESOLVED: &str = "configsync.evt.dev.c1.drift.resolved.v1";

fn detected(e: &Received) -> &DriftDetected {
    match &e.data {
        EventData::DriftDetected(d) => d,
        other => panic!("expected a drift, got {other:?}"),
    }
}

#[tokio::test]
async fn a_kubectl_change_is_reported_with_its_manager_then_resolved_and_a_deletion_is_reported() {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let watcher = s.drift_watcher();
    watcher.ready().await;

    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    let event = s.next_event(DETECTED, |_| true).await;
    let drift = detected(&event);
    assert_eq!(drift.object, reference("ConfigMap", "settings"));
    assert_eq!(drift.kind, DriftKind::Modified);
    assert_eq!(drift.revision, "r1");
    assert_eq!(drift.fields.len(), 1, "{:?}", drift.fields);
    assert_eq!(drift.fields[0].path, "/data/color");
    assert_eq!(drift.fields[0].desired, Some(json!("blue")));
    assert_eq!(drift.fields[0].live, Some(json!("red")));
    assert_eq!(drift.changed_by.as_deref(), Some("kubectl-patch"));
    assert!(drift.resource_version.is_some());

    s.merge_patch("configmap", "settings", r#"{"data":{"color":"blue"}}"#)
        .await;
    let resolved = s.next_event(RESOLVED, |_| true).await;
    let EventData::DriftResolved(r) = &resolved.data else {
        unreachable!()
    };
    assert_eq!(r.object, reference("ConfigMap", "settings"));

    s.kubectl(&["delete", "configmap", "settings"]).await;
    let deleted = s
        .next_event(DETECTED, |e| detected(e).kind == DriftKind::Deleted)
        .await;
    assert_eq!(
        detected(&deleted).object,
        reference("ConfigMap", "settings")
    );
    assert!(detected(&deleted).fields.is_empty());
    watcher.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn secret_values_never_appear_in_drift_events() {
    let s = Setup::start().await;
    // "hunter2" and "other".
    s.apply("r1", vec![secret("creds", "aHVudGVyMg==")]).await;
    let watcher = s.drift_watcher();
    s.merge_patch("secret", "creds", r#"{"data":{"password":"b3RoZXI="}}"#)
        .await;
    let event = s.next_event(DETECTED, |_| true).await;
    let drift = detected(&event);
    assert_eq!(drift.object, reference("Secret", "creds"));
    assert_eq!(drift.fields[0].path, "/data/password");
    assert_eq!(drift.fields[0].desired, Some(json!("<redacted>")));
    assert_eq!(drift.fields[0].live, Some(json!("<redacted>")));
    assert_eq!(drift.changed_by.as_deref(), Some("kubectl-patch"));
    let raw = event.to_json_line().to_string();
    assert!(
        !raw.contains("aHVudGVyMg==") && !raw.contains("b3RoZXI="),
        "{raw}"
    );
    watcher.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn a_restart_does_not_report_a_drift_already_reported_and_sees_new_ones() {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let watcher = s.drift_watcher();
    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    s.next_event(DETECTED, |_| true).await;
    watcher.stop().await;

    let again = s.drift_watcher();
    // Ready means every target was compared once: the drift was seen again by now.
    again.ready().await;
    assert_eq!(
        s.events(DETECTED).await.len(),
        1,
        "the same drift was reported twice"
    );

    s.merge_patch("configmap", "settings", r#"{"data":{"color":"green"}}"#)
        .await;
    let newer = s
        .next_event(DETECTED, |e| {
            detected(e).fields[0].live == Some(json!("green"))
        })
        .await;
    assert_eq!(
        detected(&newer).changed_by.as_deref(),
        Some("kubectl-patch")
    );
    assert_eq!(s.events(DETECTED).await.len(), 2);
    again.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn a_new_revision_applied_by_configsync_is_not_drift() {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let watcher = s.drift_watcher();
    watcher.ready().await;
    s.apply("r2", vec![configmap("settings", "green")]).await;
    // A later, real drift is reported against r2: nothing was reported in between.
    s.merge_patch("configmap", "settings", r#"{"data":{"size":"xl"}}"#)
        .await;
    let event = s.next_event(DETECTED, |_| true).await;
    let drift = detected(&event);
    assert_eq!(drift.revision, "r2");
    assert_eq!(drift.fields[0].path, "/data/size");
    assert_eq!(s.events(DETECTED).await.len(), 1);
    watcher.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn removing_the_managed_by_label_is_a_drift_not_a_deletion() {
    let s = Setup::start().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    let watcher = s.drift_watcher();
    watcher.ready().await;
    s.kubectl(&[
        "label",
        "configmap",
        "settings",
        "app.kubernetes.io/managed-by-",
    ])
    .await;
    let event = s.next_event(DETECTED, |_| true).await;
    let drift = detected(&event);
    assert_eq!(drift.kind, DriftKind::Modified);
    assert_eq!(drift.fields.len(), 1, "{:?}", drift.fields);
    assert_eq!(
        drift.fields[0].path,
        "/metadata/labels/app.kubernetes.io~1managed-by"
    );
    assert_eq!(drift.fields[0].desired, Some(json!("configsync")));
    assert_eq!(drift.fields[0].live, None);
    // Out of the watch's label selector, the object is still compared by the resync.
    s.kubectl(&[
        "label",
        "configmap",
        "settings",
        "app.kubernetes.io/managed-by=configsync",
    ])
    .await;
    s.next_event(RESOLVED, |_| true).await;
    assert_eq!(s.events(DETECTED).await.len(), 1);
    watcher.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn a_target_first_applied_after_the_start_is_watched() {
    let s = Setup::start().await;
    let watcher = s.drift_watcher();
    // Nothing applied yet: nothing to compare, and ready.
    watcher.ready().await;
    s.apply("r1", vec![configmap("settings", "blue")]).await;
    // The apply reaches the drift-watcher through its consumer; a change made before it knows
    // the desired state is compared when it learns it.
    s.merge_patch("configmap", "settings", r#"{"data":{"color":"red"}}"#)
        .await;
    let event = s.next_event(DETECTED, |_| true).await;
    assert_eq!(detected(&event).revision, "r1");
    assert_eq!(detected(&event).fields[0].path, "/data/color");
    watcher.stop().await;
    s.stop().await;
}
