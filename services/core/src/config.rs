//! Configuration shared by every binary (clap derive; every flag is also an env var) and the
//! NATS connection with retries up to a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use crate::retry::Backoff;
use crate::telemetry::LogFormat;

/// How to reach NATS.
#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    /// NATS server URL; several may be given, comma-separated, for a cluster.
    #[arg(
        long = "nats-url",
        env = "CONFIGSYNC_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// NATS user name (each service has its own; see nats/).
    #[arg(long, env = "CONFIGSYNC_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password for --nats-user.
    #[arg(long, env = "CONFIGSYNC_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// How long to keep retrying when NATS is unreachable at start before exiting non-zero.
    #[arg(long, env = "CONFIGSYNC_CONNECT_DEADLINE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub connect_deadline: Duration,
}

/// Flags every service shares.
#[derive(clap::Args, Debug, Clone)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address of the /healthz, /readyz and /metrics endpoint (port 0 picks a free port).
    #[arg(long, env = "CONFIGSYNC_OPS_ADDR")]
    pub ops_addr: Option<SocketAddr>,
    /// This instance's name in event sources and logs (default: the host name and process id).
    #[arg(long, env = "CONFIGSYNC_INSTANCE")]
    pub instance: Option<String>,
    /// Log format.
    #[arg(long, env = "CONFIGSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

impl ServiceArgs {
    /// The instance name, defaulting to `<host>-<pid>`.
    pub fn instance_name(&self) -> String {
        self.instance.clone().unwrap_or_else(default_instance)
    }
}

fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "local".into());
    format!("{host}-{}", std::process::id())
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("nats at {url} unreachable for {waited:?} (deadline): {reason}")]
    Unreachable {
        url: String,
        waited: Duration,
        reason: String,
    },
    #[error("invalid nats options: {0}")]
    Options(String),
}

impl NatsArgs {
    /// Args for a URL with default options (tests, tools).
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            nats_url: url.into(),
            nats_user: None,
            nats_password: None,
            connect_deadline: Duration::from_secs(30),
        }
    }

    /// Connects, retrying with backoff until the connect deadline. Once connected, the client
    /// reconnects by itself for as long as the process runs.
    pub async fn connect(&self, client_name: &str) -> Result<async_nats::Client, ConnectError> {
        let started = tokio::time::Instant::now();
        let shown = crate::credentials::redact_url(&self.nats_url);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let mut options = async_nats::ConnectOptions::new()
                .name(client_name)
                .connection_timeout(Duration::from_secs(5))
                .event_callback(|event| async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            tracing::warn!("nats disconnected, reconnecting")
                        }
                        async_nats::Event::Connected => tracing::debug!("nats connected"),
                        other => tracing::debug!(event = %other, "nats client event"),
                    }
                });
            match (&self.nats_user, &self.nats_password) {
                (Some(u), Some(p)) => options = options.user_and_password(u.clone(), p.clone()),
                (None, None) => {}
                _ => {
                    return Err(ConnectError::Options(
                        "--nats-user and --nats-password go together".into(),
                    ));
                }
            }
            let urls: Vec<&str> = self
                .nats_url
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect();
            match options.connect(urls.as_slice()).await {
                Ok(client) => {
                    tracing::info!(url = %shown, "connected to nats");
                    return Ok(client);
                }
                Err(e) => {
                    let waited = started.elapsed();
                    if waited >= self.connect_deadline {
                        return Err(ConnectError::Unreachable {
                            url: shown,
                            waited,
                            reason: e.to_string(),
                        });
                    }
                    let delay = backoff
                        .next_delay()
                        .min(self.connect_deadline.saturating_sub(waited))
                        .max(Duration::from_millis(50));
                    tracing::warn!(url = %shown, error = %e, retry_in = ?delay, deadline = ?self.connect_deadline, "nats unreachable, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
