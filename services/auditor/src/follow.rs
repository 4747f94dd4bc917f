//! Follows the log from the index's last sequence and feeds the writer thread in batches:
//! a commit every `BATCH_MAX` entries, or `COMMIT_INTERVAL` after the first uncommitted one.
//! A [`Rebuild`] request empties the index and reads the log again from its start (after a
//! change of the redaction rules, say, so that nothing they now hide stays indexed).

use std::time::Duration;

use async_nats::jetstream::stream::LastRawMessageErrorKind;
use configsync_core::binding::MSG_ID_HEADER;
use configsync_core::log::{EventLog, Reader, Start};
use configsync_core::retry::Backoff;
use configsync_core::subject;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::index::{Batch, Command, Resume};
use crate::record::Record;

/// Most entries in one commit.
pub const BATCH_MAX: usize = 500;
/// Longest an indexed entry waits to become searchable.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(500);

/// A request to rebuild the index from the start of the log; `started` is answered once the
/// index is empty (and searches see it so), before the log is read again.
#[derive(Debug)]
pub struct Rebuild {
    pub started: oneshot::Sender<()>,
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("the audit index writer stopped")]
    WriterGone,
}

/// Reads every entry (events and dead letters) after `after` and sends them to `writer`,
/// until `shutdown`; then sends what is pending. `catch_up_to` is the log's end at start:
/// reaching it commits at once, so that readiness does not wait for the timer. A request on
/// `rebuilds` starts again from an empty index and the start of the log.
pub async fn follow(
    log: EventLog,
    after: u64,
    catch_up_to: u64,
    writer: mpsc::Sender<Command>,
    mut rebuilds: mpsc::Receiver<Rebuild>,
    shutdown: CancellationToken,
) -> Result<(), FollowError> {
    let mut last = after;
    let mut pending = Batch {
        records: Vec::new(),
        last_sequence: after,
    };
    let mut flush_at: Option<Instant> = None;
    let mut backoff = fresh_backoff();
    'open: loop {
        let start = if last == 0 {
            Start::Beginning
        } else {
            Start::Sequence(last + 1)
        };
        let mut reader = tokio::select! {
            _ = shutdown.cancelled() => break 'open,
            opened = Reader::open(&log.js, log.stream(), start, Some(subject::EVERYTHING)) => match opened {
                Ok(r) => r,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot read the log, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'open,
                        _ = tokio::time::sleep(delay) => continue 'open,
                    }
                }
            },
        };
        tracing::info!(from = ?start, "following the log");
        loop {
            let timer = async {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break 'open,
                _ = timer => {
                    send(&writer, &mut pending).await?;
                    flush_at = None;
                }
                Some(request) = rebuilds.recv() => {
                    // What is pending belongs to the index being thrown away.
                    pending.records.clear();
                    pending.last_sequence = 0;
                    flush_at = None;
                    writer
                        .send(Command::Empty { done: request.started })
                        .await
                        .map_err(|_| FollowError::WriterGone)?;
                    last = 0;
                    tracing::info!("rebuilding the audit index from the start of the log");
                    continue 'open;
                }
                next = reader.next() => match next {
                    Some(Ok(entry)) => {
                        let seq = entry.stream_sequence();
                        // An ordered reader redelivers nothing, but a reopened one starts
                        // where asked; never index a sequence twice.
                        if seq <= last {
                            continue;
                        }
                        backoff = fresh_backoff();
                        last = seq;
                        pending.records.push(Record::of(&entry));
                        pending.last_sequence = seq;
                        if pending.records.len() >= BATCH_MAX || seq == catch_up_to {
                            send(&writer, &mut pending).await?;
                            flush_at = None;
                        } else if flush_at.is_none() {
                            flush_at = Some(Instant::now() + COMMIT_INTERVAL);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "log read failed, reopening");
                        break;
                    }
                    None => {
                        tracing::warn!("log reader closed, reopening");
                        break;
                    }
                },
            }
        }
        // Commit what was read before pausing, so a long outage does not hold it back.
        send(&writer, &mut pending).await?;
        flush_at = None;
        tokio::select! {
            _ = shutdown.cancelled() => break 'open,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
    if !pending.records.is_empty() {
        send(&writer, &mut pending).await?;
    }
    Ok(())
}

/// Whether the log still has, at the index's last sequence, the event the index last took
/// from there. True when that cannot be told (nothing indexed, an entry without an id, the
/// log unreachable): only a proven mismatch rebuilds the index.
pub async fn log_holds(log: &EventLog, resume: &Resume) -> bool {
    let (Some(id), true) = (&resume.id, resume.sequence > 0) else {
        return true;
    };
    let message = match log.js.get_stream_no_info(log.stream()).await {
        Ok(stream) => stream.get_raw_message(resume.sequence).await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the audit index against the log");
            return true;
        }
    };
    match message {
        Ok(message) => {
            // Events published by ConfigSync carry their id as `Nats-Msg-Id`; binary-mode
            // events from elsewhere as `ce-id`.
            let ids: Vec<&str> = [MSG_ID_HEADER, "ce-id"]
                .iter()
                .filter_map(|name| message.headers.get(*name).map(|v| v.as_str()))
                .collect();
            ids.is_empty() || ids.contains(&id.as_str())
        }
        // The sequence is not in this log.
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => false,
        Err(e) => {
            tracing::warn!(error = %e, stream.sequence = resume.sequence, "cannot check the audit index against the log");
            true
        }
    }
}

fn fresh_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
}

async fn send(writer: &mpsc::Sender<Command>, pending: &mut Batch) -> Result<(), FollowError> {
    if pending.records.is_empty() {
        return Ok(());
    }
    let batch = Batch {
        records: std::mem::take(&mut pending.records),
        last_sequence: pending.last_sequence,
    };
    writer
        .send(Command::Index(batch))
        .await
        .map_err(|_| FollowError::WriterGone)
}
