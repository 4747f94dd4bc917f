//! Watch streams: newline-delimited JSON events over a chunked response.

use crate::registry::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventType, Store, WatchStart, matches, present_shared};
use bytes::Bytes;
use serde_json::{Value, json};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

pub struct WatchParams {
    pub namespace: Option<String>,
    pub start: WatchStart,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: ADDED for every object, then a bookmark that says so.
    pub initial_events: bool,
    pub timeout: Option<Duration>,
    pub bookmark_interval: Duration,
    pub drop_after: Option<Duration>,
    /// Counts watches that the drop fault ended, so tests can tell a drop happened.
    pub dropped: Arc<AtomicU64>,
}

/// Parses a watch `resourceVersion`; garbage is a 400, as in Kubernetes.
pub fn parse_start(rv: Option<&str>) -> Result<WatchStart, ApiError> {
    match rv {
        None | Some("") | Some("0") => Ok(WatchStart::Now),
        Some(s) => s
            .parse()
            .map(WatchStart::After)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}"))),
    }
}

#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    object: &'a Value,
}

/// One event line, serialised straight from the stored object (no copy of it).
fn line(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Which event, if any, this watcher sees: leaving or entering the selection is
/// DELETED or ADDED.
fn translate(ev: &Event, key: &str, p: &WatchParams) -> Option<EventType> {
    if ev.storage_key != key || p.namespace.as_ref().is_some_and(|n| *n != ev.namespace) {
        return None;
    }
    let now = matches(&ev.object, &p.labels, &p.fields);
    let before = ev
        .old
        .as_ref()
        .is_some_and(|o| matches(o, &p.labels, &p.fields));
    match ev.kind {
        EventType::Added => now.then_some(EventType::Added),
        EventType::Deleted => (before || now).then_some(EventType::Deleted),
        EventType::Modified => match (before, now) {
            (true, true) => Some(EventType::Modified),
            (false, true) => Some(EventType::Added),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        },
    }
}

/// Sends one line unless shutdown or the watch's end comes first: a client that stops
/// reading must not hold the watch (or a graceful shutdown) forever.
async fn deliver(
    tx: &mpsc::Sender<Bytes>,
    line: Bytes,
    shutdown: &CancellationToken,
    end: tokio::time::Instant,
) -> bool {
    tokio::select! {
        sent = tx.send(line) => sent.is_ok(),
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep_until(end) => false,
    }
}

/// Starts a watch; the stream of lines ends on timeout, shutdown, drop fault or client exit.
pub fn start(
    store: &Store,
    res: Resource,
    p: WatchParams,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let key = res.storage_key();
    let sub = match store.subscribe(&res, p.start) {
        Ok(s) => s,
        Err(e) => {
            // An expired resourceVersion is an ERROR event in a 200 stream, as Kubernetes does.
            let _ = tx.try_send(line("ERROR", &e.to_status()));
            return rx;
        }
    };
    tokio::spawn(async move {
        let far = Duration::from_secs(365 * 24 * 3600);
        let end =
            tokio::time::Instant::now() + p.timeout.unwrap_or(far).min(p.drop_after.unwrap_or(far));
        let mut last_rv = sub.rv;
        let send = |kind: &str, o: &Value| line(kind, o);
        for ev in &sub.backlog {
            if let Some(kind) = translate(ev, &key, &p)
                && !deliver(
                    &tx,
                    send(kind.as_str(), &present_shared(&res, &ev.object)),
                    &shutdown,
                    end,
                )
                .await
            {
                return;
            }
            last_rv = last_rv.max(ev.rv);
        }
        let bookmark = |rv: u64, initial_end: bool| {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line(
                "BOOKMARK",
                &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}),
            )
        };
        if p.initial_events && !deliver(&tx, bookmark(last_rv, true), &shutdown, end).await {
            return;
        }
        let mut ticks = tokio::time::interval(p.bookmark_interval.max(Duration::from_millis(10)));
        ticks.tick().await;
        let mut feed = sub.feed;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(end) => {
                    let dropped = p.drop_after.is_some_and(|d| p.timeout.is_none_or(|t| d <= t));
                    if dropped {
                        p.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(resource = %res.plural, dropped, "watch ended by timeout or drop fault");
                    return;
                }
                _ = ticks.tick(), if p.bookmarks => {
                    if !deliver(&tx, bookmark(last_rv, false), &shutdown, end).await {
                        return;
                    }
                }
                ev = feed.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(kind) = translate(&ev, &key, &p)
                            && !deliver(&tx, send(kind.as_str(), &present_shared(&res, &ev.object)), &shutdown, end).await {
                                return;
                            }
                    }
                    // A watcher too slow for the feed is cut off; it resumes from its last event.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(resource = %res.plural, skipped = n, "slow watcher dropped");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_versions() {
        assert_eq!(parse_start(None).expect("ok"), WatchStart::Now);
        assert_eq!(parse_start(Some("0")).expect("ok"), WatchStart::Now);
        assert_eq!(parse_start(Some("42")).expect("ok"), WatchStart::After(42));
        assert_eq!(parse_start(Some("garbage")).expect_err("bad").code, 400);
    }

    #[test]
    fn leaving_the_selection_is_deleted() {
        let p = WatchParams {
            namespace: None,
            start: WatchStart::Now,
            labels: LabelSelector::parse("app=web").expect("parses"),
            fields: FieldSelector::default(),
            bookmarks: false,
            initial_events: false,
            timeout: None,
            bookmark_interval: Duration::from_secs(1),
            drop_after: None,
            dropped: Arc::default(),
        };
        let ev = Event {
            kind: EventType::Modified,
            storage_key: "/configmaps".into(),
            namespace: "default".into(),
            rv: 2,
            object: Arc::new(json!({"metadata": {"labels": {"app": "api"}}})),
            old: Some(Arc::new(json!({"metadata": {"labels": {"app": "web"}}}))),
        };
        assert_eq!(translate(&ev, "/configmaps", &p), Some(EventType::Deleted));
        assert_eq!(translate(&ev, "/secrets", &p), None);
    }
}
