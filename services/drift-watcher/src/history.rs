//! What was already reported: the drift events of the log, folded into each target's
//! [`Reporter`] at start, so that a restart does not report the same drift again.

use std::collections::HashMap;

use configsync_core::event::Received;
use configsync_core::log::{EventLog, Fold, ReplayError, Start, Until, replay_filtered};
use configsync_core::names::Target;

use crate::report::Reporter;

/// Feeds drift events to the reporter of their target.
struct Seed<'a> {
    reporters: &'a mut HashMap<Target, Reporter>,
    folded: u64,
}

impl Fold for Seed<'_> {
    fn apply(&mut self, event: &Received) {
        if let (Some(env), Some(cluster)) = (event.environment(), event.cluster())
            && let Ok(target) = Target::parse(env, cluster)
            && let Some(reporter) = self.reporters.get_mut(&target)
        {
            reporter.seed(event);
            self.folded += 1;
        }
    }
}

/// Folds the log's drift events into `reporters` (keyed by target).
pub async fn seed(
    log: &EventLog,
    reporters: &mut HashMap<Target, Reporter>,
) -> Result<u64, ReplayError> {
    let mut seed = Seed {
        reporters,
        folded: 0,
    };
    replay_filtered(
        &log.js,
        log.stream(),
        &configsync_core::subject::domain_filter("drift"),
        Start::Beginning,
        Until::End,
        &mut seed,
    )
    .await?;
    Ok(seed.folded)
}
