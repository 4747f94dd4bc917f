//! Why a Git operation failed, and whether trying again later may help.

/// Why a Git operation failed. Messages never contain URL credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("remote url {url} is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "remote url {url} uses the {scheme} transport; only file:// (or a local path), git://, ssh:// and http(s):// are supported"
    )]
    UnsupportedTransport { url: String, scheme: String },
    #[error("branch name {branch:?} is invalid: {reason}")]
    InvalidBranch { branch: String, reason: String },
    #[error("repository path {path} does not exist")]
    MissingPath { path: String },
    #[error("{path} is not a git repository: {reason}")]
    NotARepository { path: String, reason: String },
    #[error("remote {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("remote {url} refused or has no such repository: {reason}")]
    RemoteRefused { url: String, reason: String },
    #[error("remote {url} is not contacted: host {host} is refused because {reason}")]
    HostRefused {
        url: String,
        host: String,
        reason: String,
    },
    #[error("remote {url} timed out {doing} (no answer within {})", humantime::format_duration(*after))]
    TimedOut {
        url: String,
        after: std::time::Duration,
        doing: &'static str,
    },
    #[error("remote {url} refused the credentials: {reason}")]
    AuthenticationFailed { url: String, reason: String },
    #[error("remote {url} is refused: its SSH host key is not the known one: {reason}")]
    HostKeyRefused { url: String, reason: String },
    #[error("TLS to remote {url} cannot be set up: {reason}")]
    Tls { url: String, reason: String },
    #[error("branch {branch} does not exist on remote {url}")]
    BranchNotFound { url: String, branch: String },
    #[error("fetching branch {branch} from {url} failed: {reason}")]
    Fetch {
        url: String,
        branch: String,
        reason: String,
    },
    #[error("fetch from {url} was interrupted")]
    Interrupted { url: String },
    #[error("the mirror at {path} cannot be used: {reason}")]
    Mirror { path: String, reason: String },
    #[error("revision {revision} is invalid: {reason}")]
    InvalidRevision { revision: String, reason: String },
    #[error("object {id} cannot be read: {reason}")]
    Object { id: String, reason: String },
    #[error("path {path:?} is not allowed: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("{path} does not exist at {revision}")]
    PathNotFound { path: String, revision: String },
    #[error("{path} at {revision} is a {kind}, which is refused")]
    Refused {
        path: String,
        revision: String,
        kind: &'static str,
    },
    #[error("{what} is {size} bytes at {revision}, over the limit of {max}")]
    TooLarge {
        what: String,
        revision: String,
        size: u64,
        max: u64,
    },
}

impl GitError {
    /// Whether a later attempt may succeed without anyone changing the configuration or the
    /// repository: a network failure may, a path that is not a repository will not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. }
                | Self::Fetch { .. }
                | Self::Interrupted { .. }
                | Self::TimedOut { .. }
        )
    }
}
