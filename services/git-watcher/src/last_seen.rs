//! The git-watcher's memory of one source, rebuilt from the log: the last commit seen on its branch,
//! and whether that commit still needs its commit-detected event (after a rewrite).

use configsync_core::event::{EventData, Received};
use configsync_core::fold::LogState;
use configsync_core::log::{EventLog, Fold, ReplayError, Start, Until, replay_filtered};
use configsync_core::names::SourceId;

/// What the log says about one source (a branch of a repository).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastSeen {
    /// The last commit seen (from a commit-detected or source-rewritten event); `None` when
    /// this branch was never followed.
    pub sha: Option<String>,
    /// True when the last event was a rewrite whose new tip has no commit-detected event yet
    /// (the process stopped between the two), so the tip is announced first thing.
    /// Set when the last event was a rewrite whose new tip was not announced yet: the head
    /// the branch was rewritten from.
    pub rewritten_from: Option<String>,
}

/// [`LogState`] (which already folds the last commit per branch) plus the rewrite bookkeeping.
struct SourceFold<'a> {
    source: &'a SourceId,
    state: LogState,
    rewritten_from: Option<String>,
}

impl Fold for SourceFold<'_> {
    fn apply(&mut self, event: &Received) {
        let before = self.state.sequence;
        self.state.apply(event);
        if self.state.sequence == before {
            // Already folded: LogState ignored it, so must we.
            return;
        }
        match &event.data {
            EventData::CommitDetected(c) if is(self.source, &c.repository, &c.branch, &c.path) => {
                self.rewritten_from = None;
            }
            EventData::SourceRewritten(r) if is(self.source, &r.repository, &r.branch, &r.path) => {
                self.rewritten_from = Some(r.previous_sha.clone());
            }
            _ => {}
        }
    }
}

fn is(source: &SourceId, repository: &str, branch: &str, path: &Option<String>) -> bool {
    source.repository == repository && source.branch == branch && &source.path == path
}

/// Replays the log's source events to find what was last seen of `source` (its repository
/// already redacted).
pub async fn last_seen(log: &EventLog, source: &SourceId) -> Result<LastSeen, ReplayError> {
    let mut fold = SourceFold {
        source,
        state: LogState::default(),
        rewritten_from: None,
    };
    replay_filtered(
        &log.js,
        log.stream(),
        configsync_core::subject::UNROUTED_EVENTS,
        Start::Beginning,
        Until::End,
        &mut fold,
    )
    .await?;
    let sha = fold.state.sources.get(source).map(|s| s.last_sha.clone());
    Ok(LastSeen {
        rewritten_from: fold.rewritten_from.filter(|_| sha.is_some()),
        sha,
    })
}
