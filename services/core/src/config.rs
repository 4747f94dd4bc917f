//! Configuration shared by every binary (clap derive; every flag is also an env var) and the
//! NATS connection (user and password, TLS) with retries up to a deadline.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    #[command(flatten)]
    pub auth: NatsAuth,
    /// How long to keep retrying when NATS is unreachable at start before exiting non-zero.
    #[arg(long, env = "CONFIGSYNC_CONNECT_DEADLINE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub connect_deadline: Duration,
}

/// Who connects to NATS and how the server is trusted: user and password, TLS. Apart from the
/// URL so that `configsync up` can take them for a NATS it does not start.
#[derive(clap::Args, Clone, Default)]
pub struct NatsAuth {
    /// NATS user name (each service has its own; see nats/).
    #[arg(long, env = "CONFIGSYNC_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password for --nats-user.
    #[arg(long, env = "CONFIGSYNC_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// CA certificate(s), PEM, that signed the NATS server's certificate (instead of the
    /// system's trust store). Makes TLS required.
    #[arg(long, env = "CONFIGSYNC_NATS_CA", value_parser = readable_file)]
    pub nats_ca: Option<PathBuf>,
    /// Client certificate, PEM, for servers that verify clients (mutual TLS); with --nats-key.
    /// Makes TLS required.
    #[arg(long, env = "CONFIGSYNC_NATS_CERT", value_parser = readable_file, requires = "nats_key")]
    pub nats_cert: Option<PathBuf>,
    /// Private key, PEM, of --nats-cert.
    #[arg(long, env = "CONFIGSYNC_NATS_KEY", value_parser = readable_file, requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,
}

impl std::fmt::Debug for NatsAuth {
    // Never the password: a Debug print of a service's configuration may reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsAuth")
            .field("nats_user", &self.nats_user)
            .field(
                "nats_password",
                &self.nats_password.as_ref().map(|_| "<hidden>"),
            )
            .field("nats_ca", &self.nats_ca)
            .field("nats_cert", &self.nats_cert)
            .field("nats_key", &self.nats_key)
            .finish()
    }
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

/// A file that exists and can be read, so that a wrong path is refused with the flags.
fn readable_file(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    std::fs::File::open(&path).map_err(|e| format!("cannot read {value}: {e}"))?;
    Ok(path)
}

/// Why connecting failed. The URL is always shown without credentials, and a password never.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("nats at {url} unreachable for {waited:?} (deadline): {reason}")]
    Unreachable {
        url: String,
        waited: Duration,
        reason: String,
    },
    /// The server refused the credentials: retrying would not help.
    #[error("nats at {url} refused {who}: {reason}")]
    Refused {
        url: String,
        /// Whose credentials: `user applier (...)`, never a password.
        who: String,
        reason: String,
    },
    /// The TLS handshake failed on a certificate or the server's TLS requirements: retrying
    /// would not help.
    #[error("TLS with nats at {url} failed: {reason}{hint}")]
    Tls {
        url: String,
        reason: String,
        hint: String,
    },
    #[error("invalid nats options: {0}")]
    Options(String),
}

impl NatsArgs {
    /// Whose credentials the server refused, for [`ConnectError::Refused`].
    fn who(&self) -> String {
        match &self.auth.nats_user {
            Some(user) => {
                format!("user {user} (wrong password, or a user the server does not know)")
            }
            // NATS also takes `user:password@` in the URL; the URL is shown without it.
            None if self.nats_url != crate::credentials::redact_url(&self.nats_url) => {
                "the credentials in --nats-url".into()
            }
            None => {
                "a connection without credentials (give --nats-user and --nats-password)".into()
            }
        }
    }
}

impl NatsArgs {
    /// Args for a URL with default options (tests, tools).
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            nats_url: url.into(),
            auth: NatsAuth::default(),
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
            let user = self.auth.nats_user.clone().unwrap_or_default();
            let mut options = async_nats::ConnectOptions::new()
                .name(client_name)
                .connection_timeout(Duration::from_secs(5))
                .event_callback(move |event| {
                    let user = user.clone();
                    async move {
                        match event {
                            async_nats::Event::Disconnected => {
                                tracing::warn!("nats disconnected, reconnecting")
                            }
                            async_nats::Event::Connected => tracing::debug!("nats connected"),
                            // A permissions violation arrives here, not at the publish or
                            // request that caused it (which only times out): say it loudly.
                            async_nats::Event::ServerError(error) => {
                                tracing::warn!(user, error = %error, "nats server error")
                            }
                            other => tracing::debug!(event = %other, "nats client event"),
                        }
                    }
                });
            match (&self.auth.nats_user, &self.auth.nats_password) {
                (Some(u), Some(p)) => options = options.user_and_password(u.clone(), p.clone()),
                (None, None) => {}
                _ => {
                    return Err(ConnectError::Options(
                        "--nats-user and --nats-password go together".into(),
                    ));
                }
            }
            if let Some(ca) = &self.auth.nats_ca {
                options = options.add_root_certificates(ca.clone()).require_tls(true);
            }
            match (&self.auth.nats_cert, &self.auth.nats_key) {
                (Some(cert), Some(key)) => {
                    options = options
                        .add_client_certificate(cert.clone(), key.clone())
                        .require_tls(true)
                }
                (None, None) => {}
                _ => {
                    return Err(ConnectError::Options(
                        "--nats-cert and --nats-key go together".into(),
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
                Err(e) if is_refusal(&e) => {
                    return Err(ConnectError::Refused {
                        url: shown,
                        who: self.who(),
                        reason: crate::credentials::redact_urls_in(&e.to_string()),
                    });
                }
                Err(e) if let Some(tls) = tls_failure(&e) => {
                    return Err(ConnectError::Tls {
                        url: shown,
                        reason: crate::credentials::redact_urls_in(&e.to_string()),
                        hint: self.tls_hint(tls),
                    });
                }
                Err(e) => {
                    let waited = started.elapsed();
                    let reason = crate::credentials::redact_urls_in(&e.to_string());
                    if waited >= self.connect_deadline {
                        return Err(ConnectError::Unreachable {
                            url: shown,
                            waited,
                            reason,
                        });
                    }
                    let delay = backoff
                        .next_delay()
                        .min(self.connect_deadline.saturating_sub(waited))
                        .max(Duration::from_millis(50));
                    tracing::warn!(url = %shown, error = %reason, retry_in = ?delay, deadline = ?self.connect_deadline, "nats unreachable, retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// What went wrong in a TLS handshake, as far as the client can tell.
enum TlsFailure {
    /// The server's certificate is not signed by a CA the client trusts.
    UnknownIssuer,
    /// The server's certificate does not name the host of the URL.
    WrongName,
    /// The server wants a client certificate.
    CertificateRequired,
    /// The server refused the client certificate.
    CertificateRefused,
    /// Anything else the TLS layer or the TLS options refused.
    Other,
}

impl NatsArgs {
    /// What to check, after a TLS failure.
    fn tls_hint(&self, failure: TlsFailure) -> String {
        match failure {
            TlsFailure::UnknownIssuer => match &self.auth.nats_ca {
                Some(ca) => format!(
                    " (the server's certificate is not signed by the CA of --nats-ca {})",
                    ca.display()
                ),
                None => " (the server's certificate is not signed by a CA of the system's trust store: give its CA with --nats-ca)".into(),
            },
            TlsFailure::WrongName => {
                " (the server's certificate does not name the host of --nats-url)".into()
            }
            TlsFailure::CertificateRequired => {
                " (the server verifies clients: give --nats-cert and --nats-key)".into()
            }
            TlsFailure::CertificateRefused => match &self.auth.nats_cert {
                Some(cert) => format!(
                    " (the server does not accept the certificate of --nats-cert {}: is it signed by the server's CA, and current?)",
                    cert.display()
                ),
                None => String::new(),
            },
            TlsFailure::Other => String::new(),
        }
    }
}

/// Whether the server refused the credentials (or their absence).
fn is_refusal(error: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind;
    matches!(
        error.kind(),
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication
    )
}

/// Whether the connection failed in TLS: its setup (kind `Tls`: unreadable CA, certificate or
/// key, TLS required but not offered), or the handshake, which async-nats reports as an I/O
/// error wrapping rustls' own.
fn tls_failure(error: &async_nats::ConnectError) -> Option<TlsFailure> {
    use async_nats::rustls::{AlertDescription, CertificateError, Error as Rustls};
    let rustls = rustls_error(error);
    if rustls.is_none() && error.kind() != async_nats::ConnectErrorKind::Tls {
        return None;
    }
    Some(match rustls {
        Some(Rustls::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            TlsFailure::UnknownIssuer
        }
        Some(Rustls::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => TlsFailure::WrongName,
        Some(Rustls::AlertReceived(AlertDescription::CertificateRequired)) => {
            TlsFailure::CertificateRequired
        }
        Some(Rustls::AlertReceived(
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        )) => TlsFailure::CertificateRefused,
        _ => TlsFailure::Other,
    })
}

/// The rustls error somewhere in `error`'s chain. I/O errors are looked into by hand: their
/// `source()` skips the error they wrap.
fn rustls_error(error: &async_nats::ConnectError) -> Option<&async_nats::rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<async_nats::rustls::Error>() {
            return Some(found);
        }
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}
