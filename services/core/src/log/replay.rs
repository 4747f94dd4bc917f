//! Reading the log in order: replaying it into a fold (state at any sequence or time) and
//! following it live (`configsync events tail`). Both use an ordered, ephemeral consumer, so
//! readers leave nothing behind on the server.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::binding;
use crate::event::{Received, payload_of};
use crate::subject;

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first event.
    Beginning,
    /// The event with this stream sequence (or the next one after it).
    Sequence(u64),
    /// The first event stored at or after this time.
    Time(DateTime<Utc>),
    /// Only events stored after the read begins.
    New,
}

impl std::str::FromStr for Start {
    type Err = String;
    /// `begin`, `new`, a sequence number, or an RFC 3339 time.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "begin" | "beginning" | "start" => Ok(Self::Beginning),
            "new" | "now" => Ok(Self::New),
            _ => {
                if let Ok(seq) = s.parse::<u64>() {
                    return Ok(if seq <= 1 {
                        Self::Beginning
                    } else {
                        Self::Sequence(seq)
                    });
                }
                DateTime::parse_from_rfc3339(s)
                    .map(|t| Self::Time(t.with_timezone(&Utc)))
                    .map_err(|_| {
                        format!(
                            "{s:?} is not `begin`, `new`, a stream sequence or an RFC 3339 time"
                        )
                    })
            }
        }
    }
}

/// Where a replay stops (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The last event stored when the replay began.
    End,
    Sequence(u64),
    Time(DateTime<Utc>),
}

/// State rebuilt from events. Implementations must be deterministic: the same events in the
/// same order give the same state, however and whenever they are read.
pub trait Fold {
    fn apply(&mut self, event: &Received);
}

/// One read item: an event, or a message in the log that is not a readable event (kept in
/// the stream, dead-lettered by live consumers, reported here and skipped by folds).
#[derive(Debug, Clone)]
pub enum Entry {
    Event(Box<Received>),
    Unreadable {
        stream_sequence: u64,
        subject: String,
        reason: String,
    },
}

impl Entry {
    pub fn stream_sequence(&self) -> u64 {
        match self {
            Self::Event(e) => e.stream_sequence,
            Self::Unreadable {
                stream_sequence, ..
            } => *stream_sequence,
        }
    }
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
}

/// What a replay covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub events: u64,
    pub unreadable: u64,
    /// The sequence of the last entry applied (0 when none).
    pub last_sequence: u64,
}

/// An ordered reader over the stream.
pub struct Reader {
    messages: jetstream::consumer::pull::Ordered,
    stream: String,
    /// Messages matching the filter not yet delivered, as the server last said (at open, then
    /// with each message): 0 means the reader has caught up with the log.
    pending: Option<u64>,
}

impl Reader {
    /// Opens a reader from `start`, optionally filtered to one subject filter.
    pub async fn open(
        js: &jetstream::Context,
        stream: &str,
        start: Start,
        filter: Option<&str>,
    ) -> Result<Self, ReplayError> {
        let err = |reason: String| ReplayError::Stream {
            stream: stream.to_string(),
            reason,
        };
        let handle = js
            .get_stream_no_info(stream)
            .await
            .map_err(|e| err(e.to_string()))?;
        let deliver_policy = match start {
            Start::Beginning => DeliverPolicy::All,
            Start::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            Start::Time(t) => DeliverPolicy::ByStartTime { start_time: t },
            Start::New => DeliverPolicy::New,
        };
        let config = OrderedConfig {
            deliver_policy,
            filter_subject: filter.unwrap_or(">").to_string(),
            ..Default::default()
        };
        let mut consumer = handle
            .create_consumer(config)
            .await
            .map_err(|e| err(e.to_string()))?;
        let pending = consumer.info().await.ok().map(|info| info.num_pending);
        let messages = consumer.messages().await.map_err(|e| err(e.to_string()))?;
        Ok(Self {
            messages,
            stream: stream.to_string(),
            pending,
        })
    }

    /// Whether every message matching the filter has been delivered (as of the last one).
    pub fn caught_up(&self) -> bool {
        self.pending == Some(0)
    }

    /// The next entry, or `None` if the server closed the reader.
    pub async fn next(&mut self) -> Option<Result<Entry, ReplayError>> {
        let message = match self.messages.next().await? {
            Ok(m) => m,
            Err(e) => {
                return Some(Err(ReplayError::Stream {
                    stream: self.stream.clone(),
                    reason: e.to_string(),
                }));
            }
        };
        // The ack subject is parsed once, for the position and the pending count.
        let info = message.info().ok();
        self.pending = info.as_ref().map(|i| i.pending);
        let position = info.map(|i| (i.stream_sequence, i.published));
        Some(Ok(entry_of(&message, position)))
    }
}

/// The entry of `message` stored at `position` (stream sequence, time).
fn entry_of(message: &jetstream::Message, position: Option<(u64, DateTime<Utc>)>) -> Entry {
    let (stream_sequence, stored_at) = position.unwrap_or((0, DateTime::<Utc>::MIN_UTC));
    let subject = message.subject.to_string();
    let decoded = binding::decode(message.headers.as_ref(), &message.payload)
        .map_err(|e| e.to_string())
        .and_then(|event| {
            payload_of(&event)
                .map(|data| (event, data))
                .map_err(|e| e.to_string())
        });
    match decoded {
        Ok((event, data)) => Entry::Event(Box::new(Received {
            event,
            data,
            subject,
            stream_sequence,
            stored_at,
            delivered: 1,
        })),
        Err(reason) => Entry::Unreadable {
            stream_sequence,
            subject,
            reason,
        },
    }
}

/// The stream's last sequence now (0 when empty).
pub async fn last_sequence(js: &jetstream::Context, stream: &str) -> Result<u64, ReplayError> {
    let err = |reason: String| ReplayError::Stream {
        stream: stream.to_string(),
        reason,
    };
    let mut handle = js
        .get_stream(stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    let info = handle.info().await.map_err(|e| err(e.to_string()))?;
    Ok(info.state.last_sequence)
}

/// Replays events from `start` to `until` into `fold`. Only events under
/// `configsync.evt.>` are folded (dead letters are not state).
pub async fn replay<F: Fold>(
    js: &jetstream::Context,
    stream: &str,
    start: Start,
    until: Until,
    fold: &mut F,
) -> Result<ReplayStats, ReplayError> {
    replay_filtered(js, stream, subject::ALL_EVENTS, start, until, fold).await
}

/// Replays only the events on `filter` (a subject filter under `configsync.evt.>`), for a fold
/// that needs a few types out of a long log (the git-watcher's commits, the drift-watcher's
/// drifts): the server skips the rest.
pub async fn replay_filtered<F: Fold>(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    start: Start,
    until: Until,
    fold: &mut F,
) -> Result<ReplayStats, ReplayError> {
    let end = last_sequence(js, stream).await?;
    let mut stats = ReplayStats::default();
    let first = match start {
        Start::Sequence(s) => s,
        _ => 1,
    };
    if end == 0 || first > end || start == Start::New {
        return Ok(stats);
    }
    let mut reader = Reader::open(js, stream, start, Some(filter)).await?;
    if reader.caught_up() {
        return Ok(stats);
    }
    loop {
        // The reader never ends by itself: it stops when it has caught up (the server's pending
        // count) or reaches the end of the log as it was; the idle timeout is a safety net.
        let next = match tokio::time::timeout(Duration::from_secs(2), reader.next()).await {
            Ok(Some(next)) => next?,
            Ok(None) | Err(_) => break,
        };
        let seq = next.stream_sequence();
        let past_until = match (&next, until) {
            (_, Until::End) => seq > end,
            (_, Until::Sequence(u)) => seq > u,
            (Entry::Event(e), Until::Time(t)) => e.stored_at > t,
            _ => false,
        };
        if past_until {
            break;
        }
        match &next {
            Entry::Event(e) => {
                fold.apply(e);
                stats.events += 1;
            }
            Entry::Unreadable {
                stream_sequence,
                reason,
                ..
            } => {
                tracing::warn!(stream.sequence = stream_sequence, %reason, "skipping unreadable entry");
                stats.unreadable += 1;
            }
        }
        stats.last_sequence = seq;
        if seq >= end || reader.caught_up() {
            break;
        }
    }
    Ok(stats)
}

/// The last event stored on one subject (a target's subject space makes this "the latest
/// apply of this target", "the latest validation of this environment"), or `None`.
/// An unreadable last message counts as none: live consumers dead-letter it.
pub async fn last_event(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Option<Received>, ReplayError> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let err = |reason: String| ReplayError::Stream {
        stream: stream.to_string(),
        reason,
    };
    let handle = js
        .get_stream_no_info(stream)
        .await
        .map_err(|e| err(e.to_string()))?;
    let message = match handle.get_last_raw_message_by_subject(subject).await {
        Ok(m) => m,
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let decoded = binding::decode(Some(&message.headers), &message.payload)
        .ok()
        .and_then(|event| payload_of(&event).ok().map(|data| (event, data)));
    Ok(decoded.map(|(event, data)| Received {
        event,
        data,
        subject: message.subject.to_string(),
        stream_sequence: message.sequence,
        stored_at: message.time,
        delivered: 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_parses_every_form() {
        assert_eq!("begin".parse::<Start>(), Ok(Start::Beginning));
        assert_eq!("1".parse::<Start>(), Ok(Start::Beginning));
        assert_eq!("42".parse::<Start>(), Ok(Start::Sequence(42)));
        assert!(matches!(
            "2026-11-26T06:00:00Z".parse::<Start>(),
            Ok(Start::Time(_))
        ));
        assert!("yesterday".parse::<Start>().is_err());
    }
}
