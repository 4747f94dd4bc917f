//! Remote URLs: credentials are removed before a URL reaches an event, a log line or an error,
//! and each remote gets its own mirror directory.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The URL with any `user[:password]@` removed, as it may appear in events and logs.
pub fn redact(url: &str) -> String {
    scrub(url)
}

/// Removes the user-info part of every `scheme://user:pass@host` in `text` (error messages
/// from the transport may quote the URL they were given).
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        // The authority ends at the path, query, fragment, or wherever the quoted URL ends.
        let end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Where the mirror of `url` lives under `base` when no work directory is configured: named
/// after a hash of the redacted URL, so that different remotes never share a mirror and no
/// credential (not even hashed) ends up in a path.
pub fn default_mirror_dir(base: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(redact(url).as_bytes());
    base.join(format!("configsync-git-{}", hex::encode(&digest[..8])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed() {
        assert_eq!(redact("git://u:secret@h:9418/r.git"), "git://h:9418/r.git");
        assert_eq!(redact("git://token@h/r"), "git://h/r");
        assert_eq!(redact("file:///srv/repo"), "file:///srv/repo");
        assert_eq!(redact("/srv/repo"), "/srv/repo");
        assert_eq!(
            scrub("cannot connect to \"git://a:b@h/x\" (git://c@d)"),
            "cannot connect to \"git://h/x\" (git://d)"
        );
    }

    #[test]
    fn mirror_dirs_differ_by_remote_but_not_by_credentials() {
        let base = Path::new("/tmp");
        let a = default_mirror_dir(base, "git://h/a");
        assert_ne!(a, default_mirror_dir(base, "git://h/b"));
        assert_eq!(a, default_mirror_dir(base, "git://u:p@h/a"));
        assert!(a.starts_with(base));
    }
}
