//! The stock kubectl against kubesim: server-side apply, field managers, conflicts, watch.

use crate::common::{Kubectl, WAIT, corpus, eventually, path_str, start};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
";

/// (manager, operation) of the main resource's managedFields; status writers are left out.
fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m.get("subresource").is_none())
                .map(|m| {
                    (
                        m["manager"].as_str().unwrap_or_default().to_string(),
                        m["operation"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
#[cfg_attr(
    not(all(has_kubectl, has_corpus)),
    ignore = "needs kubectl on PATH and ../shared/corpus: run tools/test.sh"
)]
async fn kubectl_applies_microservices_demo_server_side() {
    let corpus = corpus("microservices-demo/release/kubernetes-manifests.yaml");
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let manifests = corpus.join("microservices-demo/release/kubernetes-manifests.yaml");
    let out = k
        .ok(&["apply", "--server-side", "-f", path_str(&manifests)])
        .await;
    assert_eq!(out.matches("serverside-applied").count(), 35, "{out}");
    let deployments = k.json(&["get", "deployments", "-o", "json"]).await;
    assert_eq!(deployments["items"].as_array().map(Vec::len), Some(12));
    let services = k.json(&["get", "services", "-o", "json"]).await;
    assert_eq!(services["items"].as_array().map(Vec::len), Some(12));
    // Applying again changes nothing: no resourceVersion moves.
    let before = k
        .json(&["get", "deployment", "frontend", "-o", "json"])
        .await;
    k.ok(&["apply", "--server-side", "-f", path_str(&manifests)])
        .await;
    let after = k
        .json(&["get", "deployment", "frontend", "-o", "json"])
        .await;
    assert_eq!(
        before["metadata"]["resourceVersion"],
        after["metadata"]["resourceVersion"]
    );
    // Rollouts converge, as kubectl's own rollout watch sees.
    let out = k
        .ok(&["rollout", "status", "deployment/frontend", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let table = k.ok(&["get", "deployments"]).await;
    assert!(
        table.contains("frontend") && table.contains("1/1"),
        "{table}"
    );
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(all(has_kubectl, has_corpus)),
    ignore = "needs kubectl on PATH and ../shared/corpus: run tools/test.sh"
)]
async fn kubectl_applies_kube_prometheus_crds_then_custom_resources() {
    let corpus = corpus("kube-prometheus/manifests");
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let setup = corpus.join("kube-prometheus/manifests/setup");
    let out = k
        .ok(&["apply", "--server-side", "-f", path_str(&setup)])
        .await;
    assert_eq!(
        out.matches("customresourcedefinition.apiextensions.k8s.io/")
            .count(),
        10,
        "{out}"
    );
    k.ok(&[
        "wait",
        "--for",
        "condition=Established",
        "crd",
        "--all",
        "--timeout=30s",
    ])
    .await;
    let manifests = corpus.join("kube-prometheus/manifests");
    let out = k
        .ok(&["apply", "--server-side", "-f", path_str(&manifests)])
        .await;
    assert!(
        out.contains("prometheus.monitoring.coreos.com/k8s serverside-applied"),
        "{out}"
    );
    let monitors = k
        .json(&["get", "servicemonitors", "-n", "monitoring", "-o", "json"])
        .await;
    assert_eq!(monitors["items"].as_array().map(Vec::len), Some(13));
    let prom = k
        .json(&[
            "get",
            "prometheus",
            "k8s",
            "-n",
            "monitoring",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(
        managers(&prom),
        vec![("kubectl".to_string(), "Apply".to_string())]
    );
    // Deleting a CRD stops serving its resource.
    k.ok(&["delete", "crd", "probes.monitoring.coreos.com"])
        .await;
    let gone = k.run(&["get", "probes", "-A"]).await;
    assert!(!gone.ok, "probes still served: {}", gone.stdout);
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn kubectl_records_managers_detects_conflicts_and_deletes() {
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let file = k.write("web.yaml", DEPLOYMENT);
    let file = path_str(&file);
    assert!(
        k.ok(&["apply", "--server-side", "-f", file])
            .await
            .contains("deployment.apps/web serverside-applied")
    );
    let web = k
        .json(&[
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(
        managers(&web),
        vec![("kubectl".to_string(), "Apply".to_string())]
    );
    assert!(web.pointer("/metadata/managedFields/0/fieldsV1/f:spec/f:template/f:spec/f:containers/k:{\"name\":\"nginx\"}/f:image").is_some());

    k.ok(&["label", "deployment", "web", "team=payments"]).await;
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ])
    .await;
    let web = k
        .json(&[
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    let m = managers(&web);
    assert!(m.contains(&("kubectl".into(), "Apply".into())), "{m:?}");
    assert!(
        m.contains(&("kubectl-label".into(), "Update".into())),
        "{m:?}"
    );
    assert!(
        m.contains(&("kubectl-patch".into(), "Update".into())),
        "{m:?}"
    );
    assert_eq!(web["metadata"]["labels"]["team"], "payments");

    let conflict = k.run(&["apply", "--server-side", "-f", file]).await;
    assert!(!conflict.ok);
    assert!(
        conflict.stderr.contains(r#"conflict with "kubectl-patch""#)
            && conflict.stderr.contains(".spec.replicas"),
        "{}",
        conflict.stderr
    );
    k.ok(&["apply", "--server-side", "--force-conflicts", "-f", file])
        .await;
    let web = k
        .json(&[
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(web["spec"]["replicas"], 2);
    assert!(!managers(&web).iter().any(|(m, _)| m == "kubectl-patch"));
    assert_eq!(
        web["metadata"]["labels"]["team"], "payments",
        "the label manager keeps its field"
    );

    assert!(
        k.ok(&["delete", "deployment", "web"])
            .await
            .contains("deleted")
    );
    let gone = k.run(&["get", "deployment", "web"]).await;
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn kubectl_get_watch_sees_a_change() {
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let cm = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: \"1\"\n",
    );
    k.ok(&["apply", "--server-side", "-f", path_str(&cm)]).await;
    let mut child = k
        .command(&[
            "get",
            "configmap",
            "watched",
            "--watch",
            "-o",
            "jsonpath={.metadata.name} {.data.a}{\"\\n\"}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("first line in time")
        .expect("reads");
    assert_eq!(first.as_deref(), Some("watched 1"));
    k.ok(&[
        "patch",
        "configmap",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"2"}}"#,
    ])
    .await;
    let seen = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.expect("reads") {
            if line == "watched 2" {
                return true;
            }
        }
        false
    })
    .await
    .expect("change seen in time");
    assert!(seen);
    let _ = child.kill().await;
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn kubectl_edit_is_recorded_as_its_own_manager() {
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let cm = k.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: edited\ndata:\n  a: \"1\"\n",
    );
    k.ok(&["apply", "--server-side", "-f", path_str(&cm)]).await;
    let editor = k.write(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/a: \"1\"/a: \"2\"/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = k
        .command(&["edit", "configmap", "edited"])
        .env("EDITOR", &editor)
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edited = k
        .json(&[
            "get",
            "configmap",
            "edited",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(edited["data"]["a"], "2");
    assert!(managers(&edited).contains(&("kubectl-edit".into(), "Update".into())));
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn kubectl_rollout_status_fails_for_a_never_ready_deployment() {
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let stuck = DEPLOYMENT.replace(
        "labels: {app: web}\nspec",
        "labels: {app: web}\n  annotations: {kubesim.configsync.io/never-ready: \"true\"}\nspec",
    );
    let file = k.write("stuck.yaml", &stuck);
    k.ok(&["apply", "--server-side", "-f", path_str(&file)])
        .await;
    let web = eventually("status observed", || async {
        let web = k.json(&["get", "deployment", "web", "-o", "json"]).await;
        web["status"]["observedGeneration"].as_i64().map(|_| web)
    })
    .await;
    assert_eq!(web["status"]["readyReplicas"], 0);
    let out = k
        .run(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("exceeded its progress deadline"),
        "{}",
        out.stderr
    );
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn kubectl_typed_create_and_scale() {
    let sim = start().await;
    let k = Kubectl::new(&sim);
    // These typed subcommands send protobuf bodies.
    k.ok(&["create", "namespace", "shop"]).await;
    k.ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "shop",
        "--from-literal=mode=fast",
    ])
    .await;
    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "shop",
        "--from-literal=pw=s3cret",
    ])
    .await;
    k.ok(&["create", "serviceaccount", "bot", "-n", "shop"])
        .await;
    let cm = k
        .json(&["get", "configmap", "settings", "-n", "shop", "-o", "json"])
        .await;
    assert_eq!(cm["data"]["mode"], "fast");
    let secret = k
        .json(&["get", "secret", "creds", "-n", "shop", "-o", "json"])
        .await;
    assert_eq!(secret["data"]["pw"], "czNjcmV0");

    let file = k.write("web.yaml", DEPLOYMENT);
    k.ok(&[
        "apply",
        "--server-side",
        "-n",
        "shop",
        "-f",
        path_str(&file),
    ])
    .await;
    k.ok(&["scale", "deployment", "web", "-n", "shop", "--replicas=5"])
        .await;
    let web = k
        .json(&["get", "deployment", "web", "-n", "shop", "-o", "json"])
        .await;
    assert_eq!(web["spec"]["replicas"], 5);
    let out = k
        .ok(&[
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "shop",
            "--timeout=30s",
        ])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn kubectl_client_side_apply_and_crd_printer_columns() {
    let sim = start().await;
    let k = Kubectl::new(&sim);
    let file = k.write("web.yaml", DEPLOYMENT);
    assert!(
        k.ok(&["apply", "-f", path_str(&file)])
            .await
            .contains("created")
    );
    let file = k.write("web.yaml", &DEPLOYMENT.replace("nginx:1.25", "nginx:1.26"));
    assert!(
        k.ok(&["apply", "-f", path_str(&file)])
            .await
            .contains("configured")
    );
    let web = k
        .json(&[
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert!(
        web["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    assert!(managers(&web).contains(&("kubectl-client-side-apply".into(), "Update".into())));

    let crd = k.write(
        "crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 7}
",
    );
    // As with a real cluster, kubectl maps every document before applying any, so the
    // custom resource needs a second run once its CRD is served.
    let first = k
        .run(&["apply", "--server-side", "-f", path_str(&crd)])
        .await;
    assert!(
        first.stderr.contains("no matches for kind \"Widget\""),
        "{}",
        first.stderr
    );
    k.ok(&["apply", "--server-side", "-f", path_str(&crd)])
        .await;
    let table = k.ok(&["get", "widgets"]).await;
    assert!(
        table.contains("SIZE")
            && table
                .lines()
                .any(|l| l.starts_with("w1") && l.contains('7')),
        "{table}"
    );
    sim.shutdown().await;
}
