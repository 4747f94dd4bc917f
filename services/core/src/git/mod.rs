//! Git access with gix (feature `git`): a bare mirror of a remote followed over `file://`,
//! `git://`, SSH or HTTP(S) (`transport`, behind the host guard of `guard`), the commits
//! between two tips, each commit's metadata and changed paths, and files read straight from
//! the tree at a revision.
//!
//! Every function here blocks (gix is synchronous, and `file://` runs `git upload-pack`); async
//! callers run them inside `tokio::task::spawn_blocking`. A [`Mirror`] is plain data (a
//! directory and a URL) that opens the repository on each call, because a `gix::Repository`
//! built without gix's `parallel` feature is not `Send`.

mod error;
mod guard;
mod history;
mod mirror;
mod paths;
mod remote_url;
mod trailers;
mod transport;
mod tree;

pub use error::GitError;
pub use guard::{AddressClass, HostGuard, HostPattern, refused_class};
pub use history::{
    CommitInfo, RawSignature, changed_paths, commit_info, first_parent_range, is_ancestor,
};
pub use mirror::Mirror;
pub use paths::group_paths;
pub use remote_url::default_mirror_dir;
pub use trailers::{MAX_TRAILERS, parse_trailers};
pub use transport::{DEFAULT_TIMEOUT, HttpAuth, RemoteOptions, Secret, SshOptions};
pub use tree::{Limits, TreeFile, list_dirs, read_dir, read_file};

/// A commit id as gix knows it.
pub use gix::{ObjectId, Repository};

/// Parses a full hexadecimal commit id.
pub fn parse_sha(sha: &str) -> Result<ObjectId, GitError> {
    ObjectId::from_hex(sha.as_bytes()).map_err(|e| GitError::InvalidRevision {
        revision: sha.to_string(),
        reason: e.to_string(),
    })
}

/// Renders a gix error as its chain of causes, deduplicated and free of URL credentials.
pub(crate) fn describe(error: &gix::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in error.iter_errors() {
        let text = e.to_string();
        // Wrappers often repeat their source's text; keep each message once.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    crate::credentials::redact_urls_in(&parts.join(": "))
}
