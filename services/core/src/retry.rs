//! Exponential backoff for retries of transient failures.

use std::time::Duration;

/// Doubles the delay from `initial` up to `max`, with up to 20% jitter so that replicas that
/// failed together do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            next: initial.min(max),
            max,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base + jitter(base / 5)
    }

    /// The delay before delivery attempt `attempt` (1-based) without keeping state: used for
    /// naks, where the delivery count comes from the server.
    pub fn delay_for_attempt(initial: Duration, max: Duration, attempt: u64) -> Duration {
        let exp = attempt.saturating_sub(1).min(20) as u32;
        initial.saturating_mul(2u32.saturating_pow(exp)).min(max)
    }
}

fn jitter(range: Duration) -> Duration {
    let nanos = range.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    // The clock's sub-second noise is random enough to spread retries; no RNG needed.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    Duration::from_nanos(seed % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let d: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(100) && d[0] < Duration::from_millis(121));
        assert!(d[1] >= Duration::from_millis(200));
        assert!(d[3] >= Duration::from_millis(350) && d[3] <= Duration::from_millis(420));
        assert_eq!(
            Backoff::delay_for_attempt(Duration::from_secs(1), Duration::from_secs(30), 1),
            Duration::from_secs(1)
        );
        assert_eq!(
            Backoff::delay_for_attempt(Duration::from_secs(1), Duration::from_secs(30), 3),
            Duration::from_secs(4)
        );
        assert_eq!(
            Backoff::delay_for_attempt(Duration::from_secs(1), Duration::from_secs(30), 99),
            Duration::from_secs(30)
        );
    }
}
