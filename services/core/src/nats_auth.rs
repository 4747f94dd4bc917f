//! The NATS users of a local ConfigSync (`configsync up`): one per service, plus `admin` and
//! `operator`, with random passwords kept in the state directory and the permissions of
//! `nats/permissions.conf`, which is compiled in so that the local server enforces exactly
//! what a deployment does.
//!
//! Files, all written by [`prepare`]:
//!
//! - `<state-dir>/nats-credentials.json` (mode 0600): `{"<user>": "<password>", ...}`, made at
//!   first start and reused afterwards (a user missing from it gets a password added); the
//!   CLI reads it to act as `operator` or `admin` against that server.
//! - `<server-dir>/permissions.conf`: a copy of `nats/permissions.conf`.
//! - `<server-dir>/auth.conf` (mode 0600): the `authorization` block naming each user, its
//!   password and its `$PERMISSIONS_<USER>` variable; the file nats-server is started with.
//!
//! Both server files are rewritten at every start, so a new binary brings its permissions.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::NatsArgs;
use crate::event::{ANY_CONSUMER, EventData};

/// `nats/permissions.conf`: one `PERMISSIONS_<USER>` variable per user.
pub const PERMISSIONS_CONF: &str = include_str!("../../../nats/permissions.conf");

/// The user that manages streams and buckets (`configsync nats init`).
pub const ADMIN: &str = "admin";
/// The user of a person and of the CLI acting for them: reads everything, publishes only
/// human decisions.
pub const OPERATOR: &str = "operator";
/// The credentials file's name in the state directory.
pub const CREDENTIALS_FILE: &str = "nats-credentials.json";
/// The server configuration nats-server is started with, in the server's directory.
pub const SERVER_CONFIG_FILE: &str = "auth.conf";

/// Random bytes per password (hex-encoded: 64 characters).
const PASSWORD_BYTES: usize = 32;

/// Why the credentials or the server configuration could not be prepared or read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a ConfigSync NATS credentials file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{} may be read by other users (mode {mode:o}): `chmod 600` it, or delete it to have new passwords made",
        path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("no NATS user {user} in {}", path.display())]
    UnknownUser { user: String, path: PathBuf },
    #[error("no secure random numbers for passwords")]
    Random,
}

/// Every NATS user: `admin`, then each emitter of the event catalogue (the six services and
/// `operator`), in catalogue order. Derived from `EventData::EMITTERS`, so a new service gets
/// a user, and `nats/permissions.conf` must define its permissions (checked by a test).
pub fn users() -> Vec<&'static str> {
    let mut users = vec![ADMIN];
    for (_, emitter) in EventData::EMITTERS {
        if *emitter != ANY_CONSUMER && !users.contains(emitter) {
            users.push(emitter);
        }
    }
    users
}

/// The variable of `nats/permissions.conf` holding `user`'s permissions
/// (`git-watcher` → `PERMISSIONS_GIT_WATCHER`).
pub fn permissions_variable(user: &str) -> String {
    format!(
        "PERMISSIONS_{}",
        user.to_ascii_uppercase().replace('-', "_")
    )
}

/// The password of each user, as kept in `<state-dir>/nats-credentials.json`.
#[derive(Clone)]
pub struct Credentials {
    path: PathBuf,
    passwords: BTreeMap<String, String>,
}

impl fmt::Debug for Credentials {
    // Never the passwords: a Debug print may end up in a log or an error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("path", &self.path)
            .field("users", &self.passwords.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Reads a credentials file (`<state-dir>/nats-credentials.json`), refusing one that
    /// others may read.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let path = path.to_path_buf();
        check_private(&path)?;
        let text = std::fs::read_to_string(&path).map_err(|source| AuthError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let passwords: BTreeMap<String, String> =
            serde_json::from_str(&text).map_err(|e| AuthError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        for (user, password) in &passwords {
            // The password is written into the server's configuration as a quoted string.
            if password.is_empty()
                || !password
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(AuthError::Corrupt {
                    path,
                    reason: format!(
                        "the password of {user} is empty or has characters other than letters, digits, '-', '_' and '.'"
                    ),
                });
            }
        }
        Ok(Self { path, passwords })
    }

    /// Reads a credentials file, making it (or the passwords of users it lacks) with random
    /// passwords.
    pub fn load_or_create(path: &Path) -> Result<Self, AuthError> {
        let mut credentials = if path.exists() {
            Self::load(path)?
        } else {
            Self {
                path: path.to_path_buf(),
                passwords: BTreeMap::new(),
            }
        };
        let mut added = Vec::new();
        for user in users() {
            if !credentials.passwords.contains_key(user) {
                credentials
                    .passwords
                    .insert(user.to_string(), random_password()?);
                added.push(user);
            }
        }
        if !added.is_empty() {
            let json = serde_json::to_vec_pretty(&credentials.passwords)
                .expect("a map of strings serializes");
            write_private(path, &json)?;
            tracing::info!(path = %path.display(), users = ?added, "nats passwords made");
        }
        Ok(credentials)
    }

    /// The file these credentials come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `user`'s password.
    pub fn password(&self, user: &str) -> Result<&str, AuthError> {
        self.passwords
            .get(user)
            .map(String::as_str)
            .ok_or_else(|| AuthError::UnknownUser {
                user: user.to_string(),
                path: self.path.clone(),
            })
    }

    /// How `user` connects to the server at `url`.
    pub fn nats_args(&self, url: &str, user: &str) -> Result<NatsArgs, AuthError> {
        let mut args = NatsArgs::for_url(url);
        args.auth.nats_user = Some(user.to_string());
        args.auth.nats_password = Some(self.password(user)?.to_string());
        Ok(args)
    }

    /// The server's `authorization` block: every user of [`users`] with its password and
    /// permissions variable.
    fn server_config(&self) -> Result<String, AuthError> {
        let mut out = String::from(
            "# Written by configsync at every start of its nats-server; edits are lost.\n\
             # The users and passwords of nats-credentials.json in the state directory, with the\n\
             # permissions of permissions.conf (a copy of nats/permissions.conf).\n\n\
             include permissions.conf\n\nauthorization {\n  users: [\n",
        );
        for user in users() {
            out.push_str(&format!(
                "    {{ user: \"{user}\", password: \"{}\", permissions: ${} }}\n",
                self.password(user)?,
                permissions_variable(user)
            ));
        }
        out.push_str("  ]\n}\n");
        Ok(out)
    }
}

/// Makes or reads the credentials of `state_dir` and writes the server configuration into
/// `server_dir`. Returns the credentials and the file to start nats-server with
/// (`nats-server -c`).
pub fn prepare(state_dir: &Path, server_dir: &Path) -> Result<(Credentials, PathBuf), AuthError> {
    let credentials = Credentials::load_or_create(&state_dir.join(CREDENTIALS_FILE))?;
    std::fs::create_dir_all(server_dir).map_err(|source| AuthError::Io {
        action: "create",
        path: server_dir.to_path_buf(),
        source,
    })?;
    let permissions = server_dir.join("permissions.conf");
    std::fs::write(&permissions, PERMISSIONS_CONF).map_err(|source| AuthError::Io {
        action: "write",
        path: permissions,
        source,
    })?;
    let config = server_dir.join(SERVER_CONFIG_FILE);
    write_private(&config, credentials.server_config()?.as_bytes())?;
    Ok((credentials, config))
}

fn random_password() -> Result<String, AuthError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; PASSWORD_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Random)?;
    Ok(hex::encode(bytes))
}

/// Refuses a file that others than its owner may read or write.
fn check_private(path: &Path) -> Result<(), AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| AuthError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AuthError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` with mode 0600 from the first byte on (a temporary file renamed
/// over it), so the secret is never readable by others, nor half-written after a crash.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    let io = |action, source| AuthError::Io {
        action,
        path: tmp.clone(),
        source,
    };
    // A left-over temporary file keeps its old mode when opened: start afresh.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", e)),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    // The umask cannot widen 0600, but a process-wide umask of 0 is no reason to trust it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("chmod", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("sync", e))?;
    std::fs::rename(&tmp, path).map_err(|source| AuthError::Io {
        action: "replace",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_emitter_is_a_user_after_admin() {
        assert_eq!(
            users(),
            [
                "admin",
                "git-watcher",
                "validator",
                "applier",
                "operator",
                "drift-watcher",
                "remediator",
                "auditor"
            ]
        );
        assert_eq!(
            permissions_variable("drift-watcher"),
            "PERMISSIONS_DRIFT_WATCHER"
        );
    }

    #[test]
    fn the_compiled_permissions_define_a_variable_per_user_and_no_other() {
        let defined: Vec<String> = PERMISSIONS_CONF
            .lines()
            .filter_map(|l| l.trim().strip_suffix("= {"))
            .map(|v| v.trim().to_string())
            .collect();
        let mut expected: Vec<String> = users().into_iter().map(permissions_variable).collect();
        let mut sorted = defined.clone();
        sorted.sort();
        expected.sort();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn debug_never_shows_a_password() {
        let credentials = Credentials {
            path: "/s/nats-credentials.json".into(),
            passwords: [("admin".to_string(), "s3cr3t".to_string())].into(),
        };
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("admin") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
