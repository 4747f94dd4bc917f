//! Server configuration: rollout timing, watch history, the fault and load knobs, and RBAC.

use std::time::Duration;

/// Faults for reliability tests; all off by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Added before every request is answered.
    pub latency: Duration,
    /// Fraction (0.0..=1.0) of writes answered with a 500 InternalError instead.
    pub write_error_rate: f64,
    /// Watch connections are closed after this long (the client must re-watch).
    pub drop_watch_after: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How long a workload takes to converge its status to its spec.
    pub rollout_delay: Duration,
    /// Events kept for watch resumption; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    pub faults: Faults,
    /// Serve HTTPS with a self-signed certificate (the kubeconfig carries it as its CA).
    pub tls: bool,
    /// Authorize resource requests with these roles (see `rbac`); none: everything allowed.
    pub rbac: Option<std::sync::Arc<crate::rbac::Rbac>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rollout_delay: Duration::from_millis(200),
            watch_history: 50_000,
            bookmark_interval: Duration::from_secs(10),
            faults: Faults::default(),
            tls: false,
            rbac: None,
        }
    }
}
