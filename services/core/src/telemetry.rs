//! Logging setup for binaries: human-readable or JSON lines, filtered by `RUST_LOG`.
//!
//! Whatever `RUST_LOG` asks, the few log sites of dependencies that print message payloads are
//! held to a quieter level ([`PAYLOAD_LOGGERS`]): NATS messages carry rendered bundles, which
//! hold Secret values, and secrets never reach a log, at any level.

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Targets (and their modules) of dependencies that log payloads, with the most verbose level
/// kept for each.
pub const PAYLOAD_LOGGERS: [(&str, Level); 2] = [
    // `read operation completed` (TRACE) prints each message read, payload included: a bundle
    // read from the object store is every Secret of an environment.
    ("async_nats::connection", Level::DEBUG),
    // `JetStream request sent` / `JetStream request response` (DEBUG) print API bodies, which
    // carry a message's data when one is fetched by sequence.
    ("async_nats::jetstream::context", Level::INFO),
];

/// Whether an event or span of `meta` may be logged (the payload loggers held back).
fn allowed(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    !PAYLOAD_LOGGERS.iter().any(|(logger, most)| {
        let ours = target == *logger
            || target
                .strip_prefix(logger)
                .is_some_and(|rest| rest.starts_with("::"));
        // A more verbose level compares greater.
        ours && meta.level() > most
    })
}

/// Installs the global subscriber. Binaries call this once; libraries never do.
/// `RUST_LOG` overrides `default_filter` (e.g. `info`, `configsync_core=debug`).
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A second init (tests, `configsync up` embedding services) is harmless: keep the first.
    let _ = match format {
        LogFormat::Human => human(filter, std::io::stderr, ansi).try_init(),
        LogFormat::Json => json(filter, std::io::stderr).try_init(),
    };
}

fn human<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(allowed))
}

fn json<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(allowed))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines written, in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Lines {
        type Writer = Lines;
        fn make_writer(&'w self) -> Lines {
            self.clone()
        }
    }

    fn log_everything() {
        tracing::trace!(target: "async_nats::connection", op = "payload-trace", "read operation completed");
        tracing::debug!(target: "async_nats::connection", "connection-debug");
        tracing::debug!(target: "async_nats::jetstream::context", "JetStream request response: payload-debug");
        tracing::info!(target: "async_nats::jetstream::context", "context-info");
        tracing::trace!(target: "async_nats::connectionless", "neighbour-trace");
        tracing::trace!(target: "configsync_core::log", "ours-trace");
    }

    #[test]
    fn payload_loggers_are_held_back_at_trace_and_the_rest_kept() {
        for json_format in [false, true] {
            let lines = Lines::default();
            let filter = EnvFilter::new("trace");
            if json_format {
                tracing::subscriber::with_default(json(filter, lines.clone()), log_everything);
            } else {
                tracing::subscriber::with_default(
                    human(filter, lines.clone(), false),
                    log_everything,
                );
            }
            let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
            assert!(!text.contains("payload-"), "{text}");
            for kept in [
                "connection-debug",
                "context-info",
                "neighbour-trace",
                "ours-trace",
            ] {
                assert!(text.contains(kept), "{kept} missing from {text}");
            }
        }
    }
}
