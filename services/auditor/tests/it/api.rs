//! The API's bearer tokens: 401 without a valid token, 403 with a read token on an admin
//! route, 200 (or 202) with the right one; health, readiness and metrics stay open; a reindex
//! by the admin rebuilds the same index from the log.

use configsync_auditor::AuditorError;
use configsync_auditor::auth::TokenError;
use tokio_util::sync::CancellationToken;

use crate::support::*;

const CHALLENGE: &str = "Bearer realm=\"configsync-audit\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_a_token_and_admin_routes_the_admin_token() {
    let bus = Bus::start().await;
    bus.publish(&commit("abc123", "Add the wombat dashboard"))
        .await;
    let last = bus.publish(&health(1)).await;
    let index = tempfile::tempdir().expect("temp dir");
    let auditor = Auditor::start(&bus.server, index.path()).await;
    auditor.wait_indexed(last).await;
    let api = auditor.http();

    for (method, path) in [
        ("GET", "/v1/events?q=wombat"),
        ("GET", "/v1/status"),
        ("POST", "/v1/admin/reindex"),
    ] {
        let none = request(api, method, path, None).await;
        assert_eq!(
            none.status, 401,
            "{method} {path} without a token: {none:?}"
        );
        assert_eq!(none.challenge.as_deref(), Some(CHALLENGE), "{none:?}");
        assert!(none.body["error"].is_string(), "{none:?}");
        let forged = request(api, method, path, Some(&format!("{READ_TOKEN}x"))).await;
        assert_eq!(
            forged.status, 401,
            "{method} {path} with a bad token: {forged:?}"
        );
        assert_eq!(
            forged.challenge.as_deref(),
            Some("Bearer realm=\"configsync-audit\", error=\"invalid_token\""),
        );
    }

    // Reads: either token.
    for token in [READ_TOKEN, ADMIN_TOKEN] {
        let hits = request(api, "GET", "/v1/events?q=wombat", Some(token)).await;
        assert_eq!(hits.status, 200, "{hits:?}");
        assert_eq!(hits.body["total"], 1, "{hits:?}");
        let status = request(api, "GET", "/v1/status", Some(token)).await;
        assert_eq!(status.status, 200, "{status:?}");
    }

    // The admin route: 403 for the read token, accepted for the admin's.
    let read = request(api, "POST", "/v1/admin/reindex", Some(READ_TOKEN)).await;
    assert_eq!(read.status, 403, "{read:?}");
    assert_eq!(
        read.challenge.as_deref(),
        Some("Bearer realm=\"configsync-audit\", error=\"insufficient_scope\", scope=\"admin\"")
    );
    assert_eq!(read.body["error"], "this route needs the admin token");
    let admin = request(api, "POST", "/v1/admin/reindex", Some(ADMIN_TOKEN)).await;
    assert_eq!(admin.status, 202, "{admin:?}");
    assert_eq!(admin.body["rebuilding"], "started", "{admin:?}");
    // Rebuilt from the log: the same documents, searchable again, each indexed a second time
    // by this process.
    let status = auditor.wait_indexed(last).await;
    assert_eq!(status["documents"], 2, "{status}");
    assert_eq!(sequences(&auditor.search("wombat").await).len(), 1);
    let metrics = request(api, "GET", "/metrics", None).await;
    assert!(
        metrics
            .body
            .as_str()
            .is_some_and(|m| m.contains("configsync_audit_documents_indexed_total 4")),
        "{metrics:?}"
    );

    // Health, readiness and metrics need no token, on the API's port as on the ops port.
    for addr in [api, auditor.running.ops_addr] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let open = request(addr, "GET", path, None).await;
            assert_eq!(open.status, 200, "{path} on {addr}: {open:?}");
        }
    }
    let metrics = request(api, "GET", "/metrics", None).await;
    assert!(
        metrics
            .body
            .as_str()
            .is_some_and(|m| m.contains("configsync_audit_indexed_sequence")),
        "{metrics:?}"
    );
    auditor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_admin_routes_refuse_everyone() {
    let bus = Bus::start().await;
    let index = tempfile::tempdir().expect("temp dir");
    let tokens = tempfile::tempdir().expect("temp dir");
    write_tokens(tokens.path());
    let mut config = config(&bus.server, index.path(), tokens.path());
    config.admin_token_file = None;
    let shutdown = CancellationToken::new();
    let running = configsync_auditor::start(config, shutdown.clone())
        .await
        .expect("the auditor starts with a read token only");
    let api = running.http_addr;
    let read = request(api, "GET", "/v1/status", Some(READ_TOKEN)).await;
    assert_eq!(read.status, 200, "{read:?}");
    for token in [READ_TOKEN, ADMIN_TOKEN] {
        let refused = request(api, "POST", "/v1/admin/reindex", Some(token)).await;
        assert!(matches!(refused.status, 401 | 403), "{token}: {refused:?}");
    }
    let refused = request(api, "POST", "/v1/admin/reindex", Some(READ_TOKEN)).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("admin routes are disabled")),
        "{refused:?}"
    );
    shutdown.cancel();
    running.wait().await.expect("the auditor stops cleanly");
}

#[tokio::test]
async fn a_missing_weak_or_shared_token_file_stops_the_start() {
    let bus = Bus::start().await;
    let index = tempfile::tempdir().expect("temp dir");
    let tokens = tempfile::tempdir().expect("temp dir");
    write_tokens(tokens.path());
    let start = |config| async move {
        match configsync_auditor::start(config, CancellationToken::new()).await {
            Ok(_) => panic!("the auditor started with unusable tokens"),
            Err(AuditorError::Token(e)) => e,
            Err(other) => panic!("not a token error: {other}"),
        }
    };

    let mut missing = config(&bus.server, index.path(), tokens.path());
    missing.read_token_file = tokens.path().join("nope");
    assert!(matches!(start(missing).await, TokenError::Read { .. }));

    std::fs::write(tokens.path().join("weak"), "hunter2\n").expect("file is written");
    let mut weak = config(&bus.server, index.path(), tokens.path());
    weak.admin_token_file = Some(tokens.path().join("weak"));
    let error = start(weak).await;
    assert!(matches!(error, TokenError::Invalid { .. }), "{error}");
    // The reason, never the token.
    assert!(!error.to_string().contains("hunter2"), "{error}");

    let mut shared = config(&bus.server, index.path(), tokens.path());
    shared.admin_token_file = Some(tokens.path().join("read"));
    assert!(matches!(start(shared).await, TokenError::Shared));
}
