//! The one URL-credential redactor: NATS server URLs, Git remote URLs and the error messages
//! that quote them lose their `user[:password]@` before they reach an event, a log line, an
//! error or a path. Credentials are removed outright rather than replaced by a marker, because
//! a redacted Git URL is also an identity (the `repository` of `commit.detected`, the name of
//! a mirror directory) that must not change when only the credentials do.

/// `url` without credentials: each comma-separated URL (NATS takes a list) loses the user-info
/// part of its authority, including a scheme-less `token@host:port`, which NATS accepts too.
/// Paths are left alone (`/srv/a@b` names no user).
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| match one.find("://") {
            Some(_) => redact_urls_in(one),
            None => match (one.find('@'), one.find('/')) {
                (Some(at), slash) if slash.is_none_or(|s| at < s) => one[at + 1..].to_string(),
                _ => one.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Removes the user-info part of every `scheme://user:pass@host` in free text, such as an
/// error message from a transport that quotes the URL it was given. Only URLs with a scheme
/// are touched: an `@` elsewhere in a message (an e-mail address) is not a credential.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        // The authority ends at the path, query, fragment, or wherever the quoted URL ends.
        let end = rest
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | ',') || c.is_whitespace()
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_exactly() {
        // user:password@, token@, and no credentials, for NATS and Git URLs alike.
        assert_eq!(redact_url("nats://u:secret@h:4222"), "nats://h:4222");
        assert_eq!(
            redact_url("git://u:secret@h:9418/r.git"),
            "git://h:9418/r.git"
        );
        assert_eq!(redact_url("nats://tok@h:4222"), "nats://h:4222");
        assert_eq!(redact_url("git://token@h/r"), "git://h/r");
        assert_eq!(redact_url("tok@h:4222"), "h:4222");
        assert_eq!(redact_url("nats://h:4222"), "nats://h:4222");
        assert_eq!(redact_url("file:///srv/repo"), "file:///srv/repo");
        assert_eq!(redact_url("/srv/a@b/repo"), "/srv/a@b/repo");
        assert_eq!(
            redact_url("nats://h:1,tls://a:b@h2:2,c@h3:3"),
            "nats://h:1,tls://h2:2,h3:3"
        );
        assert_eq!(
            redact_urls_in("cannot connect to \"git://a:b@h/x\" (git://c@d); ask ops@example.com"),
            "cannot connect to \"git://h/x\" (git://d); ask ops@example.com"
        );
    }
}
