//! How the mirror reaches its remote: the transport for each URL scheme (`file://` through
//! `git upload-pack`, `git://` over a TCP connection made here, SSH through the system `ssh`,
//! HTTP(S) through gix's reqwest client on rustls with ring), with the credentials, the host
//! guard and the stall timeout each needs.
//!
//! Credentials come only from [`RemoteOptions`] (the operator's flags, files or environment):
//! gix is opened isolated, so neither the repository's nor the user's Git configuration can
//! name a credential helper, a proxy or an SSH command, and nothing ever prompts.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gix::protocol::transport::Protocol;
use gix::protocol::transport::client::blocking_io::{Transport, http, ssh};
use gix::protocol::transport::client::git::ConnectMode;

use super::GitError;
use super::guard::HostGuard;

/// A secret value (a password, a token): never shown by `Debug`, and scrubbed from every
/// error message of a fetch that used it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, to hand to the transport and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How to authenticate over HTTP(S).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HttpAuth {
    /// No credentials: a remote that asks for some is reported as refusing access.
    #[default]
    None,
    /// HTTP basic authentication, given when the remote asks (a forge's access token goes
    /// here as the password: GitHub `x-access-token`, GitLab `oauth2`, Bitbucket `x-token-auth`).
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer <token>` on every request.
    Bearer(Secret),
}

/// How to connect over SSH.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// The private key (`-i`); without it, ssh's default identities.
    pub key: Option<PathBuf>,
    /// The known_hosts file the server's key must be in; without it, ssh's default.
    pub known_hosts: Option<PathBuf>,
    /// Trust a host key never seen before and record it (trust on first use): off unless
    /// asked, because it lets the first connection be to anyone.
    pub accept_new_host_keys: bool,
}

/// Everything a fetch needs besides the URL.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pub guard: HostGuard,
    /// How long a remote may take to accept a connection, or stay silent during a fetch,
    /// before the fetch fails (a host that accepts and never answers would otherwise block
    /// until the operating system gives up, which may be never).
    pub timeout: Duration,
    pub http: HttpAuth,
    /// More CA certificates (PEM) to trust for HTTPS, besides the system's.
    pub ca_file: Option<PathBuf>,
    pub ssh: SshOptions,
}

/// The default of `--fetch-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            guard: HostGuard::default(),
            timeout: DEFAULT_TIMEOUT,
            http: HttpAuth::None,
            ca_file: None,
            ssh: SshOptions::default(),
        }
    }
}

impl RemoteOptions {
    /// The same options, allowing loopback and other local-only addresses (a remote on
    /// this machine, as tests and `configsync up` use).
    pub fn allowing_private_hosts(mut self) -> Self {
        self.guard.allow_private = true;
        self
    }

    /// Removes every secret value from `text` (a transport's error message may quote a
    /// header or a URL it was given).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = crate::credentials::redact_urls_in(text);
        let secrets = match &self.http {
            HttpAuth::None => None,
            HttpAuth::Basic { password, .. } => Some(password),
            HttpAuth::Bearer(token) => Some(token),
        };
        if let Some(secret) = secrets.filter(|s| !s.0.is_empty()) {
            out = out.replace(secret.expose(), "<redacted>");
        }
        out
    }
}

/// A connected transport, ready for gix's handshake.
pub(super) type Boxed = Box<dyn Transport + Send>;

/// What [`connect`] made: the transport, and for HTTP the options gix must configure it with.
pub(super) struct Connected {
    pub transport: Boxed,
    pub http_options: Option<http::Options>,
}

/// Connects to `url` (already parsed, scheme checked) as the options say. `shown` is the URL
/// for messages.
/// `ssh_log` is where `ssh` writes its messages (gix reads only its own), so that a failure
/// can say why ssh gave up.
pub(super) fn connect(
    url: &gix::Url,
    shown: &str,
    options: &RemoteOptions,
    ssh_log: &Path,
) -> Result<Option<Connected>, GitError> {
    use gix::url::Scheme;
    match url.scheme {
        // gix's own local transport (`git upload-pack`) is used as is.
        Scheme::File => Ok(None),
        Scheme::Git => connect_git(url, shown, options).map(Some),
        Scheme::Ssh => connect_ssh(url, shown, options, ssh_log).map(Some),
        Scheme::Http | Scheme::Https => connect_http(url, shown, options).map(Some),
        ref other => Err(GitError::UnsupportedTransport {
            url: shown.to_string(),
            scheme: other.as_str().to_string(),
        }),
    }
}

fn host_of<'a>(url: &'a gix::Url, shown: &str) -> Result<&'a str, GitError> {
    url.host().ok_or_else(|| GitError::InvalidUrl {
        url: shown.to_string(),
        reason: "no host".into(),
    })
}

/// `git://`: the TCP connection is made here (gix's own waits 5 s to connect and then reads
/// without a timeout), to a checked address, with read and write timeouts.
fn connect_git(
    url: &gix::Url,
    shown: &str,
    options: &RemoteOptions,
) -> Result<Connected, GitError> {
    let host = host_of(url, shown)?;
    let port = url.port.unwrap_or(9418);
    let addrs = options.guard.resolve(shown, host, port)?;
    let stream = connect_tcp(&addrs, shown, options.timeout)?;
    let timeouts = || -> std::io::Result<TcpStream> {
        stream.set_read_timeout(Some(options.timeout))?;
        stream.set_write_timeout(Some(options.timeout))?;
        stream.try_clone()
    };
    let read = timeouts().map_err(|e| GitError::Unreachable {
        url: shown.to_string(),
        reason: e.to_string(),
    })?;
    let connection = gix::protocol::transport::client::git::blocking_io::Connection::new(
        read,
        stream,
        Protocol::V2,
        url.path.clone(),
        Some((host.to_string(), url.port)),
        ConnectMode::Daemon,
        false,
    );
    Ok(Connected {
        transport: Box::new(connection),
        http_options: None,
    })
}

fn connect_tcp(
    addrs: &[SocketAddr],
    shown: &str,
    timeout: Duration,
) -> Result<TcpStream, GitError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("the guard returns at least one address");
    Err(if e.kind() == std::io::ErrorKind::TimedOut {
        GitError::TimedOut {
            url: shown.to_string(),
            after: timeout,
            doing: "connecting",
        }
    } else {
        GitError::Unreachable {
            url: shown.to_string(),
            reason: e.to_string(),
        }
    })
}

/// SSH through the system's `ssh`, told exactly what to trust: no configuration file (a
/// `ProxyCommand` or `StrictHostKeyChecking no` there would bypass the guard or the host
/// check), the key and known_hosts given, strict host key checking, no prompts, and the
/// checked address pinned (`HostKeyAlias` keeps the host's name for known_hosts).
fn connect_ssh(
    url: &gix::Url,
    shown: &str,
    options: &RemoteOptions,
    ssh_log: &Path,
) -> Result<Connected, GitError> {
    let host = host_of(url, shown)?;
    let addrs = options.guard.resolve(shown, host, url.port.unwrap_or(22))?;
    let pinned = gix::Url::from_parts(
        url.scheme.clone(),
        url.user().map(ToOwned::to_owned),
        None,
        Some(addrs[0].ip().to_string()),
        url.port,
        url.path.clone(),
        url.serialize_alternative_form,
    )
    .map_err(|e| GitError::InvalidUrl {
        url: shown.to_string(),
        reason: e.to_string(),
    })?;
    let command = ssh_command(host, options, ssh_log);
    let transport = ssh::connect(
        pinned,
        Protocol::V2,
        ssh::connect::Options {
            command: Some(command),
            disallow_shell: false,
            kind: Some(ssh::ProgramKind::Ssh),
        },
        false,
    )
    .map_err(|e| GitError::InvalidUrl {
        url: shown.to_string(),
        reason: options.scrub(&e.to_string()),
    })?;
    Ok(Connected {
        transport: Box::new(transport),
        http_options: None,
    })
}

/// The `ssh` command line (run by `sh -c`, as Git runs `core.sshCommand`), every value quoted,
/// its messages going to `log`.
pub(super) fn ssh_command(host: &str, options: &RemoteOptions, log: &Path) -> OsString {
    let secs = options.timeout.as_secs().max(1);
    let mut parts: Vec<String> = vec![
        "ssh".into(),
        "-F".into(),
        "none".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!(
            "StrictHostKeyChecking={}",
            if options.ssh.accept_new_host_keys {
                "accept-new"
            } else {
                "yes"
            }
        ),
        "-o".into(),
        format!("HostKeyAlias={host}"),
        "-o".into(),
        "CheckHostIP=no".into(),
        "-o".into(),
        "UpdateHostKeys=no".into(),
        // ConnectTimeout also bounds the banner exchange and key exchange; the keep-alives
        // end a session whose server stopped answering.
        "-o".into(),
        format!("ConnectTimeout={secs}"),
        "-o".into(),
        format!("ServerAliveInterval={}", secs.div_ceil(3).max(1)),
        "-o".into(),
        "ServerAliveCountMax=3".into(),
    ];
    if let Some(key) = &options.ssh.key {
        parts.extend([
            "-i".into(),
            key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "IdentityAgent=none".into(),
        ]);
    }
    if let Some(known) = &options.ssh.known_hosts {
        parts.extend([
            "-o".into(),
            format!("UserKnownHostsFile={}", known.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
        ]);
    }
    let mut quoted: Vec<String> = parts.iter().map(|p| shell_quote(p)).collect();
    quoted.push(format!("2>{}", shell_quote(&log.display().to_string())));
    OsString::from(quoted.join(" "))
}

/// Quotes `s` for `sh` (single quotes, each `'` as `'\''`).
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./,:@".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// HTTP(S) through gix's reqwest transport: the host checked and its addresses pinned, no
/// proxy from the environment (it would connect to an address the guard never saw), no
/// redirects (a redirect is a new host the guard never saw), TLS through rustls on ring with
/// the system's roots (and `ca_file`), and the timeout on connecting and on each read.
fn connect_http(
    url: &gix::Url,
    shown: &str,
    options: &RemoteOptions,
) -> Result<Connected, GitError> {
    let host = host_of(url, shown)?.to_string();
    let port = url.port_or_default().unwrap_or(443);
    let addrs = options.guard.resolve(shown, &host, port)?;
    let https = url.scheme == gix::url::Scheme::Https;
    // A password or token over plain HTTP is readable by anyone on the path: sent only to an
    // address of this machine (tests, a local mirror), never across a network.
    if !https
        && options.http != HttpAuth::None
        && !addrs.iter().all(|a| {
            super::guard::refused_class(a.ip()) == Some(super::guard::AddressClass::Loopback)
        })
    {
        return Err(GitError::InvalidUrl {
            url: shown.to_string(),
            reason: "credentials are sent only over https:// (or to this machine)".into(),
        });
    }
    // reqwest sets TLS up even for plain HTTP (and, with no provider of its own, would panic):
    // it always gets a configuration, one that trusts nothing when TLS is not wanted.
    let tls = if https {
        tls_config(options, shown)?
    } else {
        no_tls()
    };
    let timeout = options.timeout;
    let configure_client = move |builder: reqwest::blocking::ClientBuilder| {
        let builder = builder
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .https_only(https)
            .resolve_to_addrs(&host, &addrs)
            .tls_backend_preconfigured((*tls).clone());
        Ok(builder)
    };
    let backend = gix::protocol::transport::client::blocking_io::http::reqwest::Options {
        configure_client: Some(Box::new(configure_client)),
        configure_request: None,
    };
    let mut http_options = http::Options {
        follow_redirects: http::options::FollowRedirects::None,
        connect_timeout: Some(timeout),
        user_agent: Some(format!("configsync/{}", env!("CARGO_PKG_VERSION"))),
        backend: Some(Arc::new(Mutex::new(backend))),
        ..Default::default()
    };
    if let HttpAuth::Bearer(token) = &options.http {
        http_options
            .extra_headers
            .push(format!("Authorization: Bearer {}", token.expose()));
    }
    let transport = http::connect::<http::reqwest::Remote>(url.clone(), Protocol::V2, false);
    Ok(Connected {
        transport: Box::new(transport),
        http_options: Some(http_options),
    })
}

/// rustls on ring (the workspace's one crypto provider) verifying with the platform's roots,
/// plus the CAs of `ca_file`.
fn tls_config(options: &RemoteOptions, shown: &str) -> Result<Arc<rustls::ClientConfig>, GitError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let invalid = |reason: String| GitError::Tls {
        url: shown.to_string(),
        reason,
    };
    let extra: Vec<CertificateDer<'static>> = match &options.ca_file {
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| invalid(format!("cannot read CA file {}: {e}", path.display())))?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(|e| invalid(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS configuration on ring that trusts no certificate, for plain HTTP.
fn no_tls() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Arc::new(config)
}

/// The credentials callback handed to gix: what the options hold, and nothing else (no
/// helper, no prompt).
pub(super) fn credentials(
    auth: &HttpAuth,
) -> impl FnMut(
    gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>>
+ use<> {
    let auth = auth.clone();
    move |action| {
        use gix::credentials::helper::Action;
        let Action::Get(context) = action else {
            // Store and erase: there is nowhere to store to.
            return Ok(None);
        };
        match &auth {
            HttpAuth::Basic { username, password } => {
                Ok(Some(gix::credentials::protocol::Outcome {
                    identity: gix::sec::identity::Account {
                        username: username.clone(),
                        password: password.expose().to_string(),
                        oauth_refresh_token: None,
                    },
                    next: context.into(),
                }))
            }
            HttpAuth::Bearer(_) => Err(gix::error::message(
                "the remote refused the bearer token (--http-token-file)",
            )
            .into()),
            HttpAuth::None => Err(gix::error::message(
                "the remote requires authentication and no credentials are configured \
                 (--http-username with --http-password-file, or --http-token-file)",
            )
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let options = RemoteOptions {
            http: HttpAuth::Basic {
                username: "bot".into(),
                password: Secret::new("hunter2-s3cret"),
            },
            ..Default::default()
        };
        assert_eq!(
            options.scrub("GET https://bot:hunter2-s3cret@h/r failed: header hunter2-s3cret"),
            "GET https://h/r failed: header <redacted>"
        );
        assert_eq!(format!("{:?}", Secret::new("x1")), "Secret(<redacted>)");
    }

    #[test]
    fn the_ssh_command_pins_trust_and_quotes_paths() {
        let options = RemoteOptions {
            ssh: SshOptions {
                key: Some("/keys/my key".into()),
                known_hosts: Some("/etc/kh".into()),
                accept_new_host_keys: false,
            },
            timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let cmd = ssh_command("git.example.com", &options, Path::new("/m/ssh log"))
            .into_string()
            .unwrap();
        assert!(
            cmd.starts_with("ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes"),
            "{cmd}"
        );
        for part in [
            "-o HostKeyAlias=git.example.com",
            "-i '/keys/my key' -o IdentitiesOnly=yes",
            "-o UserKnownHostsFile=/etc/kh -o GlobalKnownHostsFile=/dev/null",
            "-o ConnectTimeout=30 -o ServerAliveInterval=10",
            " 2>'/m/ssh log'",
        ] {
            assert!(cmd.contains(part), "{part} in {cmd}");
        }
        let tofu = RemoteOptions {
            ssh: SshOptions {
                accept_new_host_keys: true,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(
            ssh_command("h", &tofu, Path::new("/l"))
                .to_string_lossy()
                .contains("StrictHostKeyChecking=accept-new")
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
