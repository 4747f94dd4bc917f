//! `Config::rbac`: requests authorized by roles as Kubernetes does (the bearer token is the
//! user), refused with a `Forbidden` Status, and recorded.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kubesim::rbac::Rbac;
use serde_json::json;

use crate::common::{CONTEXT, start_with, test_config};

const ROLES: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: configmap-applier}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: applier}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: configmap-applier}
subjects:
  - {kind: ServiceAccount, name: applier, namespace: ops}
"#;

const APPLIER: &str = "system:serviceaccount:ops:applier";

async fn client_as(sim: &kubesim::KubeSim, token: &str) -> kube::Client {
    let kubeconfig =
        Kubeconfig::from_yaml(&sim.kubeconfig_yaml_as(CONTEXT, token)).expect("kubeconfig parses");
    let options = KubeConfigOptions {
        context: Some(CONTEXT.into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig loads");
    kube::Client::try_from(config).expect("client builds")
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {
            assert_eq!(status.reason, "Forbidden");
            status.message
        }
        other => panic!("expected 403 Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn roles_decide_what_each_token_may_do_and_applying_a_new_object_needs_create() {
    let mut config = test_config();
    config.rbac = Some(Arc::new(
        Rbac::from_yaml(ROLES)
            .expect("roles parse")
            .superuser("root"),
    ));
    let sim = start_with(config).await;
    let apply = |name: &str| {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}});
        (PatchParams::apply("configsync").force(), Patch::Apply(cm))
    };
    let applier: Api<ConfigMap> = Api::namespaced(client_as(&sim, APPLIER).await, "default");

    // Patch is granted, create is not: an apply that would create the object is refused.
    let (params, patch) = apply("settings");
    let message = forbidden(applier.patch("settings", &params, &patch).await);
    assert_eq!(
        message,
        "configmaps \"settings\" is forbidden: User \"system:serviceaccount:ops:applier\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    // Once it exists (made by the superuser), the same apply is a patch, and allowed.
    let root: Api<ConfigMap> = Api::namespaced(client_as(&sim, "root").await, "default");
    root.patch("settings", &params, &patch)
        .await
        .expect("root may do anything");
    applier
        .patch("settings", &params, &patch)
        .await
        .expect("patching an existing object is granted");
    assert!(applier.get("settings").await.is_ok());
    forbidden(applier.list(&ListParams::default()).await);
    forbidden(applier.delete("settings", &DeleteParams::default()).await);
    // No token: anonymous, allowed nothing; another ServiceAccount: nothing either.
    let anonymous: Api<ConfigMap> = Api::namespaced(crate::common::client(&sim).await, "default");
    forbidden(anonymous.get("settings").await);
    let other: Api<ConfigMap> = Api::namespaced(
        client_as(&sim, "system:serviceaccount:ops:auditor").await,
        "default",
    );
    forbidden(other.get("settings").await);

    // Every decision is recorded.
    let access = sim.access();
    let decided = |user: &str, verb: &str, allowed: bool| {
        access.keys().any(|a| {
            a.user == user && a.verb == verb && a.allowed == allowed && a.resource == "configmaps"
        })
    };
    assert!(decided(APPLIER, "create", false));
    assert!(decided(APPLIER, "patch", true));
    assert!(decided(APPLIER, "get", true));
    assert!(decided(APPLIER, "list", false));
    assert!(decided(APPLIER, "delete", false));
    assert!(decided("system:anonymous", "get", false));
    assert!(decided("root", "patch", true));
    sim.shutdown().await;
}
