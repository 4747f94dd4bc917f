//! Object semantics over the API: namespaces, generateName, finalizers, generation,
//! paging, watch resume and expiry, bookmarks, patches, status, dry run, faults.

use crate::common::{WAIT, client, eventually, raw, start, start_with, test_config};
use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kubesim::Faults;
use serde_json::json;
use std::time::Duration;

fn api(
    c: &kube::Client,
    g: &str,
    v: &str,
    k: &str,
    plural: &str,
    ns: Option<&str>,
) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural);
    match ns {
        Some(ns) => Api::namespaced_with(c.clone(), ns, &ar),
        None => Api::all_with(c.clone(), &ar),
    }
}

fn obj(v: serde_json::Value) -> DynamicObject {
    serde_json::from_value(v).expect("valid object")
}

fn cm(name: &str) -> DynamicObject {
    obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}))
}

fn status_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test]
async fn namespaces_gate_creation_and_delete_their_objects() {
    let sim = start().await;
    let c = client(&sim).await;
    let e = api(&c, "", "v1", "ConfigMap", "configmaps", Some("nowhere"))
        .create(&PostParams::default(), &cm("a"))
        .await
        .expect_err("no namespace");
    assert_eq!(status_code(&e), 404);
    let nss = api(&c, "", "v1", "Namespace", "namespaces", None);
    for ns in ["default", "kube-system", "kube-public"] {
        assert_eq!(
            nss.get(ns).await.expect("exists").data["status"]["phase"],
            "Active"
        );
    }
    nss.create(
        &PostParams::default(),
        &obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})),
    )
    .await
    .expect("created");
    let in_team = api(&c, "", "v1", "ConfigMap", "configmaps", Some("team"));
    in_team
        .create(&PostParams::default(), &cm("a"))
        .await
        .expect("created");
    nss.delete("team", &DeleteParams::default())
        .await
        .expect("deleted");
    assert_eq!(
        status_code(&in_team.get("a").await.expect_err("gone with its namespace")),
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn generate_name_generation_and_finalizers() {
    let sim = start().await;
    let c = client(&sim).await;
    let cms = api(&c, "", "v1", "ConfigMap", "configmaps", Some("default"));
    let g = cms.create(&PostParams::default(), &obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}))).await.expect("created");
    let name = g.metadata.name.clone().expect("named");
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let deps = api(
        &c,
        "apps",
        "v1",
        "Deployment",
        "deployments",
        Some("default"),
    );
    let d = obj(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "finalizers": ["example.com/hold"]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    );
    deps.create(&PostParams::default(), &d)
        .await
        .expect("created");
    let labelled = deps
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("patched");
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    let scaled = deps
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("patched");
    assert_eq!(scaled.metadata.generation, Some(2));

    deps.delete("d", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let terminating = deps.get("d").await.expect("still there");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    deps.patch(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("finalizer removed");
    assert_eq!(status_code(&deps.get("d").await.expect_err("gone")), 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let sim = start().await;
    let c = client(&sim).await;
    let cms = api(&c, "", "v1", "ConfigMap", "configmaps", Some("default"));
    for i in 0..7 {
        cms.create(&PostParams::default(), &cm(&format!("p{i}")))
            .await
            .expect("created");
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = cms.list(&lp).await.expect("page");
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().filter_map(|o| o.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    sim.shutdown().await;
}

#[tokio::test]
async fn watch_resumes_expires_and_bookmarks() {
    let mut config = test_config();
    config.watch_history = 5;
    config.bookmark_interval = Duration::from_millis(100);
    let sim = start_with(config).await;
    let c = client(&sim).await;
    let cms = api(&c, "", "v1", "ConfigMap", "configmaps", Some("default"));
    let first = cms
        .create(&PostParams::default(), &cm("w0"))
        .await
        .expect("created");
    let rv0 = first.metadata.resource_version.clone().expect("rv");
    let second = cms
        .create(&PostParams::default(), &cm("w1"))
        .await
        .expect("created");
    let rv1 = second.metadata.resource_version.clone().expect("rv");

    // Resuming from w0's version yields exactly w1.
    let stream = cms
        .watch(&WatchParams::default().timeout(2), &rv0)
        .await
        .expect("watch");
    futures::pin_mut!(stream);
    let ev = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .expect("in time")
        .expect("event")
        .expect("not ended");
    assert!(
        matches!(&ev, WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("w1")),
        "{ev:?}"
    );

    // Bookmarks come with the latest resourceVersion.
    let stream = cms
        .watch(&WatchParams::default().timeout(5), &rv1)
        .await
        .expect("watch");
    futures::pin_mut!(stream);
    let ev = tokio::time::timeout(WAIT, stream.try_next())
        .await
        .expect("in time")
        .expect("event")
        .expect("not ended");
    assert!(
        matches!(&ev, WatchEvent::Bookmark(b) if b.metadata.resource_version == rv1),
        "{ev:?}"
    );

    // Push w0's version out of the 5-event history: 410 Gone.
    for i in 2..10 {
        cms.create(&PostParams::default(), &cm(&format!("w{i}")))
            .await
            .expect("created");
    }
    let stream = cms
        .watch(&WatchParams::default().timeout(2), &rv0)
        .await
        .expect("watch");
    let events: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("in time");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(WatchEvent::Error(s)) if s.code == 410)
                || matches!(e, Err(kube::Error::Api(s)) if s.code == 410)),
        "{events:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn strategic_merge_and_json_patches() {
    let sim = start().await;
    let c = client(&sim).await;
    let deps = api(
        &c,
        "apps",
        "v1",
        "Deployment",
        "deployments",
        Some("default"),
    );
    let d = obj(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "smp"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
            "volumes": [{"name": "v1", "emptyDir": {}}],
            "containers": [
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}],
                 "volumeMounts": [{"name": "v1", "mountPath": "/a"}]},
                {"name": "side", "image": "side:1"}]}}}}),
    );
    deps.create(&PostParams::default(), &d)
        .await
        .expect("created");
    let p = json!({"spec": {"template": {"spec": {
        "volumes": [{"name": "v2", "emptyDir": {}}],
        "containers": [{"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}], "ports": [{"containerPort": 443}],
                        "volumeMounts": [{"name": "v2", "mountPath": "/b"}]},
                       {"name": "side", "$patch": "delete"}]}}}});
    let out = deps
        .patch("smp", &PatchParams::default(), &Patch::Strategic(p))
        .await
        .expect("patched");
    let spec = &out.data["spec"]["template"]["spec"];
    assert_eq!(spec["containers"].as_array().map(Vec::len), Some(1));
    assert_eq!(spec["containers"][0]["image"], "app:2");
    assert_eq!(
        spec["containers"][0]["env"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        spec["containers"][0]["ports"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(spec["volumes"].as_array().map(Vec::len), Some(2));

    let path = "/apis/apps/v1/namespaces/default/deployments/smp";
    let jp = br#"[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:3"}]"#;
    let out = raw(&sim, "PATCH", path, Some("application/json-patch+json"), jp).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(
        out.json()["spec"]["template"]["spec"]["containers"][0]["image"],
        "app:3"
    );
    let bad = br#"[{"op": "test", "path": "/spec/replicas", "value": 99}]"#;
    let out = raw(
        &sim,
        "PATCH",
        path,
        Some("application/json-patch+json"),
        bad,
    )
    .await;
    assert_eq!(out.status, 422, "{}", out.body);
    sim.shutdown().await;
}

#[tokio::test]
async fn workloads_roll_out_or_never_become_ready() {
    let sim = start().await;
    let c = client(&sim).await;
    let spec = |name: &str, stuck: bool| {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": 3, "serviceName": name, "selector": {"matchLabels": {"a": name}},
                     "template": {"metadata": {"labels": {"a": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        if stuck {
            d["metadata"]["annotations"] = json!({"kubesim.configsync.io/never-ready": "true"});
        }
        obj(d)
    };
    let sts = api(
        &c,
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        Some("default"),
    );
    sts.create(&PostParams::default(), &spec("ok", false))
        .await
        .expect("created");
    sts.create(&PostParams::default(), &spec("stuck", true))
        .await
        .expect("created");
    let ready = eventually("statefulset ready", || async {
        let s = sts.get("ok").await.ok()?;
        (s.data["status"]["readyReplicas"] == 3).then_some(s)
    })
    .await;
    assert_eq!(ready.data["status"]["observedGeneration"], 1);
    let stuck = eventually("stuck statefulset observed", || async {
        let s = sts.get("stuck").await.ok()?;
        (s.data["status"]["observedGeneration"] == 1).then_some(s)
    })
    .await;
    assert_eq!(stuck.data["status"]["readyReplicas"], 0);

    // Status is a subresource: a main-resource write cannot change it, /status can.
    let mut d = sts.get("ok").await.expect("got");
    d.data["status"]["readyReplicas"] = json!(0);
    let after = sts
        .replace("ok", &PostParams::default(), &d)
        .await
        .expect("replaced");
    assert_eq!(after.data["status"]["readyReplicas"], 3);
    let s = sts
        .patch_status(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 1}})),
        )
        .await
        .expect("status patched");
    assert_eq!(s.data["status"]["readyReplicas"], 1);

    let jobs = api(&c, "batch", "v1", "Job", "jobs", Some("default"));
    jobs.create(&PostParams::default(), &obj(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}})))
        .await
        .expect("created");
    eventually("job complete", || async {
        let j = jobs.get("j").await.ok()?;
        (j.data["status"]["succeeded"] == 1).then_some(())
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let sim = start().await;
    let c = client(&sim).await;
    let cms = api(&c, "", "v1", "ConfigMap", "configmaps", Some("default"));
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    cms.create(&dry, &cm("d")).await.expect("dry create");
    assert!(cms.get_opt("d").await.expect("get").is_none());
    let real = cms
        .create(&PostParams::default(), &cm("d"))
        .await
        .expect("created");
    let patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let would = cms
        .patch("d", &patch, &Patch::Merge(json!({"data": {"a": "b"}})))
        .await
        .expect("dry patch");
    assert_eq!(would.data["data"]["a"], "b");
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("d", &dp).await.expect("dry delete");
    let now = cms.get("d").await.expect("still there");
    assert_eq!(
        now.metadata.resource_version,
        real.metadata.resource_version
    );
    assert!(now.data.get("data").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_inject_latency_and_write_errors() {
    let mut config = test_config();
    config.faults = Faults {
        latency: Duration::from_millis(100),
        write_error_rate: 1.0,
        drop_watch_after: None,
    };
    let sim = start_with(config).await;
    let started = tokio::time::Instant::now();
    let r = raw(
        &sim,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(100));
    let r = raw(
        &sim,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some("application/json"),
        br#"{"metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["reason"], "InternalError");
    sim.shutdown().await;
}

#[tokio::test]
async fn custom_resources_follow_their_crd() {
    let sim = start().await;
    let c = client(&sim).await;
    let crds = api(
        &c,
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        None,
    );
    let crd = |kind: &str, plural: &str, status: bool| {
        let mut v = json!({"name": "v1", "served": true, "storage": true});
        if status {
            v["subresources"] = json!({"status": {}});
        }
        obj(
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": plural, "kind": kind}, "versions": [v]}}),
        )
    };
    crds.create(&PostParams::default(), &crd("Gadget", "gadgets", true))
        .await
        .expect("crd");
    crds.create(&PostParams::default(), &crd("Plain", "plains", false))
        .await
        .expect("crd");
    let e = crds
        .create(&PostParams::default(), &crd("Gadget", "gadgets", true))
        .await
        .expect_err("exists");
    assert_eq!(status_code(&e), 409);

    let gadgets = api(
        &c,
        "example.com",
        "v1",
        "Gadget",
        "gadgets",
        Some("default"),
    );
    let g = gadgets
        .create(&PostParams::default(), &obj(json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 1}, "status": {"ok": true}})))
        .await
        .expect("created");
    assert!(
        g.data.get("status").is_none(),
        "status is dropped on create with a status subresource"
    );
    let g = gadgets
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ok": true}, "spec": {"size": 2}})),
        )
        .await
        .expect("patched");
    assert!(g.data.get("status").is_none());
    assert_eq!(g.metadata.generation, Some(2));
    let g = gadgets
        .patch_status(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ok": true}})),
        )
        .await
        .expect("status patched");
    assert_eq!(g.data["status"]["ok"], true);
    assert_eq!(
        g.metadata.generation,
        Some(2),
        "status writes keep the generation"
    );
    let r = raw(
        &sim,
        "PATCH",
        "/apis/example.com/v1/namespaces/default/gadgets/g",
        Some("application/strategic-merge-patch+json"),
        b"{}",
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);

    let plains = api(&c, "example.com", "v1", "Plain", "plains", Some("default"));
    let p = plains
        .create(&PostParams::default(), &obj(json!({"apiVersion": "example.com/v1", "kind": "Plain", "metadata": {"name": "p"}, "status": {"phase": "x"}})))
        .await
        .expect("created");
    assert_eq!(
        p.data["status"]["phase"], "x",
        "without the subresource, status is ordinary content"
    );
    let r = raw(
        &sim,
        "GET",
        "/apis/example.com/v1/namespaces/default/plains/p/status",
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 404);

    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .expect("crd deleted");
    let r = raw(
        &sim,
        "GET",
        "/apis/example.com/v1/namespaces/default/gadgets",
        None,
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "resource no longer served");
    sim.shutdown().await;
}

#[tokio::test]
async fn apply_conflict_status_names_manager_and_fields() {
    let sim = start().await;
    let path = "/api/v1/namespaces/default/configmaps/c";
    let body = |v: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c"}},"data":{{"k":"{v}"}}}}"#
        )
    };
    let ct = Some("application/apply-patch+yaml");
    let r = raw(
        &sim,
        "PATCH",
        &format!("{path}?fieldManager=first"),
        ct,
        body("1").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = raw(
        &sim,
        "PATCH",
        &format!("{path}?fieldManager=second"),
        ct,
        body("2").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let s = r.json();
    assert_eq!(s["reason"], "Conflict");
    assert_eq!(
        s["message"],
        "Apply failed with 1 conflict: conflict with \"first\" using v1: .data.k"
    );
    assert_eq!(s["details"]["causes"][0]["type"], "FieldManagerConflict");
    assert_eq!(s["details"]["causes"][0]["field"], ".data.k");
    let r = raw(
        &sim,
        "PATCH",
        &format!("{path}?fieldManager=second&force=true"),
        ct,
        body("2").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let managed = &r.json()["metadata"]["managedFields"];
    assert_eq!(
        managed.as_array().map(Vec::len),
        Some(1),
        "first lost its only field: {managed}"
    );
    assert_eq!(managed[0]["manager"], "second");
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_collection_by_label() {
    let sim = start().await;
    let c = client(&sim).await;
    let cms = api(&c, "", "v1", "ConfigMap", "configmaps", Some("default"));
    for (name, tier) in [("a", "x"), ("b", "x"), ("c", "y")] {
        cms.create(
            &PostParams::default(),
            &obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"tier": tier}}})),
        )
        .await
        .expect("created");
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=x"),
    )
    .await
    .expect("collection deleted");
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .expect("listed")
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    assert_eq!(left, vec!["c"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_is_not_held_by_open_watches() {
    let sim = start().await;
    let mut idle = tokio::net::TcpStream::connect(sim.addr())
        .await
        .expect("connects");
    tokio::io::AsyncWriteExt::write_all(
        &mut idle,
        b"GET /api/v1/namespaces/default/configmaps?watch=true HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .expect("writes");
    let c = client(&sim).await;
    let cms = api(&c, "", "v1", "ConfigMap", "configmaps", Some("default"));
    let _stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watch open");
    tokio::time::timeout(WAIT, sim.shutdown())
        .await
        .expect("shutdown finishes with watches open");
    drop(idle);
}
