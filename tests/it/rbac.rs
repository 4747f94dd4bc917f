//! The Kubernetes RBAC of `deploy/kubernetes`: no role has a `*`; only the applier, the
//! drift-watcher and the remediator are bound, the other services get no token; the three
//! roles cover the same kinds; and each role is exactly what its service's code needs: the real
//! services apply, prune, check health, watch drift and repair it (a change and a deletion)
//! against kubesim enforcing those very roles, nothing they do is refused, and every verb
//! granted is one they used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use configsync_core::event::EventData;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubesim::rbac::Rbac;
use serde_json::{Value, json};

use crate::chain::{ADMIN, Setup, configmap, reference, secret, service_account};

/// The services and whether their code reaches clusters.
const SERVICES: [(&str, bool); 6] = [
    ("git-watcher", false),
    ("validator", false),
    ("applier", true),
    ("drift-watcher", true),
    ("remediator", true),
    ("auditor", false),
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every document of `deploy/kubernetes/*.yaml` (the base the kustomization applies, and the
/// example Secrets), with the file it is in.
fn documents(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("deploy/kubernetes is there")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                out.push((file.display().to_string(), value));
            }
        }
    }
    out
}

fn of_kind<'a>(docs: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|(_, d)| d["kind"] == kind)
        .map(|(_, d)| d)
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What `user`'s rules grant: verbs, and (group, resource) pairs.
fn granted(rbac: &Rbac, user: &str) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let mut verbs = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for (_, rule) in rbac.rules_of(user) {
        verbs.extend(rule.verbs.iter().cloned());
        for group in &rule.api_groups {
            for resource in &rule.resources {
                kinds.insert((group.clone(), resource.clone()));
            }
        }
    }
    (verbs, kinds)
}

#[test]
fn no_wildcards_and_only_the_services_that_reach_clusters_get_a_role() {
    let docs = documents(&deploy_dir());
    for role in of_kind(&docs, "ClusterRole")
        .into_iter()
        .chain(of_kind(&docs, "Role"))
    {
        let name = role["metadata"]["name"].as_str().unwrap_or_default();
        let rules = role["rules"].as_array().expect("rules");
        assert!(!rules.is_empty(), "{name} grants nothing");
        assert!(role.get("aggregationRule").is_none(), "{name} aggregates");
        for rule in rules {
            for field in ["verbs", "resources", "apiGroups"] {
                assert!(
                    !strings(&rule[field]).iter().any(|v| v.contains('*')),
                    "{name}: `*` in {field}: {rule}"
                );
            }
            assert!(
                !strings(&rule["verbs"])
                    .iter()
                    .any(|v| matches!(*v, "escalate" | "bind" | "impersonate" | "update")),
                "{name}: a verb ConfigSync never uses: {rule}"
            );
            assert!(rule.get("nonResourceURLs").is_none(), "{name}: {rule}");
        }
    }

    let rbac = Rbac::from_documents(docs.iter().map(|(_, d)| d.clone())).expect("roles parse");
    let accounts = of_kind(&docs, "ServiceAccount");
    let deployments = of_kind(&docs, "Deployment");
    let mut kinds_of = BTreeMap::new();
    for (service, reaches_clusters) in SERVICES {
        let name = format!("configsync-{service}");
        let account = accounts
            .iter()
            .find(|a| a["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no ServiceAccount {name}"));
        let deployment = deployments
            .iter()
            .find(|d| d["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no Deployment {name}"));
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], name.as_str());
        // A service without cluster work holds no token at all.
        assert_eq!(
            account["automountServiceAccountToken"], reaches_clusters,
            "{name}"
        );
        assert_eq!(
            pod["automountServiceAccountToken"], reaches_clusters,
            "{name}"
        );
        let (verbs, kinds) = granted(&rbac, &service_account(service));
        assert_eq!(
            verbs.is_empty(),
            !reaches_clusters,
            "{name} is granted {verbs:?}"
        );
        if reaches_clusters {
            kinds_of.insert(service, kinds);
        }
    }
    // One list of managed kinds: what the applier may apply, the drift-watcher watches and the
    // remediator repairs.
    let applier = &kinds_of["applier"];
    assert!(
        applier.contains(&("apps".into(), "deployments".into()))
            && applier.contains(&(String::new(), "secrets".into())),
        "{applier:?}"
    );
    assert_eq!(&kinds_of["drift-watcher"], applier);
    assert_eq!(&kinds_of["remediator"], applier);
}

#[test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
fn the_manage_rbac_component_adds_roles_and_bindings_to_the_three_roles_and_no_wildcard() {
    configsync_prereq::require_tool("kubectl");
    // An overlay as an operator writes one: the base and the component (kustomize wants
    // paths relative to the overlay).
    let overlay = tempfile::tempdir().unwrap();
    let overlay_dir = overlay.path().canonicalize().unwrap();
    let up = "../".repeat(overlay_dir.components().count() - 1);
    let base = deploy_dir().canonicalize().unwrap();
    let base = format!("{up}{}", base.strip_prefix("/").unwrap().display());
    std::fs::write(
        overlay_dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- {base}\ncomponents:\n- {base}/components/manage-rbac\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(&overlay_dir)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rbac = Rbac::from_yaml(&String::from_utf8_lossy(&out.stdout)).expect("roles parse");
    let rbac_kinds = [
        ("rbac.authorization.k8s.io".to_string(), "roles".to_string()),
        (
            "rbac.authorization.k8s.io".to_string(),
            "rolebindings".to_string(),
        ),
    ];
    for service in ["applier", "drift-watcher", "remediator"] {
        let (verbs, kinds) = granted(&rbac, &service_account(service));
        for kind in &rbac_kinds {
            assert!(kinds.contains(kind), "{service} cannot manage {kind:?}");
        }
        assert!(
            !verbs.iter().any(|v| v.contains('*')),
            "{service}: {verbs:?}"
        );
    }
    // Roles are created by the applier only, which then needs `bind` and `escalate` for no
    // one: it may only grant what it holds itself.
    let (verbs, _) = granted(&rbac, &service_account("drift-watcher"));
    assert_eq!(verbs, ["get", "list", "watch"].map(String::from).into());
}

fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx:1.27.3"}]}}}})
}

async fn admin_api(s: &Setup, group: &str, kind: &str) -> Api<DynamicObject> {
    let kc = kube::config::Kubeconfig::read_from(s.kubeconfig.path()).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some("dev".into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
    Api::namespaced_with(kube::Client::try_from(config).unwrap(), "default", &ar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_is_exactly_what_its_service_does_under_it() {
    let docs = documents(&deploy_dir());
    let rbac = Rbac::from_documents(docs.into_iter().map(|(_, d)| d)).expect("roles parse");
    let s = Setup::start_with_rbac(rbac.clone()).await;
    let watcher = s.drift_watcher();
    let remediator = s.remediator("auto");
    watcher.ready().await;
    remediator.ready().await;

    // Apply (new objects of three kinds, a workload whose health is watched) ...
    let first = vec![
        configmap("settings", "blue"),
        secret("creds", "aHVudGVyMg=="),
        service("web"),
        deployment("web"),
    ];
    s.apply("r1", first).await;
    s.next_event("configsync.evt.dev.c1.health.ready.v1", |e| {
        e.revision() == Some("r1")
    })
    .await;
    // ... apply again, unchanged objects found by list, one left out and pruned ...
    let second = vec![
        configmap("settings", "green"),
        secret("creds", "aHVudGVyMg=="),
        deployment("web"),
    ];
    s.apply("r2", second).await;
    s.next_event("configsync.evt.dev.c1.resource.pruned.v1", |e| {
        e.revision() == Some("r2")
    })
    .await;
    // ... a change repaired (patch) ...
    admin_api(&s, "", "ConfigMap")
        .await
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"color": "red"}})),
        )
        .await
        .unwrap();
    let repaired = |kind: &'static str| move |e: &configsync_core::event::Received| matches!(&e.data, EventData::RemediationSucceeded(r) if r.object == reference(kind, if kind == "Secret" { "creds" } else { "settings" }));
    s.next_event(
        "configsync.evt.dev.c1.remediation.succeeded.v1",
        repaired("ConfigMap"),
    )
    .await;
    // ... and a deletion repaired (a server-side apply that creates).
    admin_api(&s, "", "Secret")
        .await
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    s.next_event(
        "configsync.evt.dev.c1.remediation.succeeded.v1",
        repaired("Secret"),
    )
    .await;
    assert!(
        admin_api(&s, "", "Secret").await.get("creds").await.is_ok(),
        "the Secret was made again"
    );

    // Nothing any service did was refused, and each one used every verb its role grants.
    let access = s.sim.access();
    let refused: Vec<_> = access.keys().filter(|a| !a.allowed).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    for service in ["applier", "drift-watcher", "remediator"] {
        let user = service_account(service);
        let used: BTreeSet<String> = access
            .keys()
            .filter(|a| a.user == user)
            .map(|a| a.verb.clone())
            .collect();
        let (verbs, _) = granted(&rbac, &user);
        assert_eq!(used, verbs, "{service}: used {used:?}, granted {verbs:?}");
    }

    // The roles are enforced: the drift-watcher may not write, a service without a binding
    // may not even read.
    for (who, verb) in [
        (service_account("drift-watcher"), "patch"),
        (service_account("auditor"), "get"),
    ] {
        let a = kubesim::rbac::Attributes {
            user: &who,
            verb,
            group: "",
            resource: "configmaps",
            namespace: Some("default"),
            name: Some("settings"),
        };
        assert!(!rbac.allows(&a), "{who} may {verb}");
    }
    assert!(!access.keys().any(|a| a.user == ADMIN && !a.allowed));
    watcher.stop().await;
    remediator.stop().await;
    s.stop().await;
}
