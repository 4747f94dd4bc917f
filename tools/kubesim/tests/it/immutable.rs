//! Immutable fields through kube::Client and kubectl: update, patch and server-side apply
//! of a changed immutable field get the API server's 422, dry runs included, and store
//! nothing.

use crate::common::{Kubectl, client, path_str, start};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

fn api(c: &kube::Client, group: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    // Every kind here is served at v1 of its group.
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural);
    Api::namespaced_with(c.clone(), "default", &ar)
}

fn workload(kind: &str, name: &str, app: &str) -> Value {
    let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": {"labels": {"app": app}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}}})
}

/// The 422 of a refused write, with its message.
fn invalid(result: Result<DynamicObject, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{}", status.message);
            assert_eq!(status.reason, "Invalid", "{}", status.message);
            status.message
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}

fn rv(o: &DynamicObject) -> String {
    o.metadata.resource_version.clone().unwrap_or_default()
}

const WEB2_SELECTOR: &str = r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#;

#[tokio::test]
async fn deployment_selector_is_immutable_on_apply_patch_update_and_dry_run() {
    let sim = start().await;
    let c = client(&sim).await;
    let deployments = api(&c, "apps", "Deployment", "deployments");
    let apply = PatchParams::apply("configsync");
    let created = deployments
        .patch(
            "web",
            &apply,
            &Patch::Apply(workload("Deployment", "web", "web")),
        )
        .await
        .expect("created");
    let want = format!(r#"Deployment.apps "web" is invalid: {WEB2_SELECTOR}"#);

    // Server-side apply, real and dry run.
    let changed = workload("Deployment", "web", "web2");
    let msg = invalid(
        deployments
            .patch("web", &apply, &Patch::Apply(&changed))
            .await,
    );
    assert_eq!(msg, want);
    let msg = invalid(
        deployments
            .patch("web", &apply.clone().dry_run(), &Patch::Apply(&changed))
            .await,
    );
    assert_eq!(msg, want);
    // Merge patch, and a forced apply: force settles ownership, not validity.
    let selector_patch = json!({"spec": {"selector": {"matchLabels": {"app": "web2"}}}});
    let msg = invalid(
        deployments
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(&selector_patch),
            )
            .await,
    );
    assert_eq!(msg, want);
    invalid(
        deployments
            .patch("web", &apply.clone().force(), &Patch::Apply(&changed))
            .await,
    );
    // Update (PUT) of the whole object.
    let mut replaced = deployments.get("web").await.expect("got");
    replaced.data["spec"]["selector"] = json!({"matchLabels": {"app": "web2"}});
    let msg = invalid(
        deployments
            .replace("web", &PostParams::default(), &replaced)
            .await,
    );
    assert_eq!(msg, want);

    // Nothing was stored by any of them.
    let now = deployments.get("web").await.expect("got");
    assert_eq!(rv(&now), rv(&created));
    assert_eq!(now.data["spec"]["selector"]["matchLabels"]["app"], "web");
    // What may change still does.
    let scaled = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("replicas may change");
    assert_eq!(scaled.data["spec"]["replicas"], 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn workload_selectors_templates_and_statefulset_specs() {
    let sim = start().await;
    let c = client(&sim).await;
    let apply = PatchParams::apply("configsync");
    for (group, kind, plural) in [
        ("apps", "DaemonSet", "daemonsets"),
        ("apps", "ReplicaSet", "replicasets"),
        ("batch", "Job", "jobs"),
    ] {
        let a = api(&c, group, kind, plural);
        a.patch("w", &apply, &Patch::Apply(workload(kind, "w", "web")))
            .await
            .unwrap_or_else(|e| panic!("{kind} created: {e}"));
        let msg = invalid(
            a.patch("w", &apply, &Patch::Apply(workload(kind, "w", "web2")))
                .await,
        );
        assert!(
            msg.starts_with(&format!(r#"{kind}.{group} "w" is invalid: "#))
                && msg.contains(WEB2_SELECTOR),
            "{msg}"
        );
    }

    // A Job's pod template is fixed too.
    let jobs = api(&c, "batch", "Job", "jobs");
    let mut new_image = workload("Job", "w", "web");
    new_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    let msg = invalid(jobs.patch("w", &apply, &Patch::Apply(&new_image)).await);
    assert!(
        msg.starts_with(r#"Job.batch "w" is invalid: spec.template: Invalid value: "#)
            && msg.ends_with(": field is immutable"),
        "{msg}"
    );

    // A StatefulSet may change replicas and its template, nothing else of its spec.
    let sts = api(&c, "apps", "StatefulSet", "statefulsets");
    let mut db = workload("StatefulSet", "db", "db");
    db["spec"]["serviceName"] = json!("db");
    sts.patch("db", &apply, &Patch::Apply(&db))
        .await
        .expect("created");
    db["spec"]["replicas"] = json!(3);
    db["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    sts.patch("db", &apply, &Patch::Apply(&db))
        .await
        .expect("replicas and template may change");
    db["spec"]["serviceName"] = json!("other");
    let msg = invalid(sts.patch("db", &apply, &Patch::Apply(&db)).await);
    assert_eq!(
        msg,
        "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn immutable_configmaps_and_secrets_refuse_data_changes() {
    let sim = start().await;
    let c = client(&sim).await;
    let apply = PatchParams::apply("configsync");
    let cms = api(&c, "", "ConfigMap", "configmaps");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"},
        "immutable": true, "data": {"a": "1"}});
    let created = cms
        .patch("frozen", &apply, &Patch::Apply(&cm))
        .await
        .expect("created");
    let mut changed = cm.clone();
    changed["data"]["a"] = json!("2");
    for params in [apply.clone(), apply.clone().dry_run()] {
        let msg = invalid(cms.patch("frozen", &params, &Patch::Apply(&changed)).await);
        assert_eq!(
            msg,
            "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
    }
    let msg = invalid(
        cms.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"immutable": false})),
        )
        .await,
    );
    assert_eq!(
        msg,
        "ConfigMap \"frozen\" is invalid: immutable: Forbidden: field is immutable when `immutable` is set"
    );
    // Labels are not frozen.
    let labelled = cms
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("labels may change");
    assert_ne!(rv(&labelled), rv(&created));
    assert_eq!(labelled.data["data"]["a"], "1");

    let secrets = api(&c, "", "Secret", "secrets");
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "immutable": true, "data": {"k": "MQ=="}});
    secrets
        .patch("s", &apply, &Patch::Apply(&secret))
        .await
        .expect("created");
    let msg = invalid(
        secrets
            .patch(
                "s",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"k": "2"}})),
            )
            .await,
    );
    assert_eq!(
        msg,
        "Secret \"s\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh (tools/test.sh does)"
)]
async fn kubectl_server_side_apply_of_a_changed_selector_prints_the_422() {
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let yaml = |app: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n    spec:\n      containers: [{{name: c, image: nginx}}]\n"
        )
    };
    let first = k.write("web.yaml", &yaml("web"));
    k.ok(&["apply", "--server-side", "-f", path_str(&first)])
        .await;
    let changed = k.write("web2.yaml", &yaml("web2"));
    for extra in [None, Some("--dry-run=server")] {
        let mut args = vec!["apply", "--server-side", "-f", path_str(&changed)];
        args.extend(extra);
        let out = k.run(&args).await;
        assert!(!out.ok, "{extra:?} was refused: {}", out.stdout);
        assert!(
            out.stderr.contains(r#"Deployment "web" is invalid"#)
                && out.stderr.contains(WEB2_SELECTOR),
            "{extra:?}: {}",
            out.stderr
        );
    }
    let live = k.json(&["get", "deployment", "web", "-o", "json"]).await;
    assert_eq!(live["spec"]["selector"]["matchLabels"]["app"], "web");
    sim.shutdown().await;
}
