//! The whole pipeline: a commit reaches the clusters, broken YAML is stopped, drift is
//! repaired or reported by policy, restarts lose nothing, and every step is searchable.

use std::collections::HashMap;
use std::time::Duration;

use configsync_auditor::auth::Scope;
use configsync_core::event::{DriftKind, EventData};

use crate::http;
use crate::support::{DEPLOYMENT, Pipeline, WAIT, configmap};

fn color(cm: &str) -> [&str; 5] {
    ["get", "configmap", cm, "-o", "jsonpath={.data.color}"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_reaches_the_dev_cluster_and_a_later_change_updates_it() {
    let p = Pipeline::start(&[
        (
            "configs/dev/web/config.yaml",
            &configmap("settings", "blue"),
        ),
        ("configs/dev/web/deploy.yaml", DEPLOYMENT),
        (
            "configs/prod/web/config.yaml",
            &configmap("settings", "blue"),
        ),
    ])
    .await;
    let first = p.repo.git(&["rev-parse", "HEAD"]);
    p.event("dev applied", |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.environment == "dev" && a.revision == first)).await;
    p.eventually_live("dev", &color("settings"), "blue").await;
    assert_eq!(
        p.kubectl(
            "dev",
            &[
                "get",
                "deployment",
                "web",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        )
        .await,
        "2"
    );
    assert_eq!(
        p.kubectl(
            "dev",
            &[
                "get",
                "configmap",
                "settings",
                "-o",
                "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}"
            ]
        )
        .await,
        "configsync"
    );

    p.repo.write(
        "configs/dev/web/config.yaml",
        &configmap("settings", "green"),
    );
    let second = p.repo.commit("Make dev green");
    let applied = p.event("dev applied again", |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.environment == "dev" && a.revision == second)).await;
    p.eventually_live("dev", &color("settings"), "green").await;

    // commit → validation → apply share one correlation id: the commit event's id.
    let detected = p
        .event(
            "commit detected",
            |e| matches!(&e.data, EventData::CommitDetected(c) if c.sha == second),
        )
        .await;
    let validated = p.event("validated", |e| matches!(&e.data, EventData::ValidationPassed(v) if v.revision == second && v.environment == "dev")).await;
    assert_eq!(validated.correlation_id(), Some(detected.id()));
    assert_eq!(applied.correlation_id(), Some(detected.id()));
    let EventData::CommitDetected(c) = &detected.data else {
        unreachable!()
    };
    assert_eq!(c.message.trim_end(), "Make dev green");
    assert_eq!(c.environments[0].environment, "dev");
    assert_eq!(
        c.environments[0].apps[0].paths,
        ["configs/dev/web/config.yaml"]
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_yaml_fails_validation_with_file_and_line_and_nothing_is_applied() {
    let p = Pipeline::start(&[(
        "configs/dev/web/config.yaml",
        &configmap("settings", "blue"),
    )])
    .await;
    let first = p.repo.git(&["rev-parse", "HEAD"]);
    p.event(
        "dev applied",
        |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.revision == first),
    )
    .await;

    p.repo.write(
        "configs/dev/web/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: [red\n",
    );
    let broken = p.repo.commit("Break the YAML");
    let failed = p
        .event(
            "validation failed",
            |e| matches!(&e.data, EventData::ValidationFailed(v) if v.revision == broken),
        )
        .await;
    let EventData::ValidationFailed(v) = &failed.data else {
        unreachable!()
    };
    assert_eq!(
        v.findings[0].file.as_deref(),
        Some("configs/dev/web/config.yaml")
    );
    assert!(
        v.findings[0].line.is_some_and(|l| l >= 6),
        "{:?}",
        v.findings[0]
    );

    let applies = p
        .all(|e| e.revision() == Some(broken.as_str()) && e.type_name().contains(".apply."))
        .await;
    assert!(
        applies.is_empty(),
        "nothing of a failed revision is applied: {applies:?}"
    );
    p.eventually_live("dev", &color("settings"), "blue").await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubectl_change_is_attributed_reverted_under_auto_and_only_reported_under_alert() {
    let p = Pipeline::start(&[
        (
            "configs/dev/web/config.yaml",
            &configmap("settings", "blue"),
        ),
        (
            "configs/prod/web/config.yaml",
            &configmap("settings", "blue"),
        ),
    ])
    .await;
    let first = p.repo.git(&["rev-parse", "HEAD"]);
    for env in ["dev", "prod"] {
        p.event("applied", |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.environment == env && a.revision == first)).await;
    }
    let patch = [
        "patch",
        "configmap",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"color":"red"}}"#,
    ];

    p.kubectl("dev", &patch).await;
    let drift = p
        .event(
            "dev drift",
            |e| matches!(&e.data, EventData::DriftDetected(d) if d.environment == "dev"),
        )
        .await;
    let EventData::DriftDetected(d) = &drift.data else {
        unreachable!()
    };
    assert_eq!(d.kind, DriftKind::Modified);
    assert_eq!(d.changed_by.as_deref(), Some("kubectl-patch"));
    let field = d
        .fields
        .iter()
        .find(|f| f.path == "/data/color")
        .expect("the changed field");
    assert_eq!(
        (
            field.desired.as_ref().unwrap(),
            field.live.as_ref().unwrap()
        ),
        (&"blue".into(), &"red".into())
    );
    p.event(
        "dev repaired",
        |e| matches!(&e.data, EventData::RemediationSucceeded(r) if r.environment == "dev"),
    )
    .await;
    p.eventually_live("dev", &color("settings"), "blue").await;

    p.kubectl("prod", &patch).await;
    p.event(
        "prod drift",
        |e| matches!(&e.data, EventData::DriftDetected(d) if d.environment == "prod"),
    )
    .await;
    let repairs = p
        .all(|e| e.environment() == Some("prod") && e.type_name().contains(".remediation."))
        .await;
    assert!(repairs.is_empty(), "alert only reports: {repairs:?}");
    assert_eq!(p.kubectl("prod", &color("settings")).await, "red");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_any_service_in_the_middle_of_a_change_loses_nothing_and_applies_nothing_twice()
{
    let mut p =
        Pipeline::start(&[("configs/dev/web/config.yaml", &configmap("settings", "c0"))]).await;
    let mut revisions = vec![p.repo.git(&["rev-parse", "HEAD"])];
    for (i, service) in [
        "git-watcher",
        "validator",
        "applier",
        "drift-watcher",
        "remediator",
        "auditor",
    ]
    .into_iter()
    .enumerate()
    {
        let value = format!("c{}", i + 1);
        p.repo.write(
            "configs/dev/web/config.yaml",
            &configmap("settings", &value),
        );
        revisions.push(
            p.repo
                .commit(&format!("Change {i} while restarting the {service}")),
        );
        tokio::time::timeout(WAIT, p.stack.restart(service))
            .await
            .expect("restart in time")
            .unwrap_or_else(|e| panic!("restart {service}: {e:#}"));
        p.eventually_live("dev", &color("settings"), &value).await;
    }
    let last = revisions.last().unwrap().clone();
    p.event(
        "last applied",
        |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.revision == last),
    )
    .await;

    let count = |events: Vec<configsync_core::event::Received>,
                 key: fn(&EventData) -> Option<String>| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for e in events {
            if let Some(k) = key(&e.data) {
                *counts.entry(k).or_default() += 1;
            }
        }
        counts
    };
    let commits = count(p.all(|_| true).await, |d| match d {
        EventData::CommitDetected(c) => Some(c.sha.clone()),
        _ => None,
    });
    let applies = count(p.all(|_| true).await, |d| match d {
        EventData::ApplySucceeded(a) => Some(format!("{}@{}", a.revision, a.cluster)),
        _ => None,
    });
    // Intermediate commits may be superseded before they are applied (latest wins), but each
    // commit is detected exactly once and nothing is applied twice.
    for rev in &revisions {
        assert_eq!(
            commits.get(rev),
            Some(&1),
            "commit {rev} detected once: {commits:?}"
        );
    }
    assert!(
        applies.values().all(|n| *n == 1),
        "an apply happened twice: {applies:?}"
    );
    assert_eq!(applies.get(&format!("{last}@local")), Some(&1));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_search_finds_the_commit_by_its_message_and_the_drift_by_the_object_name() {
    let p = Pipeline::start(&[(
        "configs/dev/web/config.yaml",
        &configmap("checkout-flags", "blue"),
    )])
    .await;
    p.repo
        .write("configs/dev/web/other.yaml", &configmap("other", "x"));
    let sha = p.repo.commit("Introduce the turquoise banner");
    p.event(
        "applied",
        |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.revision == sha),
    )
    .await;
    p.kubectl(
        "dev",
        &[
            "patch",
            "configmap",
            "checkout-flags",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"color":"red"}}"#,
        ],
    )
    .await;
    p.event("drift", |e| matches!(&e.data, EventData::DriftDetected(_)))
        .await;

    let commit_hit = search_until(&p, "turquoise", "io.configsync.commit.detected.v1").await;
    assert_eq!(commit_hit["data"]["sha"], sha.as_str());
    let drift_hit = search_until(&p, "checkout-flags", "io.configsync.drift.detected.v1").await;
    assert_eq!(drift_hit["data"]["object"]["name"], "checkout-flags");
    p.stop().await;
}

/// Queries the audit API (with the read token `configsync up` keeps in its state directory)
/// until a hit of `ty` appears.
async fn search_until(p: &Pipeline, q: &str, ty: &str) -> serde_json::Value {
    let audit = p
        .stack
        .endpoints
        .audit_url
        .clone()
        .expect("auditor serves search");
    let addr = audit.trim_start_matches("http://").parse().unwrap();
    let token = p.audit_token(Scope::Read);
    let path = format!("/v1/events?q={q}");
    let (status, _) = http::get(addr, &path).await.unwrap();
    assert_eq!(status, 401, "the audit api answers no one without a token");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok((200, body)) = http::get_with_token(addr, &path, &token).await
            && let Ok(json) = serde_json::from_str::<serde_json::Value>(&body)
            && let Some(hit) = json["hits"]
                .as_array()
                .and_then(|h| h.iter().find(|h| h["type"] == ty))
        {
            return hit.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "audit search {q:?} never found a {ty}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A chart that shows the value of its environment, as `configs/dev/web/` of a repository.
const WEB_CHART: [(&str, &str); 4] = [
    (
        "configs/dev/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    ),
    ("configs/dev/web/values.yaml", "color: blue\n"),
    ("configs/dev/web/values-dev.yaml", "color: green\n"),
    (
        "configs/dev/web/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n  \
         namespace: default\ndata:\n  color: {{ .Values.color | quote }}\n",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(has_helm),
    ignore = "helm is not on PATH: run tools/install-helm-shim.sh or tools/test.sh"
)]
async fn a_helm_chart_is_rendered_with_its_environment_values_and_a_template_error_stops_it() {
    configsync_prereq::require_tool("helm");
    let p = Pipeline::start(&WEB_CHART).await;
    let first = p.repo.git(&["rev-parse", "HEAD"]);
    p.event(
        "dev applied",
        |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.environment == "dev" && a.revision == first),
    )
    .await;
    // values-dev.yaml over values.yaml: the real chart engine ran with the environment's file.
    p.eventually_live("dev", &color("web-settings"), "green")
        .await;

    p.repo.write(
        "configs/dev/web/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n\
         data:\n  color: {{ required \"set color\" .Values.colour }}\n",
    );
    let broken = p.repo.commit("Misspell a value in the chart");
    let failed = p
        .event(
            "validation failed",
            |e| matches!(&e.data, EventData::ValidationFailed(v) if v.revision == broken),
        )
        .await;
    let EventData::ValidationFailed(v) = &failed.data else {
        unreachable!()
    };
    let finding = v
        .findings
        .iter()
        .find(|f| f.rule == "render.failed")
        .unwrap_or_else(|| panic!("a render finding: {:?}", v.findings));
    assert_eq!(finding.file.as_deref(), Some("configs/dev/web/Chart.yaml"));
    assert!(
        finding.message.contains("set color") && finding.message.contains("configmap.yaml:6"),
        "{}",
        finding.message
    );
    let applies = p
        .all(|e| e.revision() == Some(broken.as_str()) && e.type_name().contains(".apply."))
        .await;
    assert!(applies.is_empty(), "{applies:?}");
    p.eventually_live("dev", &color("web-settings"), "green")
        .await;
    p.stop().await;
}
