//! Search: by the words of a commit message, by an object's name, by field; Secret values
//! never reach the index; dead letters are indexed; bad queries are 400s.

use configsync_core::log::dead_letter::{DeadLetters, Poison};

use crate::support::*;

/// A word of the commit message, a ConfigMap's name and a Secret's value: each distinctive.
const MESSAGE_WORD: &str = "quokkafication";
const CONFIGMAP: &str = "zebracorn-settings";
const SECRET_VALUE: &str = "tr0ub4dor-h0rse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_commits_drift_and_dead_letters_and_never_secret_values() {
    let bus = Bus::start().await;
    let commit_seq = bus
        .publish(&commit(
            "abc123",
            &format!("Roll out {MESSAGE_WORD} of the billing app"),
        ))
        .await;
    let drift_seq = bus
        .publish(&drift("dev", object("ConfigMap", CONFIGMAP), "blue", "red"))
        .await;
    // A producer that forgot to redact: the auditor must still keep the value out.
    let secret_seq = bus
        .publish(&drift(
            "dev",
            object("Secret", "db-creds"),
            SECRET_VALUE,
            "other",
        ))
        .await;
    let prod_seq = bus
        .publish(&drift("prod", object("ConfigMap", "plain"), "a", "b"))
        .await;
    let dead_seq = DeadLetters::new(bus.publisher(), "applier", SOURCE)
        .record(Poison {
            subject: "configsync.evt.dev.c1.apply.started.v1",
            headers: None,
            payload: format!("{{\"password\":\"{SECRET_VALUE}\"}}").as_bytes(),
            stream_sequence: commit_seq,
            delivery_count: 5,
            reason: "handler gave up: widget exploded".into(),
        })
        .await
        .expect("dead letter is recorded");

    let index = tempfile::tempdir().expect("temp dir");
    let auditor = Auditor::start(&bus.server, index.path()).await;
    let status = auditor.wait_indexed(dead_seq).await;
    assert_eq!(status["documents"], 5, "{status}");

    // The commit, by a word of its message.
    let hits = auditor.search(MESSAGE_WORD).await;
    assert_eq!(sequences(&hits), [commit_seq], "{hits}");
    assert_eq!(hits["total"], 1);
    assert_eq!(hits["hits"][0]["type"], "io.configsync.commit.detected.v1");
    assert_eq!(hits["hits"][0]["data"]["sha"], "abc123");
    // The drift, by the object's name (a word of it, and the whole name as a phrase).
    assert_eq!(sequences(&auditor.search("zebracorn").await), [drift_seq]);
    assert_eq!(sequences(&auditor.search(CONFIGMAP).await), [drift_seq]);
    // By field; newest first.
    assert_eq!(
        sequences(
            &auditor
                .search("environment:dev AND type:drift.detected.v1")
                .await
        ),
        [secret_seq, drift_seq]
    );
    assert_eq!(
        sequences(&auditor.search("type:io.configsync.drift.detected.v1").await),
        [prod_seq, secret_seq, drift_seq]
    );
    assert_eq!(
        sequences(&auditor.search("environment:prod").await),
        [prod_seq]
    );
    assert_eq!(sequences(&auditor.search("actor:ada").await), [commit_seq]);
    assert_eq!(
        sequences(
            &auditor
                .search(&format!("sequence:[{drift_seq} TO {secret_seq}]"))
                .await
        ),
        [secret_seq, drift_seq]
    );
    // By time range (RFC 3339), and everything with `*`.
    assert_eq!(
        auditor.search("time:[2000-01-01T00:00:00Z TO *]").await["total"],
        5
    );
    assert_eq!(
        auditor.search("time:[* TO 2000-01-01T00:00:00Z]").await["total"],
        0
    );
    assert_eq!(auditor.search("*").await["total"], 5);
    // Dead-letter records, by type and by the words of their reason.
    let dead = auditor.search("type:deadletter.recorded.v1").await;
    assert_eq!(sequences(&dead), [dead_seq], "{dead}");
    assert_eq!(dead["hits"][0]["data"]["consumer"], "applier");
    assert_eq!(
        sequences(&auditor.search("widget exploded").await),
        [dead_seq]
    );

    // The Secret's value: not searchable, not in any hit, not in the index files.
    assert_eq!(auditor.search(SECRET_VALUE).await["total"], 0);
    assert_eq!(auditor.search("tr0ub4dor").await["total"], 0);
    let everything = auditor.search("").await;
    assert_eq!(everything["total"], 5);
    let all_text = everything.to_string();
    assert!(!all_text.contains("tr0ub4dor"), "{all_text}");
    assert!(
        all_text.contains("db-creds"),
        "the Secret's name stays searchable"
    );
    assert_eq!(sequences(&auditor.search("db-creds").await), [secret_seq]);
    assert_no_file_contains(index.path(), b"tr0ub4dor");

    // Live: a new event is searchable within the commit interval.
    let late = bus.publish(&commit("def456", "later narwhalization")).await;
    auditor.wait_indexed(late).await;
    assert_eq!(sequences(&auditor.search("narwhalization").await), [late]);

    // Limits and defaults.
    let (code, one) = get(auditor.http(), "/v1/events?limit=1").await;
    assert_eq!(code, 200);
    assert_eq!(sequences(&one), [late]);
    assert_eq!(one["total"], 6);

    auditor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_and_parameters_are_400_with_a_json_error() {
    let bus = Bus::start().await;
    let index = tempfile::tempdir().expect("temp dir");
    let auditor = Auditor::start(&bus.server, index.path()).await;
    for path in [
        format!("/v1/events?q={}", encode("environment:(dev")),
        format!("/v1/events?q={}", encode("nosuchfield:x")),
        format!("/v1/events?q={}", encode("sequence:abc")),
        "/v1/events?q=x&limit=many".to_string(),
    ] {
        let (code, body) = get(auditor.http(), &path).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
    }
    // Still serving after them.
    let (code, _) = get(auditor.http(), "/v1/status").await;
    assert_eq!(code, 200);
    auditor.stop().await;
}

/// Fails if any file under `dir` contains `needle`.
fn assert_no_file_contains(dir: &std::path::Path, needle: &[u8]) {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("index dir is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            assert_no_file_contains(&path, needle);
            continue;
        }
        let bytes = std::fs::read(&path).expect("index file is readable");
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} holds a secret value",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "no index files in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_entries_are_indexed_without_their_content() {
    let bus = Bus::start().await;
    let garbage = bus
        .log
        .js
        .publish(
            "configsync.evt.dev.c1.junk.v1",
            "not an event: hunter2password".into(),
        )
        .await
        .expect("published")
        .await
        .expect("stored")
        .sequence;
    let index = tempfile::tempdir().expect("temp dir");
    let auditor = Auditor::start(&bus.server, index.path()).await;
    auditor.wait_indexed(garbage).await;
    let hits = auditor.search("type:unreadable").await;
    assert_eq!(sequences(&hits), [garbage], "{hits}");
    assert_eq!(auditor.search("hunter2password").await["total"], 0);
    assert!(!hits.to_string().contains("hunter2"), "{hits}");
    auditor.stop().await;
}
