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

/// How the services that read Git (git-watcher, validator) reach the remote: credentials, the
/// host guard and the stall timeout. Each secret is read from a file or an environment
/// variable (a flag's value would be visible to every user of the machine in `ps`), never
/// from the repository, and never shown by `Debug`.
#[cfg(feature = "git")]
#[derive(clap::Args, Clone)]
pub struct GitRemoteArgs {
    /// Hosts that may be contacted (host names, addresses, or `*.domain`); when given, any
    /// other host is refused. Comma-separated or repeated.
    #[arg(
        long = "allow-host",
        env = "CONFIGSYNC_GIT_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<crate::git::HostPattern>,
    /// Allow remotes on loopback, link-local and other local-only addresses (a remote on this
    /// machine). Cloud metadata addresses stay refused unless named in --allow-host.
    #[arg(long, env = "CONFIGSYNC_GIT_ALLOW_PRIVATE_HOSTS")]
    pub allow_private_hosts: bool,
    /// How long a remote may take to accept a connection, or stay silent during a fetch,
    /// before the fetch fails (and is retried with backoff).
    #[arg(long, env = "CONFIGSYNC_GIT_FETCH_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub fetch_timeout: Duration,
    /// User name for HTTP(S) basic authentication (with a password or a forge's access token).
    #[arg(long, env = "CONFIGSYNC_GIT_HTTP_USERNAME")]
    pub http_username: Option<String>,
    /// File holding the HTTP(S) password or access token for --http-username.
    #[arg(long, env = "CONFIGSYNC_GIT_HTTP_PASSWORD_FILE", value_parser = readable_file, conflicts_with = "http_password")]
    pub http_password_file: Option<PathBuf>,
    /// The HTTP(S) password for --http-username; prefer the environment variable or
    /// --http-password-file to the flag.
    #[arg(long, env = "CONFIGSYNC_GIT_HTTP_PASSWORD", hide_env_values = true)]
    pub http_password: Option<String>,
    /// File holding a bearer token sent as `Authorization: Bearer` over HTTP(S).
    #[arg(long, env = "CONFIGSYNC_GIT_HTTP_TOKEN_FILE", value_parser = readable_file, conflicts_with_all = ["http_token", "http_username"])]
    pub http_token_file: Option<PathBuf>,
    /// The bearer token; prefer the environment variable or --http-token-file to the flag.
    #[arg(
        long,
        env = "CONFIGSYNC_GIT_HTTP_TOKEN",
        hide_env_values = true,
        conflicts_with = "http_username"
    )]
    pub http_token: Option<String>,
    /// Extra CA certificates (PEM) trusted for HTTPS remotes, besides the system's.
    #[arg(long, env = "CONFIGSYNC_GIT_CA_FILE", value_parser = readable_file)]
    pub git_ca_file: Option<PathBuf>,
    /// Private key for SSH remotes.
    #[arg(long, env = "CONFIGSYNC_GIT_SSH_KEY", value_parser = readable_file)]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file holding the SSH server's host key; a server whose key is not there
    /// is refused.
    #[arg(long, env = "CONFIGSYNC_GIT_SSH_KNOWN_HOSTS", value_parser = readable_file)]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Trust an SSH host key never seen before and record it in the known_hosts file (trust
    /// on first use). Off by default: the first connection could be to anyone.
    #[arg(long, env = "CONFIGSYNC_GIT_SSH_ACCEPT_NEW_HOST_KEYS")]
    pub ssh_accept_new_host_keys: bool,
}

#[cfg(feature = "git")]
impl std::fmt::Debug for GitRemoteArgs {
    // Never a password or token: a Debug print of a service's configuration may reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("GitRemoteArgs")
            .field("allow_hosts", &self.allow_hosts)
            .field("allow_private_hosts", &self.allow_private_hosts)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("http_username", &self.http_username)
            .field("http_password_file", &self.http_password_file)
            .field("http_password", &hidden(&self.http_password))
            .field("http_token_file", &self.http_token_file)
            .field("http_token", &hidden(&self.http_token))
            .field("git_ca_file", &self.git_ca_file)
            .field("ssh_key", &self.ssh_key)
            .field("ssh_known_hosts", &self.ssh_known_hosts)
            .field("ssh_accept_new_host_keys", &self.ssh_accept_new_host_keys)
            .finish()
    }
}

/// Why the Git remote options could not be read.
#[cfg(feature = "git")]
#[derive(Debug, thiserror::Error)]
pub enum GitArgsError {
    #[error("cannot read {what} from {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} in {path} is empty")]
    Empty { what: &'static str, path: PathBuf },
    #[error("{0}")]
    Combination(&'static str),
}

#[cfg(feature = "git")]
impl GitRemoteArgs {
    /// The options a mirror fetches with: secrets read from their files now, so that a
    /// missing file fails the start rather than the first fetch.
    pub fn remote_options(&self) -> Result<crate::git::RemoteOptions, GitArgsError> {
        use crate::git::{HostGuard, HttpAuth, RemoteOptions, SshOptions};
        let password = secret(
            "the HTTP password",
            &self.http_password_file,
            &self.http_password,
        )?;
        let token = secret("the HTTP token", &self.http_token_file, &self.http_token)?;
        let http = match (&self.http_username, password, token) {
            (Some(username), Some(password), None) => HttpAuth::Basic {
                username: username.clone(),
                password,
            },
            (None, None, Some(token)) => HttpAuth::Bearer(token),
            (None, None, None) => HttpAuth::None,
            (Some(_), None, _) => {
                return Err(GitArgsError::Combination(
                    "--http-username needs --http-password-file (or CONFIGSYNC_GIT_HTTP_PASSWORD)",
                ));
            }
            (None, Some(_), _) => {
                return Err(GitArgsError::Combination(
                    "an HTTP password needs --http-username",
                ));
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(GitArgsError::Combination(
                    "give either basic authentication or a bearer token, not both",
                ));
            }
        };
        Ok(RemoteOptions {
            guard: HostGuard {
                allow: self.allow_hosts.clone(),
                allow_private: self.allow_private_hosts,
            },
            timeout: self.fetch_timeout,
            http,
            ca_file: self.git_ca_file.clone(),
            ssh: SshOptions {
                key: self.ssh_key.clone(),
                known_hosts: self.ssh_known_hosts.clone(),
                accept_new_host_keys: self.ssh_accept_new_host_keys,
            },
        })
    }
}

/// A secret from its file (surrounding whitespace ignored: editors add a newline) or value.
#[cfg(feature = "git")]
fn secret(
    what: &'static str,
    file: &Option<PathBuf>,
    value: &Option<String>,
) -> Result<Option<crate::git::Secret>, GitArgsError> {
    let text = match (file, value) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|source| GitArgsError::Read {
                what,
                path: path.clone(),
                source,
            })?;
            if text.trim().is_empty() {
                return Err(GitArgsError::Empty {
                    what,
                    path: path.clone(),
                });
            }
            text.trim().to_string()
        }
        (None, Some(value)) => value.clone(),
        (None, None) => return Ok(None),
    };
    Ok(Some(crate::git::Secret::new(text)))
}

/// The poll interval when none is given: Flux polls every minute and Argo CD every three; 15 s
/// keeps a push without a webhook live within seconds at one small fetch per interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);
/// The shortest poll interval accepted: below it a fleet of watchers becomes load on the forge
/// (and its rate limits) for no gain a webhook would not give.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Value parser of poll intervals: a humantime duration (`15s`, `2m`) of at least
/// [`MIN_POLL_INTERVAL`].
pub fn poll_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < MIN_POLL_INTERVAL {
        return Err(format!(
            "a poll interval of {text} is below the minimum of {}",
            humantime::format_duration(MIN_POLL_INTERVAL)
        ));
    }
    Ok(interval)
}

/// One Git source: a branch of a repository, optionally only a sub-directory of it, polled at
/// its own interval. Written `NAME=URL[#BRANCH[:SUBDIR]][,interval=DURATION]` (the value
/// parser of `--source`): the branch defaults to `main`, the interval to the service's
/// `--poll-interval`. Git refuses `:` in branch names, so the sub-directory is unambiguous;
/// options follow the first `,` after the `#`.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// Names the source in events (`gitsource`) and logs: one subject token.
    pub name: crate::names::Name,
    /// The remote as configured (may hold a user name; never a password: refused later).
    pub url: String,
    pub branch: String,
    /// The sub-directory followed (relative, no `..`), whose `configs/` and `policies/` count.
    pub path: Option<String>,
    /// Its own poll interval, when not the service's.
    pub interval: Option<Duration>,
}

impl SourceSpec {
    /// The name of the one source given as `--repo`/`--branch`.
    pub const DEFAULT_NAME: &'static str = "default";

    /// The one source of `--repo URL --branch BRANCH` (the git-watcher and the validator read
    /// it alike).
    pub fn single(url: &str, branch: &str) -> Self {
        Self {
            name: crate::names::Name::new(Self::DEFAULT_NAME).expect("a valid name"),
            url: url.to_string(),
            branch: branch.to_string(),
            path: None,
            interval: None,
        }
    }

    /// The source's identity in the log (the URL's credentials removed).
    pub fn id(&self) -> crate::names::SourceId {
        crate::names::SourceId::new(crate::credentials::redact_url(&self.url), &self.branch)
            .with_path(self.path.clone())
    }
}

// By hand, so that a URL with credentials never reaches a log through `{:?}`.
impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("name", &self.name.as_str())
            .field("url", &crate::credentials::redact_url(&self.url))
            .field("branch", &self.branch)
            .field("path", &self.path)
            .field("interval", &self.interval)
            .finish()
    }
}

/// A sub-directory as a source may name it: relative, normalised, inside the repository.
fn source_path(path: &str) -> Result<Option<String>, String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(None);
    }
    if path.starts_with('/')
        || trimmed
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "sub-directory {path:?} must be a relative path inside the repository, without `.`, `..` or empty parts"
        ));
    }
    Ok(Some(trimmed.to_string()))
}

impl std::str::FromStr for SourceSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, rest) = text.split_once('=').ok_or_else(|| {
            "a source is written NAME=URL[#BRANCH[:SUBDIR]][,interval=DURATION]".to_string()
        })?;
        let name = crate::names::Name::new(name).map_err(|e| e.to_string())?;
        let (url, fragment) = match rest.rsplit_once('#') {
            Some((url, fragment)) => (url, Some(fragment)),
            None => (rest, None),
        };
        if url.is_empty() {
            return Err(format!("source {name} has no URL"));
        }
        let mut spec = Self {
            name,
            url: url.to_string(),
            branch: "main".into(),
            path: None,
            interval: None,
        };
        let Some(fragment) = fragment else {
            return Ok(spec);
        };
        let mut parts = fragment.split(',');
        let target = parts.next().unwrap_or_default();
        let (branch, path) = match target.split_once(':') {
            Some((branch, path)) => (branch, source_path(path)?),
            None => (target, None),
        };
        if branch.is_empty() {
            return Err(format!("source {} names an empty branch", spec.name));
        }
        spec.branch = branch.to_string();
        spec.path = path;
        for option in parts {
            match option.split_once('=') {
                Some(("interval", value)) => spec.interval = Some(poll_interval(value)?),
                _ => {
                    return Err(format!(
                        "unknown source option {option:?} (known: interval=DURATION)"
                    ));
                }
            }
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn sources_parse_with_defaults_and_options() {
        let s: SourceSpec = "apps=https://git.example.com/apps.git".parse().unwrap();
        assert_eq!(
            (s.name.as_str(), s.url.as_str(), s.branch.as_str()),
            ("apps", "https://git.example.com/apps.git", "main")
        );
        assert_eq!((s.path.as_deref(), s.interval), (None, None));
        let s: SourceSpec = "team-a=git@host:org/mono.git#release/1:teams/a/,interval=30s"
            .parse()
            .unwrap();
        assert_eq!(s.url, "git@host:org/mono.git");
        assert_eq!(s.branch, "release/1");
        assert_eq!(s.path.as_deref(), Some("teams/a"));
        assert_eq!(s.interval, Some(Duration::from_secs(30)));
        // The identity is the redacted URL (`user@` goes, as for every redacted remote).
        assert_eq!(s.id().to_string(), "host:org/mono.git#release/1:teams/a");
    }

    #[test]
    fn bad_sources_and_intervals_are_refused() {
        for bad in [
            "no-equals",
            "Bad_Name=file:///r",
            "a=",
            "a=file:///r#",
            "a=file:///r#main:../up",
            "a=file:///r#main:/abs",
            "a=file:///r#main,interval=500ms",
            "a=file:///r#main,colour=blue",
        ] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
        assert!(poll_interval("999ms").is_err());
        assert_eq!(poll_interval("1s"), Ok(Duration::from_secs(1)));
    }
}
