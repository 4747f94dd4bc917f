//! Unit tests of the reference checks, on objects built inline.

use configsync_core::event::{ObjectRef, Severity};
use serde_json::{Value, json};

use super::*;

fn manifest(object: Value) -> Manifest {
    let text = |path: &[&str]| {
        at(&object, path)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Manifest {
        file: "m.yaml".into(),
        line: 1,
        reference: ObjectRef {
            api_version: text(&["apiVersion"]).unwrap(),
            kind: text(&["kind"]).unwrap(),
            namespace: text(&["metadata", "namespace"]),
            name: text(&["metadata", "name"]).unwrap(),
        },
        object,
    }
}

fn object(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Value {
    let mut metadata = json!({ "name": name });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata })
}

/// (rule, path) of every finding.
fn run(objects: Vec<Value>, external: &[&str]) -> Vec<(String, String)> {
    let manifests: Vec<Manifest> = objects.into_iter().map(manifest).collect();
    let external = External::parse(external.iter().copied()).unwrap();
    check(&manifests, &external)
        .into_iter()
        .map(|f| (f.rule, f.path.unwrap()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(r, p)| (r.to_string(), p.to_string()))
        .collect()
}

fn deployment(namespace: Option<&str>, pod_spec: Value) -> Value {
    let mut d = object("apps/v1", "Deployment", namespace, "web");
    d["spec"] =
        json!({ "template": { "metadata": { "labels": { "app": "web" } }, "spec": pod_spec } });
    d
}

#[test]
fn every_pod_reference_is_checked_with_its_path() {
    let spec = json!({
        "serviceAccountName": "builder",
        "imagePullSecrets": [{ "name": "registry" }],
        "volumes": [
            { "name": "a", "configMap": { "name": "settings" } },
            { "name": "b", "secret": { "secretName": "tls" } },
            { "name": "c", "persistentVolumeClaim": { "claimName": "data" } },
            { "name": "d", "projected": { "sources": [
                { "configMap": { "name": "p-cm" } },
                { "secret": { "name": "p-secret", "optional": true } },
                { "serviceAccountToken": { "path": "token" } }
            ] } }
        ],
        "initContainers": [{ "name": "i", "envFrom": [{ "secretRef": { "name": "init-env" } }] }],
        "containers": [{
            "name": "c",
            "env": [
                { "name": "A", "valueFrom": { "configMapKeyRef": { "name": "env-cm", "key": "a" } } },
                { "name": "B", "valueFrom": { "secretKeyRef": { "name": "env-secret", "key": "b", "optional": true } } },
                { "name": "C", "value": "plain" }
            ],
            "envFrom": [{ "configMapRef": { "name": "from-cm" } }]
        }]
    });
    let p = ".spec.template.spec";
    assert_eq!(
        run(vec![deployment(None, spec)], &[]),
        pairs(&[
            (
                "reference.configmap",
                &format!("{p}.volumes[0].configMap.name")
            ),
            (
                "reference.secret",
                &format!("{p}.volumes[1].secret.secretName")
            ),
            (
                "reference.pvc",
                &format!("{p}.volumes[2].persistentVolumeClaim.claimName")
            ),
            (
                "reference.configmap",
                &format!("{p}.volumes[3].projected.sources[0].configMap.name")
            ),
            (
                "reference.secret",
                &format!("{p}.initContainers[0].envFrom[0].secretRef.name")
            ),
            (
                "reference.configmap",
                &format!("{p}.containers[0].env[0].valueFrom.configMapKeyRef.name")
            ),
            (
                "reference.configmap",
                &format!("{p}.containers[0].envFrom[0].configMapRef.name")
            ),
            ("reference.secret", &format!("{p}.imagePullSecrets[0].name")),
            (
                "reference.serviceaccount",
                &format!("{p}.serviceAccountName")
            ),
        ])
    );
}

#[test]
fn references_resolve_in_the_same_namespace_only() {
    let spec = json!({ "volumes": [{ "name": "a", "configMap": { "name": "settings" } }] });
    let cm = |ns| object("v1", "ConfigMap", ns, "settings");
    // Absent namespace equals absent namespace.
    assert!(run(vec![deployment(None, spec.clone()), cm(None)], &["ns/*"]).is_empty());
    assert!(
        run(
            vec![deployment(Some("web"), spec.clone()), cm(Some("web"))],
            &["ns/*"]
        )
        .is_empty()
    );
    assert_eq!(
        run(
            vec![deployment(Some("web"), spec.clone()), cm(Some("api"))],
            &["ns/*"]
        )
        .len(),
        1
    );
    assert_eq!(
        run(vec![deployment(None, spec), cm(Some("default"))], &["ns/*"]).len(),
        1
    );
}

#[test]
fn every_workload_kind_has_its_pod_template_checked() {
    let spec = json!({ "serviceAccountName": "missing" });
    let mut cronjob = object("batch/v1", "CronJob", None, "c");
    cronjob["spec"] = json!({ "jobTemplate": { "spec": { "template": { "spec": spec } } } });
    let mut pod = object("v1", "Pod", None, "p");
    pod["spec"] = spec.clone();
    let mut objects = vec![cronjob, pod];
    for (api, kind) in [
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "ReplicaSet"),
        ("batch/v1", "Job"),
        ("v1", "ReplicationController"),
    ] {
        let mut o = object(api, kind, None, "w");
        o["spec"] = json!({ "template": { "spec": spec } });
        objects.push(o);
    }
    let paths: Vec<String> = run(objects, &[]).into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths.len(), 7, "{paths:?}");
    assert_eq!(
        paths[0],
        ".spec.jobTemplate.spec.template.spec.serviceAccountName"
    );
    assert_eq!(paths[1], ".spec.serviceAccountName");
}

#[test]
fn default_service_account_and_claim_templates_need_nothing() {
    let mut sts = object("apps/v1", "StatefulSet", None, "db");
    sts["spec"] = json!({
        "volumeClaimTemplates": [{ "metadata": { "name": "data" } }],
        "template": { "spec": {
            "serviceAccountName": "default",
            "volumes": [
                { "name": "data", "persistentVolumeClaim": { "claimName": "data" } },
                { "name": "other", "persistentVolumeClaim": { "claimName": "other" } }
            ]
        } }
    });
    assert_eq!(
        run(vec![sts], &[]),
        pairs(&[(
            "reference.pvc",
            ".spec.template.spec.volumes[1].persistentVolumeClaim.claimName"
        )])
    );
}

#[test]
fn service_selectors_match_pod_templates_in_their_namespace() {
    let service = |ns, selector: Value| {
        let mut s = object("v1", "Service", ns, "web");
        s["spec"] = json!({ "selector": selector, "ports": [{ "port": 80 }] });
        s
    };
    let web = || deployment(Some("shop"), json!({}));
    assert!(
        run(
            vec![web(), service(Some("shop"), json!({ "app": "web" }))],
            &["ns/*"]
        )
        .is_empty()
    );
    let warnings = run(
        vec![
            web(),
            service(Some("shop"), json!({ "app": "web", "tier": "x" })),
        ],
        &["ns/*"],
    );
    assert_eq!(
        warnings,
        pairs(&[("reference.service-selector", ".spec.selector")])
    );
    assert_eq!(
        run(
            vec![web(), service(Some("other"), json!({ "app": "web" }))],
            &["ns/*"]
        )
        .len(),
        1
    );
    // Workloads assumed outside the manifests may be what it selects.
    assert!(
        run(
            vec![service(Some("shop"), json!({ "app": "x" }))],
            &["deploy/shop/*", "ns/*"]
        )
        .is_empty()
    );
    // An operator's custom resource that states its pods' labels.
    let mut prometheus = object(
        "monitoring.coreos.com/v1",
        "Prometheus",
        Some("shop"),
        "k8s",
    );
    prometheus["spec"] = json!({ "podMetadata": { "labels": { "app": "prometheus" } } });
    assert!(
        run(
            vec![
                prometheus,
                service(Some("shop"), json!({ "app": "prometheus" }))
            ],
            &["ns/*"]
        )
        .is_empty()
    );
    let manifests = vec![manifest(service(None, json!({ "app": "none" })))];
    let findings = check(&manifests, &External::default());
    assert_eq!(findings[0].severity, Severity::Warning);
}

#[test]
fn roles_resolve_with_built_ins() {
    let binding = |kind: &str, ns: Option<&str>, role_kind: &str, role: &str| {
        let mut b = object("rbac.authorization.k8s.io/v1", kind, ns, "b");
        b["roleRef"] =
            json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role });
        b
    };
    let role = object(
        "rbac.authorization.k8s.io/v1",
        "Role",
        Some("web"),
        "reader",
    );
    let objects = vec![
        role,
        binding("RoleBinding", Some("web"), "Role", "reader"),
        binding("RoleBinding", Some("web"), "ClusterRole", "view"),
        binding(
            "ClusterRoleBinding",
            None,
            "ClusterRole",
            "system:auth-delegator",
        ),
        binding(
            "RoleBinding",
            Some("kube-system"),
            "Role",
            "extension-apiserver-authentication-reader",
        ),
        binding("RoleBinding", Some("api"), "Role", "reader"),
        binding("ClusterRoleBinding", None, "ClusterRole", "reader"),
    ];
    assert_eq!(
        run(objects, &["ns/web", "ns/api"]),
        pairs(&[
            ("reference.role", ".roleRef.name"),
            ("reference.role", ".roleRef.name")
        ])
    );
}

#[test]
fn namespaces_must_be_declared_built_in_or_assumed() {
    let cm = |ns| object("v1", "ConfigMap", Some(ns), "c");
    let mut crd = object(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "widgets.example.com",
    );
    crd["spec"] =
        json!({ "group": "example.com", "scope": "Cluster", "names": { "kind": "Widget" } });
    let objects = vec![
        object("v1", "Namespace", None, "shop"),
        cm("shop"),
        cm("kube-system"),
        cm("ghost"),
        object("v1", "ConfigMap", None, "no-namespace"),
        // Cluster-scoped kinds and custom resources ignore a stray namespace.
        object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            Some("ghost"),
            "r",
        ),
        crd,
        object("example.com/v1", "Widget", Some("ghost"), "w"),
        object("other.example.com/v1", "Gadget", Some("ghost2"), "g"),
        cm("assumed"),
    ];
    assert_eq!(
        run(objects, &["ns/assumed"]),
        pairs(&[
            ("reference.namespace", ".metadata.namespace"),
            ("reference.namespace", ".metadata.namespace")
        ])
    );
}

#[test]
fn messages_name_the_reference_and_never_a_secret_value() {
    let mut secret = object("v1", "Secret", Some("web"), "creds");
    secret["stringData"] = json!({ "password": "hunter2" });
    let spec = json!({ "containers": [{ "name": "c", "envFrom": [{ "secretRef": { "name": "other" } }] }] });
    let manifests: Vec<Manifest> = vec![manifest(secret), manifest(deployment(Some("web"), spec))];
    let findings = check(&manifests, &External::parse(["ns/web"]).unwrap());
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert!(
        f.message.contains("Secret other") && f.message.contains("namespace web"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("hunter2"));
    assert_eq!(f.object.as_ref().unwrap().kind, "Deployment");
    assert_eq!((f.file.as_deref(), f.line), (Some("m.yaml"), Some(1)));
}

#[test]
fn malformed_objects_give_no_panic() {
    let mut d = object("apps/v1", "Deployment", None, "d");
    d["spec"] = json!({ "template": { "spec": {
        "volumes": "nope", "containers": [1, { "env": {} }], "serviceAccountName": 3
    } } });
    let mut ing = object("networking.k8s.io/v1", "Ingress", None, "i");
    ing["spec"] = json!({ "rules": [{ "http": { "paths": [{ "backend": { "service": { "name": 1 } } }] } }] });
    let mut hpa = object("autoscaling/v2", "HorizontalPodAutoscaler", None, "h");
    hpa["spec"] = json!({ "scaleTargetRef": [] });
    let mut svc = object("v1", "Service", None, "s");
    svc["spec"] = json!({ "selector": "app" });
    assert!(run(vec![d, ing, hpa, svc], &[]).is_empty());
}
