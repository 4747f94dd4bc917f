//! What was already reported: the drift events of the log, folded into each target's
//! [`Reporter`] at start, so that a restart does not report the same drift again.

use std::collections::HashMap;
use std::time::Duration;

use configsync_core::log::replay::last_sequence;
use configsync_core::log::{Entry, EventLog, Reader, ReplayError, Start};

use crate::report::Reporter;

/// Every drift event of every target, from the beginning of the log.
const DRIFT_EVENTS: &str = "configsync.evt.*.*.drift.>";
/// A quiet reader means the filter has nothing more before the end of the log.
const IDLE: Duration = Duration::from_secs(1);

/// Folds the log's drift events into `reporters` (keyed by `env/cluster`).
pub async fn seed(
    log: &EventLog,
    reporters: &mut HashMap<String, Reporter>,
) -> Result<u64, ReplayError> {
    let end = last_sequence(&log.js, log.stream()).await?;
    if end == 0 {
        return Ok(0);
    }
    let mut reader =
        Reader::open(&log.js, log.stream(), Start::Beginning, Some(DRIFT_EVENTS)).await?;
    let mut folded = 0;
    while let Ok(Some(entry)) = tokio::time::timeout(IDLE, reader.next()).await {
        let entry = entry?;
        let sequence = entry.stream_sequence();
        if let Entry::Event(event) = entry
            && let (Some(env), Some(cluster)) = (event.environment(), event.cluster())
            && let Some(reporter) = reporters.get_mut(&format!("{env}/{cluster}"))
        {
            reporter.seed(&event);
            folded += 1;
        }
        if sequence >= end {
            break;
        }
    }
    Ok(folded)
}
