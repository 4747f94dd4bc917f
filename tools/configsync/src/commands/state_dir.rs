//! The state directory that `configsync up` writes and other commands read: where to find
//! NATS (and, for the nats-server `up` started, the users' passwords), the audit API and its
//! tokens, and the clusters of a running instance.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use configsync_auditor::auth::{Scope, Token};
use configsync_core::config::NatsArgs;
use configsync_core::nats_auth::Credentials;
use serde::{Deserialize, Serialize};

/// The file `configsync up` writes once everything is ready.
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// The file of the audit API's token of `scope` in a state directory: `audit-read.token`,
/// `audit-admin.token`.
pub fn audit_token_file(dir: &Path, scope: Scope) -> PathBuf {
    dir.join(format!("audit-{scope}.token"))
}

/// The audit API's tokens of the state directory `dir`, made at the first start (from the
/// operating system's random source) and kept for the next ones, so that scripts and shells
/// holding a token keep working across restarts. Each file is mode 0600: the token is the
/// whole of the API's protection. Returns the read and admin token files.
pub fn ensure_audit_tokens(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let read = ensure_token(&audit_token_file(dir, Scope::Read))?;
    let admin = ensure_token(&audit_token_file(dir, Scope::Admin))?;
    Ok((read, admin))
}

/// Where `configsync up` keeps the git-watcher's webhook secret.
pub const WEBHOOK_SECRET_FILE: &str = "webhook.secret";

/// The webhook secret of the git-watcher under `dir`, made at the first start (like the
/// audit tokens: random, private, kept between runs so a forge's configuration stays valid).
pub fn ensure_webhook_secret(dir: &Path) -> anyhow::Result<PathBuf> {
    ensure_token(&dir.join(WEBHOOK_SECRET_FILE))
}

fn ensure_token(path: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Token::parse(&text).map_err(|reason| {
            anyhow::anyhow!(
                "{} is not a usable token ({reason}); remove it to have a new one made",
                path.display()
            )
        })?;
        // Whatever happened to the file since (a copy, an umask), it is kept private.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
        return Ok(path.to_path_buf());
    }
    let token = Token::generate()?;
    // Written aside and renamed into place: a crash never leaves a half-written token, and
    // the file is private from its creation on.
    let partial = path.with_extension("token.partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    writeln!(file, "{}", token.expose())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(path.to_path_buf())
}

/// The contents of `endpoints.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Endpoints {
    pub nats_url: String,
    /// The passwords of the NATS users, when `up` runs its own nats-server (absent with
    /// `--nats-url`: then commands take `--nats-user`/`--nats-password` as usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_credentials: Option<PathBuf>,
    pub audit_url: Option<String>,
    /// Where the git-watcher receives push webhooks, and the file holding their secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<PathBuf>,
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub services: serde_json::Value,
}

impl Endpoints {
    /// Reads `<dir>/endpoints.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(ENDPOINTS_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is `configsync up --state-dir {}` running?)",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a ConfigSync endpoints file", path.display()))
    }

    /// How `user` reaches this instance's NATS: with the password `up` made for it when `up`
    /// runs its own server, else with `flags` (credentials, TLS) at the endpoints' URL.
    pub fn nats_args(&self, user: &str, flags: &NatsArgs) -> anyhow::Result<NatsArgs> {
        let mut args = match &self.nats_credentials {
            Some(file) => Credentials::load(file)?.nats_args(&self.nats_url, user)?,
            None => NatsArgs {
                nats_url: self.nats_url.clone(),
                ..flags.clone()
            },
        };
        args.connect_deadline = flags.connect_deadline;
        Ok(args)
    }
}

/// How a command finds NATS: `--nats-url`, or the endpoints of a running `configsync up`.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Find NATS through the endpoints.json of `configsync up --state-dir DIR`, connecting as
    /// the user `up` made for this command (unless `up` was given --nats-url).
    #[arg(long, env = "CONFIGSYNC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl Connection {
    /// Connects to the NATS named by `--state-dir` if given, as `user` (`operator` to read and
    /// to act as a person, `admin` to manage the stream), else to `--nats-url` with the
    /// credentials of the flags.
    pub async fn connect(
        &self,
        client_name: &str,
        user: &str,
    ) -> anyhow::Result<async_nats::Client> {
        let nats = match &self.state_dir {
            Some(dir) => Endpoints::read(dir)?.nats_args(user, &self.nats)?,
            None => self.nats.clone(),
        };
        Ok(nats.connect(client_name).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn audit_tokens_are_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (read, admin) = ensure_audit_tokens(dir.path()).unwrap();
        assert_eq!(read, dir.path().join("audit-read.token"));
        assert_eq!(admin, dir.path().join("audit-admin.token"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&read), mode(&admin)), (0o600, 0o600));
        let first = std::fs::read_to_string(&read).unwrap();
        assert_ne!(first, std::fs::read_to_string(&admin).unwrap());
        assert!(Token::parse(&first).is_ok());

        // A second start keeps them, and makes them private again.
        std::fs::set_permissions(&read, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_audit_tokens(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&read).unwrap(), first);
        assert_eq!(mode(&read), 0o600);

        // A damaged one is refused with what to do, not replaced behind the user's back.
        std::fs::write(&admin, "").unwrap();
        let error = ensure_audit_tokens(dir.path()).unwrap_err().to_string();
        assert!(error.contains("remove it"), "{error}");
    }
}
