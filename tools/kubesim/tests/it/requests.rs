//! `KubeSim::requests()`: every resource request counted by verb, dry runs apart, so a test
//! can prove that a run made no writes.

use crate::common::{client, raw, start};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kubesim::{DryRunCounts, RequestCounts};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"a": "1"}}))
        .expect("configmap")
}

#[tokio::test]
async fn requests_are_counted_by_verb_and_dry_runs_are_not_writes() {
    let sim = start().await;
    assert_eq!(sim.requests(), RequestCounts::default());
    let c = client(&sim).await;
    let cms: Api<ConfigMap> = Api::namespaced(c, "default");
    let dry_post = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_delete = DeleteParams {
        dry_run: true,
        ..Default::default()
    };

    // Only dry runs and reads: the proof of "zero writes" a test wants.
    cms.create(&dry_post, &cm("c")).await.expect("dry create");
    cms.list(&ListParams::default()).await.expect("list");
    assert_eq!(cms.get_opt("c").await.expect("get"), None);
    let after_dry = sim.requests();
    assert_eq!(after_dry.writes(), 0, "{after_dry:?}");
    assert_eq!(after_dry.dry_run.create, 1);
    assert_eq!((after_dry.list, after_dry.get), (1, 1));

    cms.create(&PostParams::default(), &cm("c"))
        .await
        .expect("create");
    cms.patch("c", &dry_patch, &Patch::Merge(json!({"data": {"a": "2"}})))
        .await
        .expect("dry patch");
    cms.patch(
        "c",
        &PatchParams::apply("t").force().dry_run(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "3"}})),
    )
    .await
    .expect("dry apply");
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "4"}})),
    )
    .await
    .expect("patch");
    let current = cms.get("c").await.expect("get");
    cms.replace("c", &dry_post, &current)
        .await
        .expect("dry replace");
    cms.replace("c", &PostParams::default(), &current)
        .await
        .expect("replace");
    cms.delete("c", &dry_delete).await.expect("dry delete");
    // DeleteOptions in the body alone can ask for the dry run.
    let body_only = raw(
        &sim,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/c",
        Some("application/json"),
        br#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#,
    )
    .await;
    assert_eq!(body_only.status, 200, "{}", body_only.body);
    // A refused write is still a write request.
    let missing = cms
        .patch("nothing", &PatchParams::default(), &Patch::Merge(json!({})))
        .await;
    assert!(missing.is_err());
    let mut events = cms
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .expect("watch")
        .boxed();
    while let Some(e) = events.try_next().await.expect("watch event") {
        assert!(!matches!(e, WatchEvent::Error(_)), "{e:?}");
    }
    cms.delete("c", &DeleteParams::default())
        .await
        .expect("delete");

    assert_eq!(
        sim.requests(),
        RequestCounts {
            get: 2,
            list: 1,
            watch: 1,
            create: 1,
            update: 1,
            patch: 2,
            delete: 1,
            dry_run: DryRunCounts {
                create: 1,
                update: 1,
                patch: 2,
                delete: 2,
            },
        }
    );
    assert_eq!(sim.requests().writes(), 5);
    assert_eq!(sim.requests().dry_runs(), 6);
    sim.shutdown().await;
}
