//! Reporting source failures without flooding: one `source.failed` event when a failure starts
//! or its reason changes, not one per poll.

/// Remembers the failure last reported.
#[derive(Debug, Default)]
pub struct FailureReporter {
    current: Option<String>,
}

impl FailureReporter {
    /// Records a failed poll; true when it must be published (a new failure or a new reason).
    pub fn failed(&mut self, reason: &str) -> bool {
        if self.current.as_deref() == Some(reason) {
            return false;
        }
        self.current = Some(reason.to_string());
        true
    }

    /// Forgets a failure whose event could not be published, so the next poll tries again.
    pub fn unreported(&mut self) {
        self.current = None;
    }

    /// Records a successful poll; true when it ends a failure.
    pub fn recovered(&mut self) -> bool {
        self.current.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_per_failure_and_again_when_the_reason_changes() {
        let mut r = FailureReporter::default();
        assert!(r.failed("unreachable"));
        assert!(!r.failed("unreachable"));
        assert!(r.failed("not a repository"));
        assert!(r.recovered());
        assert!(!r.recovered());
        assert!(
            r.failed("not a repository"),
            "a failure after a recovery is new"
        );
        r.unreported();
        assert!(
            r.failed("not a repository"),
            "an unpublished failure is retried"
        );
    }
}
