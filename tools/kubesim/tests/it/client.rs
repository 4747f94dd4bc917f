//! kube::Client against kubesim: discovery, dynamic CRUD, server-side apply, watchers.

use crate::common::{WAIT, client, eventually, start, start_with, test_config};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kubesim::Faults;
use serde_json::json;
use std::time::Duration;

fn dynamic(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).expect("valid object")
}

fn widget_crd() -> serde_json::Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                {"name": "v1beta1", "served": true, "storage": false,
                 "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn crd_api(c: &kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    Api::all_with(c.clone(), &ar)
}

#[tokio::test]
async fn discovery_serves_builtins_and_follows_crds() {
    let sim = start().await;
    let c = client(&sim).await;
    let d = tokio::time::timeout(WAIT, Discovery::new(c.clone()).run())
        .await
        .expect("in time")
        .expect("discovery runs");
    for (g, v, k) in [
        ("apps", "v1", "Deployment"),
        ("", "v1", "ConfigMap"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
        ("batch", "v1", "CronJob"),
    ] {
        assert!(
            d.resolve_gvk(&GroupVersionKind::gvk(g, v, k)).is_some(),
            "{k} not discovered"
        );
    }
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .expect("deployments");
    assert_eq!(ar.plural, "deployments");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "deployments/status" || s.plural == "status")
    );

    let agg = tokio::time::timeout(WAIT, Discovery::new(c.clone()).run_aggregated())
        .await
        .expect("in time")
        .expect("aggregated discovery runs");
    let (ar, _) = agg
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "StatefulSet"))
        .expect("statefulsets in aggregated discovery");
    assert_eq!(ar.plural, "statefulsets");
    assert!(
        agg.resolve_gvk(&GroupVersionKind::gvk("", "v1", "Secret"))
            .is_some()
    );

    crd_api(&c)
        .create(&PostParams::default(), &dynamic(widget_crd()))
        .await
        .expect("crd created");
    let crd = eventually("crd established", || async {
        let crd = crd_api(&c).get("widgets.example.com").await.ok()?;
        let established = crd.data["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        established.then_some(crd)
    })
    .await;
    assert_eq!(crd.data["status"]["acceptedNames"]["kind"], "Widget");
    let d = Discovery::new(c.clone())
        .run()
        .await
        .expect("discovery runs");
    for v in ["v1", "v1beta1"] {
        assert!(
            d.resolve_gvk(&GroupVersionKind::gvk("example.com", v, "Widget"))
                .is_some(),
            "Widget {v} not served"
        );
    }
    crd_api(&c)
        .delete("widgets.example.com", &DeleteParams::default())
        .await
        .expect("crd deleted");
    let d = Discovery::new(c.clone())
        .run()
        .await
        .expect("discovery runs");
    assert!(
        d.resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
            .is_none()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dynamic_object_crud_with_optimistic_concurrency() {
    let sim = start().await;
    let c = client(&sim).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let cm = dynamic(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "one", "labels": {"tier": "a"}}, "data": {"k": "v"}}),
    );
    let created = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("created");
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let rv1 = created.metadata.resource_version.clone().expect("rv");
    api.create(&PostParams::default(), &dynamic(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two", "labels": {"tier": "b"}}})))
        .await
        .expect("created");

    let a = api
        .list(&ListParams::default().labels("tier in (a)"))
        .await
        .expect("listed");
    assert_eq!(
        a.items
            .iter()
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec!["one"]
    );
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=two"))
        .await
        .expect("listed");
    assert_eq!(by_name.items.len(), 1);

    let mut changed = api.get("one").await.expect("got");
    changed.data["data"]["k"] = json!("w");
    let replaced = api
        .replace("one", &PostParams::default(), &changed)
        .await
        .expect("replaced");
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    // The stale resourceVersion loses.
    let err = api
        .replace("one", &PostParams::default(), &changed)
        .await
        .expect_err("stale write refused");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );

    let patched = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "y"}})),
        )
        .await
        .expect("patched");
    assert_eq!(patched.data["data"], json!({"k": "w", "x": "y"}));
    api.delete("one", &DeleteParams::default())
        .await
        .expect("deleted");
    let err = api.get("one").await.expect_err("gone");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_dry_run_and_conflicts() {
    let sim = start().await;
    let c = client(&sim).await;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apps", "v1", "Deployment"),
        "deployments",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "api:1"}]}}}});
    let dry = api
        .patch(
            "api",
            &PatchParams::apply("configsync").dry_run(),
            &Patch::Apply(&desired),
        )
        .await
        .expect("dry-run apply");
    assert_eq!(dry.data["spec"]["replicas"], 2);
    assert!(
        api.get_opt("api").await.expect("get works").is_none(),
        "dry run stored nothing"
    );

    let applied = api
        .patch(
            "api",
            &PatchParams::apply("configsync"),
            &Patch::Apply(&desired),
        )
        .await
        .expect("applied");
    let managed = applied.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("configsync"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    assert_eq!(applied.metadata.generation, Some(1));

    // Another manager takes replicas; a dry-run apply must not change it, a real one conflicts.
    api.patch("api", &PatchParams::apply("hpa"), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {"replicas": 5}})))
        .await
        .expect_err("conflicts with configsync");
    api.patch("api", &PatchParams::apply("hpa").force(), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}, "spec": {"replicas": 5}})))
        .await
        .expect("forced");
    let err = api
        .patch(
            "api",
            &PatchParams::apply("configsync"),
            &Patch::Apply(&desired),
        )
        .await
        .expect_err("conflict");
    let kube::Error::Api(status) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("conflict with \"hpa\"")
            && status.message.contains(".spec.replicas"),
        "{}",
        status.message
    );
    let now = api.get("api").await.expect("got");
    assert_eq!(now.data["spec"]["replicas"], 5);
    assert_eq!(now.metadata.generation, Some(2));

    // Dropping a field from the applied configuration removes it.
    let mut fewer = desired.clone();
    fewer["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("object")
        .insert("env".into(), json!([{"name": "A", "value": "1"}]));
    api.patch(
        "api",
        &PatchParams::apply("configsync").force(),
        &Patch::Apply(&fewer),
    )
    .await
    .expect("applied");
    let back = api
        .patch(
            "api",
            &PatchParams::apply("configsync").force(),
            &Patch::Apply(&desired),
        )
        .await
        .expect("applied");
    assert!(
        back.data["spec"]["template"]["spec"]["containers"][0]
            .get("env")
            .is_none(),
        "{}",
        back.data
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn watcher_and_reflector_survive_dropped_watch_connections() {
    let mut config = test_config();
    config.faults = Faults {
        drop_watch_after: Some(Duration::from_millis(100)),
        ..Faults::default()
    };
    let sim = start_with(config).await;
    let c = client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    let driver = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    tokio::time::timeout(WAIT, reader.wait_until_ready())
        .await
        .expect("ready in time")
        .expect("writer alive");
    for i in 0..6 {
        // Each write lands after at least one more connection was dropped under the watcher.
        let drops = sim.dropped_watches();
        eventually("a watch connection dropped", || async {
            (sim.dropped_watches() > drops).then_some(())
        })
        .await;
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}}))
                .expect("configmap");
        api.create(&PostParams::default(), &cm)
            .await
            .expect("created");
    }
    eventually("reflector holds every configmap", || async {
        (reader.state().len() == 6).then_some(())
    })
    .await;
    api.delete("cm-0", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually("reflector sees the delete", || async {
        (reader.state().len() == 5).then_some(())
    })
    .await;
    driver.abort();
    sim.shutdown().await;
}

#[tokio::test]
async fn watcher_with_streaming_list_gets_initial_events() {
    let sim = start().await;
    let c = client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for i in 0..3 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("s-{i}")}}))
            .expect("configmap");
        api.create(&PostParams::default(), &cm)
            .await
            .expect("created");
    }
    let stream = watcher(api.clone(), watcher::Config::default().streaming_lists());
    futures::pin_mut!(stream);
    let mut initial = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = stream.next().await {
            match ev.expect("no watch error") {
                watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap_or_default()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
    })
    .await
    .expect("initial events end with the initial-events-end bookmark");
    initial.sort();
    assert_eq!(initial, vec!["s-0", "s-1", "s-2"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    let sim = start().await;
    let c = client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "m", "labels": {"a": "b"}}, "data": {"k": "v"}}),
    )
    .expect("configmap");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("created");
    let one = api.get_metadata("m").await.expect("metadata");
    assert_eq!(
        one.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(
        one.metadata
            .labels
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("b")
    );
    let all = api
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(all.items.len(), 1);
    // An Api of PartialObjectMeta makes metadata-only list and watch requests.
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(c.clone(), "default");
    let stream = watcher(meta_api, watcher::Config::default()).applied_objects();
    futures::pin_mut!(stream);
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("in time")
        .expect("event")
        .expect("ok");
    assert_eq!(first.metadata.name.as_deref(), Some("m"));
    assert_eq!(
        first.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    sim.shutdown().await;
}
