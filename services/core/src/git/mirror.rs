//! A bare mirror of one remote under a work directory, and fetching a branch into it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::remote::Direction;

use super::transport::{self, RemoteOptions};
use super::{GitError, ObjectId, describe};

/// A bare mirror of a remote. Cheap to clone and `Send`: each operation opens the repository.
#[derive(Clone)]
pub struct Mirror {
    dir: PathBuf,
    /// The URL as configured, possibly with credentials: only ever handed to gix.
    configured_url: String,
    /// The URL without credentials, for messages.
    shown: String,
    /// The local path of a `file://` remote (or a plain path), checked before each fetch so
    /// that "not a repository" is reported as such.
    local_path: Option<PathBuf>,
    /// How to reach the remote: credentials, guard, timeout.
    options: RemoteOptions,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("dir", &self.dir)
            .field("url", &self.shown)
            .finish()
    }
}

impl Mirror {
    /// Opens the bare mirror of `url` in `dir`, creating it (and `dir`) if absent, to be
    /// fetched as `options` say. Refuses a URL whose transport is not built in or that carries
    /// a password, and a `dir` that holds something else.
    pub fn open_or_init(dir: &Path, url: &str, options: RemoteOptions) -> Result<Self, GitError> {
        let shown = crate::credentials::redact_url(url);
        let local_path = check_url(url, &shown)?;
        let mirror = Self {
            dir: dir.to_path_buf(),
            configured_url: url.to_string(),
            shown,
            local_path,
            options,
        };
        let unusable = |reason: String| GitError::Mirror {
            path: dir.display().to_string(),
            reason,
        };
        let is_empty_or_absent = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(unusable(e.to_string())),
        };
        if is_empty_or_absent {
            std::fs::create_dir_all(dir).map_err(|e| unusable(e.to_string()))?;
            gix::init_bare(dir).map_err(|e| unusable(describe(&e)))?;
        }
        // Opening proves the directory is a repository (and not, say, a typo'd home directory).
        mirror.repository()?;
        Ok(mirror)
    }

    /// The mirror's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The remote URL without credentials.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// Opens the mirror, ignoring the user's and the system's Git configuration so that the
    /// service behaves the same on every machine.
    pub fn repository(&self) -> Result<gix::Repository, GitError> {
        gix::open_opts(&self.dir, gix::open::Options::isolated()).map_err(|e| GitError::Mirror {
            path: self.dir.display().to_string(),
            reason: describe(&e),
        })
    }

    /// Fetches `branch` (`+refs/heads/<branch>:refs/remotes/origin/<branch>`, forced so that a
    /// force-push is followed) and returns the remote's tip. `interrupt` aborts a transfer in
    /// progress (on shutdown).
    pub fn fetch(&self, branch: &str, interrupt: &AtomicBool) -> Result<ObjectId, GitError> {
        check_branch(branch)?;
        if let Some(path) = &self.local_path {
            check_local_repository(path)?;
        }
        let repo = self.repository()?;
        let refspec = format!("+refs/heads/{branch}:{}", tracking_ref(branch));
        let invalid = |e: gix::Error| GitError::InvalidUrl {
            url: self.shown.clone(),
            reason: self.options.scrub(&describe(&e)),
        };
        let remote = repo
            .remote_at(self.configured_url.as_str())
            .map_err(invalid)?
            .with_refspecs([refspec.as_str()], Direction::Fetch)
            .map_err(invalid)?;
        let url = remote
            .url(Direction::Fetch)
            .cloned()
            .ok_or_else(|| GitError::InvalidUrl {
                url: self.shown.clone(),
                reason: "no fetch url".into(),
            })?;
        // A message of an earlier fetch must not explain this one's failure.
        let _ = std::fs::remove_file(self.ssh_log());
        let connection =
            match transport::connect(&url, &self.shown, &self.options, &self.ssh_log())? {
                None => remote
                    .connect(Direction::Fetch)
                    .map_err(|e| self.unreachable(&e))?,
                Some(connected) => {
                    let mut connection = remote.to_connection_with_transport(connected.transport);
                    if let Some(http) = connected.http_options {
                        connection.set_transport_options(Box::new(http));
                    }
                    connection
                }
            };
        let connection = connection.with_credentials(transport::credentials(&self.options.http));
        let prepared = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| self.classify_fetch(branch, &e))?;
        let wanted = format!("refs/heads/{branch}");
        let tip = prepared
            .ref_map()
            .mappings
            .iter()
            .filter(|m| m.remote.as_name().is_some_and(|n| n == wanted.as_bytes()))
            .find_map(|m| m.remote.as_id().map(ToOwned::to_owned));
        let Some(tip) = tip else {
            return Err(GitError::BranchNotFound {
                url: self.shown.clone(),
                branch: branch.to_string(),
            });
        };
        prepared
            .receive(gix::progress::Discard, interrupt)
            .map_err(|e| {
                if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
                    GitError::Interrupted {
                        url: self.shown.clone(),
                    }
                } else {
                    self.classify_fetch(branch, &e)
                }
            })?;
        Ok(tip)
    }

    /// The tip of `branch` as last fetched, if it ever was.
    pub fn tip(&self, branch: &str) -> Result<Option<ObjectId>, GitError> {
        check_branch(branch)?;
        let repo = self.repository()?;
        let name = tracking_ref(branch);
        let reference = repo
            .try_find_reference(name.as_str())
            .map_err(|e| GitError::Mirror {
                path: self.dir.display().to_string(),
                reason: describe(&e),
            })?;
        Ok(reference.map(|r| r.id().detach()))
    }

    /// Where `ssh` writes its messages during a fetch (inside the mirror, which is ours).
    fn ssh_log(&self) -> PathBuf {
        self.dir.join("configsync-ssh.log")
    }

    /// Why a fetch failed: gix's chain of causes, and what `ssh` said (gix reads only its
    /// own), without secrets.
    fn reason(&self, e: &gix::Error) -> String {
        let mut reason = describe(e);
        let said = std::fs::read_to_string(self.ssh_log()).unwrap_or_default();
        // The last lines say why ssh gave up; the banner of a changed host key comes before.
        let tail: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join("; ");
        if !tail.is_empty() {
            reason = format!("{reason}; ssh: {tail}");
        }
        self.options.scrub(&reason)
    }

    fn unreachable(&self, e: &gix::Error) -> GitError {
        let reason = self.reason(e);
        if let Some(path) = &self.local_path {
            return GitError::NotARepository {
                path: path.display().to_string(),
                reason,
            };
        }
        GitError::Unreachable {
            url: self.shown.clone(),
            reason,
        }
    }

    fn classify_fetch(&self, branch: &str, e: &gix::Error) -> GitError {
        let reason = self.reason(e);
        let lower = reason.to_lowercase();
        if is_timeout(e) || lower.contains("timed out") || lower.contains("operation timed out") {
            return GitError::TimedOut {
                url: self.shown.clone(),
                after: self.options.timeout,
                doing: "waiting for the remote",
            };
        }
        if lower.contains("host key verification failed")
            || lower.contains("no matching host key")
            || lower.contains("remote host identification has changed")
        {
            return GitError::HostKeyRefused {
                url: self.shown.clone(),
                reason,
            };
        }
        if [
            "authentication",
            "401",
            "permission denied (publickey",
            "credentials",
        ]
        .iter()
        .any(|s| lower.contains(s))
        {
            return GitError::AuthenticationFailed {
                url: self.shown.clone(),
                reason,
            };
        }
        // git daemon answers a repository it does not serve by closing the connection after
        // an error line; that is a configuration problem, not a passing one.
        if [
            "not exported",
            "access denied",
            "no such repository",
            "not found",
            "does not appear to be a git repository",
        ]
        .iter()
        .any(|s| lower.contains(s))
        {
            return GitError::RemoteRefused {
                url: self.shown.clone(),
                reason,
            };
        }
        if lower.contains("connection refused") {
            return GitError::Unreachable {
                url: self.shown.clone(),
                reason,
            };
        }
        GitError::Fetch {
            url: self.shown.clone(),
            branch: branch.to_string(),
            reason,
        }
    }
}

/// Where the mirror keeps `branch`'s tip.
fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

/// Accepts `file://`, plain paths, `git://`, `ssh://` (and `user@host:path`), `http://` and
/// `https://`; returns the local path of a local remote. A password in the URL is refused:
/// it would sit in every process listing and configuration dump.
fn check_url(url: &str, shown: &str) -> Result<Option<PathBuf>, GitError> {
    let parsed = gix::url::parse(gix::bstr::BStr::new(url.as_bytes())).map_err(|e| {
        GitError::InvalidUrl {
            url: shown.to_string(),
            reason: crate::credentials::redact_urls_in(&e.to_string()),
        }
    })?;
    let invalid = |reason: &str| GitError::InvalidUrl {
        url: shown.to_string(),
        reason: reason.to_string(),
    };
    match parsed.scheme {
        gix::url::Scheme::File => {
            gix::path::from_bstring(parsed.path)
                .map(Some)
                .map_err(|e| GitError::InvalidUrl {
                    url: shown.to_string(),
                    reason: e.to_string(),
                })
        }
        // The git protocol has no authentication: gix refuses such a URL at connect time,
        // which would look like an unreachable remote. Say what is wrong instead.
        gix::url::Scheme::Git if parsed.user().is_some() || parsed.password().is_some() => Err(
            invalid("git:// carries no credentials; remove the user and password"),
        ),
        _ if parsed.password().is_some() => Err(invalid(
            "a password in the URL is refused; give it with --http-password-file or \
             CONFIGSYNC_GIT_HTTP_PASSWORD",
        )),
        gix::url::Scheme::Git
        | gix::url::Scheme::Ssh
        | gix::url::Scheme::Http
        | gix::url::Scheme::Https => Ok(None),
        other => Err(GitError::UnsupportedTransport {
            url: shown.to_string(),
            scheme: other.as_str().to_string(),
        }),
    }
}

/// Whether gix says the transport timed out (an I/O error of kind `TimedOut` or `WouldBlock`,
/// which is what a socket read timeout gives on Linux).
fn is_timeout(e: &gix::Error) -> bool {
    e.iter_errors().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            )
        })
    })
}

/// A local remote must exist and be a repository; said precisely rather than as a transport
/// failure.
fn check_local_repository(path: &Path) -> Result<(), GitError> {
    if !path.exists() {
        return Err(GitError::MissingPath {
            path: path.display().to_string(),
        });
    }
    gix::open_opts(path, gix::open::Options::isolated())
        .map(drop)
        .map_err(|e| GitError::NotARepository {
            path: path.display().to_string(),
            reason: describe(&e),
        })
}

/// Refuses branch names that are not valid ref names, or that would change the refspec.
fn check_branch(branch: &str) -> Result<(), GitError> {
    let invalid = |reason: &str| GitError::InvalidBranch {
        branch: branch.to_string(),
        reason: reason.to_string(),
    };
    if branch.is_empty() {
        return Err(invalid("empty"));
    }
    if branch.starts_with("refs/") {
        return Err(invalid("give the short name, without refs/heads/"));
    }
    gix::validate::reference::name_partial(branch.as_bytes().into())
        .map(drop)
        .map_err(|e| invalid(&e.to_string()))?;
    if branch.contains(['*', ':', '+']) {
        return Err(invalid("wildcards and refspec syntax are not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_built_in_transports_are_accepted() {
        assert!(matches!(check_url("file:///srv/r", "x"), Ok(Some(p)) if p == Path::new("/srv/r")));
        assert!(matches!(check_url("/srv/r", "x"), Ok(Some(_))));
        for network in [
            "git://h:9418/r",
            "https://h/r",
            "http://bot@h/r",
            "ssh://git@h/r",
            "git@h:org/r.git",
        ] {
            assert!(matches!(check_url(network, "x"), Ok(None)), "{network}");
        }
        assert!(matches!(
            check_url("git://u:p@h/r", "git://h/r"),
            Err(GitError::InvalidUrl { url, .. }) if url == "git://h/r"
        ));
        let err = check_url("https://u:s3cret@h/r", "https://h/r").unwrap_err();
        assert!(
            matches!(&err, GitError::InvalidUrl { .. }) && !err.to_string().contains("s3cret"),
            "{err}"
        );
        assert!(matches!(
            check_url("ftp://h/r", "x"),
            Err(GitError::UnsupportedTransport { .. })
        ));
    }

    #[test]
    fn branch_names_are_checked() {
        assert!(check_branch("main").is_ok());
        assert!(check_branch("release/1.2").is_ok());
        for bad in ["", "a..b", "a b", "*", "refs/heads/main", "x:y", "-x~"] {
            assert!(check_branch(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
