//! Restart: the auditor resumes from the last indexed sequence on the same index directory,
//! indexes what was published while it was down, and never indexes an entry twice.

use std::collections::BTreeSet;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_from_the_last_indexed_sequence_without_duplicates() {
    let bus = Bus::start().await;
    let index = tempfile::tempdir().expect("temp dir");
    let mut last = 0;
    for n in 0..5 {
        last = bus.publish(&health(n)).await;
    }

    let auditor = Auditor::start(&bus.server, index.path()).await;
    let status = auditor.wait_indexed(last).await;
    assert_eq!(status["documents"], 5, "{status}");
    let (code, _) = get(auditor.running.ops_addr, "/readyz").await;
    assert_eq!(code, 200, "ready once caught up");
    let (_, metrics) = get(auditor.running.ops_addr, "/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains(&format!("configsync_audit_indexed_sequence {last}")),
        "{metrics}"
    );
    auditor.stop().await;

    // Published while the auditor is down.
    let mut down = Vec::new();
    for n in 5..8 {
        down.push(bus.publish(&health(n)).await);
    }
    let before_restart = down[down.len() - 1];

    let auditor = Auditor::start(&bus.server, index.path()).await;
    let status = auditor.wait_indexed(before_restart).await;
    assert_eq!(status["indexed_sequence"], before_restart, "{status}");
    assert_eq!(
        status["documents"], 8,
        "no duplicates after the restart: {status}"
    );
    let everything = auditor.search("").await;
    assert_eq!(everything["total"], 8);
    let seqs = sequences(&everything);
    let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len(), 8, "each entry once: {seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    for seq in &down {
        assert!(
            distinct.contains(seq),
            "{seq} was indexed after the restart"
        );
    }
    // Those published while it was down are searchable by field.
    assert_eq!(sequences(&auditor.search("revision:rev6").await), [down[1]]);

    // And it keeps following.
    let live = bus.publish(&health(9)).await;
    let status = auditor.wait_indexed(live).await;
    assert_eq!(status["documents"], 9, "{status}");
    auditor.stop().await;

    // A third start with nothing new: nothing re-indexed, ready at once.
    let auditor = Auditor::start(&bus.server, index.path()).await;
    let status = auditor.wait_indexed(live).await;
    assert_eq!(status["documents"], 9, "{status}");
    auditor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_ahead_of_a_recreated_log_is_rebuilt_from_it() {
    let index = tempfile::tempdir().expect("temp dir");
    {
        let old = Bus::start().await;
        let mut last = 0;
        for n in 0..4 {
            last = old.publish(&health(n)).await;
        }
        let auditor = Auditor::start(&old.server, index.path()).await;
        auditor.wait_indexed(last).await;
        auditor.stop().await;
    }
    // A new, shorter log (the store was wiped): the old documents must go.
    let bus = Bus::start().await;
    let only = bus.publish(&commit("f00d", "fresh start")).await;
    let auditor = Auditor::start(&bus.server, index.path()).await;
    let status = auditor.wait_indexed(only).await;
    assert_eq!(status["documents"], 1, "{status}");
    assert_eq!(sequences(&auditor.search("").await), [only]);
    auditor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_another_log_as_long_is_rebuilt_from_this_one() {
    let index = tempfile::tempdir().expect("temp dir");
    {
        let old = Bus::start().await;
        let mut last = 0;
        for n in 0..2 {
            last = old.publish(&health(n)).await;
        }
        let auditor = Auditor::start(&old.server, index.path()).await;
        auditor.wait_indexed(last).await;
        auditor.stop().await;
    }
    // Another log, longer than the old one, with other events at the same sequences.
    let bus = Bus::start().await;
    let mut seqs = Vec::new();
    for sha in ["a1", "b2", "c3"] {
        seqs.push(bus.publish(&commit(sha, "another history")).await);
    }
    let auditor = Auditor::start(&bus.server, index.path()).await;
    let status = auditor.wait_indexed(seqs[2]).await;
    assert_eq!(status["documents"], 3, "{status}");
    let hits = auditor.search("").await;
    assert_eq!(hits["total"], 3);
    assert!(
        hits["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .all(|h| h["type"] == "io.configsync.commit.detected.v1"),
        "{hits}"
    );
    auditor.stop().await;
}
