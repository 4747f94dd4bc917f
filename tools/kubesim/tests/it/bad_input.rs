//! Hostile and malformed requests: each gets its Kubernetes status code and a Status body,
//! and the server goes on serving.

use crate::common::{raw, start};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn expect_status(
    sim: &kubesim::KubeSim,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: &[u8],
    code: u16,
    reason: &str,
) {
    let r = raw(sim, method, path, ct, body).await;
    assert_eq!(r.status, code, "{method} {path}: {}", r.body);
    let status = r.json();
    assert_eq!(status["kind"], "Status", "{}", r.body);
    assert_eq!(status["code"], code);
    assert_eq!(status["reason"], reason, "{}", r.body);
    assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn malformed_bodies_and_content_types() {
    let sim = start().await;
    let json = Some("application/json");
    expect_status(&sim, "POST", CMS, json, b"{not json", 400, "BadRequest").await;
    expect_status(
        &sim,
        "POST",
        CMS,
        Some("application/yaml"),
        b"a: [b\n  c: :",
        400,
        "BadRequest",
    )
    .await;
    expect_status(
        &sim,
        "POST",
        CMS,
        Some("text/plain"),
        b"{}",
        415,
        "UnsupportedMediaType",
    )
    .await;
    expect_status(
        &sim,
        "POST",
        CMS,
        Some("application/vnd.kubernetes.protobuf"),
        b"k8s\0",
        415,
        "UnsupportedMediaType",
    )
    .await;
    expect_status(
        &sim,
        "PATCH",
        &format!("{CMS}/x"),
        Some("application/xml"),
        b"<a/>",
        415,
        "UnsupportedMediaType",
    )
    .await;
    expect_status(&sim, "POST", CMS, json, b"[1,2]", 400, "BadRequest").await;
    let apply = "/api/v1/namespaces/default/configmaps/x?fieldManager=t";
    expect_status(
        &sim,
        "PATCH",
        apply,
        Some("application/apply-patch+yaml"),
        b"key: [unclosed",
        400,
        "BadRequest",
    )
    .await;
    expect_status(
        &sim,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x",
        Some("application/apply-patch+yaml"),
        b"{}",
        400,
        "BadRequest",
    )
    .await;
    let big = vec![b' '; 3 * 1024 * 1024 + 10];
    expect_status(&sim, "POST", CMS, json, &big, 413, "RequestEntityTooLarge").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn invalid_objects_are_422() {
    let sim = start().await;
    let json = Some("application/json");
    expect_status(
        &sim,
        "POST",
        CMS,
        json,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
        422,
        "Invalid",
    )
    .await;
    let long = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{}"}}}}"#,
        "a".repeat(254)
    );
    expect_status(&sim, "POST", CMS, json, long.as_bytes(), 422, "Invalid").await;
    expect_status(
        &sim,
        "POST",
        CMS,
        json,
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Upper_Case"}}"#,
        422,
        "Invalid",
    )
    .await;
    expect_status(&sim, "POST", CMS, json, br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","labels":{"a":"-bad value-"}}}"#, 422, "Invalid").await;
    expect_status(
        &sim,
        "POST",
        CMS,
        json,
        br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#,
        422,
        "Invalid",
    )
    .await;
    expect_status(
        &sim,
        "POST",
        CMS,
        json,
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
        422,
        "Invalid",
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_methods_and_watch_versions() {
    let sim = start().await;
    expect_status(
        &sim,
        "GET",
        "/api/v1/namespaces/default/nosuchthings",
        None,
        b"",
        404,
        "NotFound",
    )
    .await;
    expect_status(
        &sim,
        "GET",
        "/apis/nosuch.example.com/v1/things",
        None,
        b"",
        404,
        "NotFound",
    )
    .await;
    expect_status(
        &sim,
        "GET",
        "/api/v1/namespaces/default/configmaps/missing",
        None,
        b"",
        404,
        "NotFound",
    )
    .await;
    expect_status(
        &sim,
        "PUT",
        CMS,
        Some("application/json"),
        b"{}",
        405,
        "MethodNotAllowed",
    )
    .await;
    expect_status(
        &sim,
        "POST",
        "/apis",
        Some("application/json"),
        b"{}",
        405,
        "MethodNotAllowed",
    )
    .await;
    expect_status(
        &sim,
        "GET",
        &format!("{CMS}?watch=true&resourceVersion=garbage"),
        None,
        b"",
        400,
        "BadRequest",
    )
    .await;
    expect_status(
        &sim,
        "GET",
        &format!("{CMS}?labelSelector=a%20in%20b"),
        None,
        b"",
        400,
        "BadRequest",
    )
    .await;
    expect_status(
        &sim,
        "GET",
        &format!("{CMS}?limit=2&continue=nothex"),
        None,
        b"",
        400,
        "BadRequest",
    )
    .await;
    expect_status(
        &sim,
        "POST",
        &format!("{CMS}?dryRun=Some"),
        Some("application/json"),
        b"{}",
        400,
        "BadRequest",
    )
    .await;
    // After all that, everyone else is still served.
    let ok = raw(&sim, "GET", "/version", None, b"").await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["major"], "1");
    let created = raw(
        &sim,
        "POST",
        CMS,
        Some("application/yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n",
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    expect_status(
        &sim,
        "POST",
        CMS,
        Some("application/yaml"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n",
        409,
        "AlreadyExists",
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn hostile_patches_do_not_break_the_object() {
    let sim = start().await;
    let created = raw(
        &sim,
        "POST",
        CMS,
        Some("application/json"),
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t"},"data":{"a":"1"}}"#,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let path = format!("{CMS}/t");
    let jp = Some("application/json-patch+json");
    expect_status(
        &sim,
        "PATCH",
        &path,
        jp,
        br#"[{"op":"replace","path":"","value":5}]"#,
        422,
        "Invalid",
    )
    .await;
    expect_status(
        &sim,
        "PATCH",
        &path,
        jp,
        br#"[{"op":"replace","path":"/metadata","value":"x"}]"#,
        422,
        "Invalid",
    )
    .await;
    expect_status(&sim, "PATCH", &path, jp, br#"{"op":"add"}"#, 422, "Invalid").await;
    expect_status(
        &sim,
        "PATCH",
        &path,
        Some("application/merge-patch+json"),
        b"[]",
        400,
        "BadRequest",
    )
    .await;
    expect_status(
        &sim,
        "PATCH",
        &path,
        Some("application/merge-patch+json"),
        br#"{"metadata":{"labels":{"bad key!":"x"}}}"#,
        422,
        "Invalid",
    )
    .await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    expect_status(
        &sim,
        "POST",
        CMS,
        Some("application/json"),
        deep.as_bytes(),
        400,
        "BadRequest",
    )
    .await;
    let bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    let r = raw(&sim, "POST", CMS, Some("application/yaml"), bomb.as_bytes()).await;
    assert!(matches!(r.status, 400 | 422), "{}", r.status);
    let unchanged = raw(&sim, "GET", &path, None, b"").await;
    assert_eq!(unchanged.json()["data"]["a"], "1");
    sim.shutdown().await;
}
