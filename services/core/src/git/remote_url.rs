//! Remote URLs: each remote gets its own mirror directory, named without its credentials
//! (removed by `credentials`, as everywhere a URL is shown).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::credentials::redact_url;

/// Where the mirror of `url` lives under `base` when no work directory is configured: named
/// after a hash of the redacted URL, so that different remotes never share a mirror and no
/// credential (not even hashed) ends up in a path.
pub fn default_mirror_dir(base: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(redact_url(url).as_bytes());
    base.join(format!("configsync-git-{}", hex::encode(&digest[..8])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_dirs_differ_by_remote_but_not_by_credentials() {
        let base = Path::new("/tmp");
        let a = default_mirror_dir(base, "git://h/a");
        assert_ne!(a, default_mirror_dir(base, "git://h/b"));
        assert_eq!(a, default_mirror_dir(base, "git://u:p@h/a"));
        assert!(a.starts_with(base));
    }
}
