//! SSH signers in the `allowed_signers` format of `ssh-keygen -Y verify` and Git's
//! `gpg.ssh.allowedSignersFile` (ssh-keygen(1), "ALLOWED SIGNERS"), and sshsig verification
//! against them.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ssh_key::{Algorithm, HashAlg, PublicKey, SshSig};

use super::statement::{NAMESPACE, Refusal, Statement, Verified};

/// One line of an allowed_signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// The e-mail addresses (lowercased) this key may sign for.
    pub principals: Vec<String>,
    /// `namespaces="..."`: the key signs only for these (absent: any).
    pub namespaces: Option<Vec<String>>,
    pub valid_after: Option<DateTime<Utc>>,
    pub valid_before: Option<DateTime<Utc>>,
    pub key: PublicKey,
    /// `SHA256:...`, as ssh-keygen prints it.
    pub fingerprint: String,
}

/// The SSH keys of an access policy.
#[derive(Debug, Clone, Default)]
pub struct SshSigners {
    pub entries: Vec<AllowedSigner>,
}

/// A line of an allowed_signers file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allowed_signers line {line}: {reason}")]
pub struct SignersError {
    pub line: usize,
    pub reason: String,
}

/// Key types sshsig signatures are verified for here.
fn supported(algorithm: &Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::Ed25519 | Algorithm::Rsa { .. } | Algorithm::Ecdsa { .. }
    ) && !matches!(
        algorithm,
        Algorithm::Ecdsa {
            curve: ssh_key::EcdsaCurve::NistP521
        }
    )
}

impl SshSigners {
    /// Parses an allowed_signers file. Every line must be usable: a typo in a key must not
    /// quietly leave someone unable to approve (or able to, under another name).
    pub fn parse(text: &str) -> Result<Self, SignersError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let error = |reason: String| SignersError { line, reason };
            entries.push(parse_line(raw).map_err(error)?);
        }
        Ok(Self { entries })
    }

    /// Every principal some key may sign for.
    pub fn principals(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .flat_map(|e| e.principals.iter().map(String::as_str))
    }

    /// Verifies an armored sshsig over `statement` as a signature by `statement.actor`.
    pub fn verify(&self, statement: &Statement, armored: &str) -> Result<Verified, Refusal> {
        self.verify_message(
            NAMESPACE,
            &statement.actor,
            statement.canonical().as_bytes(),
            armored,
            statement.issued_at,
        )
    }

    /// Verifies an armored sshsig over `message` in `namespace` (`configsync` for people's
    /// actions, `git` for commits) as a signature by `principal`, made at `at`.
    pub fn verify_message(
        &self,
        namespace: &str,
        principal: &str,
        message: &[u8],
        armored: &str,
        at: DateTime<Utc>,
    ) -> Result<Verified, Refusal> {
        Refusal::check_size(armored)?;
        let signature =
            SshSig::from_pem(armored.trim()).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if signature.namespace() != namespace {
            return Err(Refusal::WrongNamespace(signature.namespace().to_string()));
        }
        let key = PublicKey::from(signature.public_key().clone());
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let principal = principal.to_ascii_lowercase();
        let same_key: Vec<&AllowedSigner> = self
            .entries
            .iter()
            .filter(|e| e.key.key_data() == signature.public_key())
            .collect();
        if same_key.is_empty() {
            return Err(Refusal::UnknownKey(fingerprint));
        }
        let Some(entry) = same_key.iter().find(|e| e.principals.contains(&principal)) else {
            return Err(Refusal::KeyNotForPrincipal {
                key: fingerprint,
                principal,
                allowed: same_key
                    .iter()
                    .flat_map(|e| e.principals.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if entry
            .namespaces
            .as_ref()
            .is_some_and(|n| !n.iter().any(|n| n == namespace))
        {
            return Err(Refusal::WrongNamespace(format!(
                "{namespace} (the key's allowed_signers namespaces= does not include it)"
            )));
        }
        if entry.valid_after.is_some_and(|t| at < t) || entry.valid_before.is_some_and(|t| at > t) {
            return Err(Refusal::KeyNotValid {
                key: fingerprint,
                principal,
                at,
            });
        }
        entry
            .key
            .verify(namespace, message, &signature)
            .map_err(|_| Refusal::BadSignature)?;
        Ok(Verified {
            principal,
            key: fingerprint,
        })
    }
}

/// `principals [options] keytype base64 [comment]`.
fn parse_line(raw: &str) -> Result<AllowedSigner, String> {
    let (principals, rest) = raw
        .split_once(char::is_whitespace)
        .ok_or("expected `principals [options] keytype key`")?;
    let principals: Vec<String> = principals
        .trim_matches('"')
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    if let Some(p) = principals
        .iter()
        .find(|p| p.is_empty() || p.contains(['*', '?', '!']))
    {
        return Err(format!(
            "principal {p:?}: list each person's e-mail (patterns are not supported, so that a policy names exactly who may act)"
        ));
    }
    let rest = rest.trim_start();
    let (options, key) = if starts_with_key_type(rest) {
        ("", rest)
    } else {
        split_options(rest)?
    };
    let mut signer = AllowedSigner {
        principals,
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key: PublicKey::from_openssh(key.trim()).map_err(|e| format!("bad public key: {e}"))?,
        fingerprint: String::new(),
    };
    if !supported(&signer.key.algorithm()) {
        return Err(format!(
            "key type {} is not supported (use ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp256/384)",
            signer.key.algorithm()
        ));
    }
    signer.fingerprint = signer.key.fingerprint(HashAlg::Sha256).to_string();
    for option in split_unquoted(options, ',').filter(|o| !o.is_empty()) {
        let (name, value) = option
            .split_once('=')
            .map(|(n, v)| (n, Some(v.trim_matches('"'))))
            .unwrap_or((option, None));
        match (name.to_ascii_lowercase().as_str(), value) {
            ("namespaces", Some(v)) => {
                signer.namespaces = Some(v.split(',').map(str::to_string).collect())
            }
            ("valid-after", Some(v)) => signer.valid_after = Some(timestamp(v)?),
            ("valid-before", Some(v)) => signer.valid_before = Some(timestamp(v)?),
            ("cert-authority", None) => {
                return Err(
                    "cert-authority keys are not supported: list each person's own key".into(),
                );
            }
            (other, _) => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(signer)
}

/// Splits at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    s.split(move |c| {
        if c == '"' {
            quoted = !quoted;
        }
        c == sep && !quoted
    })
}

fn starts_with_key_type(s: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-"].iter().any(|p| s.starts_with(p))
}

/// Splits `opt1,opt2="a b",opt3 keytype key` at the first blank outside quotes. Options are
/// kept with their quotes so that `namespaces="a,b"` stays one option when split on commas.
fn split_options(s: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok((&s[..i], &s[i..])),
            _ => {}
        }
    }
    Err("expected a key after the options".into())
}

/// `YYYYMMDD[HHMM[SS]]`, UTC (a trailing `Z` is accepted).
fn timestamp(v: &str) -> Result<DateTime<Utc>, String> {
    let v = v.trim_end_matches(['Z', 'z']);
    let bad = || format!("bad timestamp {v:?}: expected YYYYMMDD[HHMM[SS]]");
    let naive = match v.len() {
        8 => NaiveDate::parse_from_str(v, "%Y%m%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        12 => NaiveDateTime::parse_from_str(v, "%Y%m%d%H%M").ok(),
        14 => NaiveDateTime::parse_from_str(v, "%Y%m%d%H%M%S").ok(),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    #[test]
    fn lines_with_options_comments_and_several_principals_parse() {
        let text = format!(
            "# sre\nalice@example.com,Bob@Example.com namespaces=\"git,configsync\",valid-after=\"20240101\" {KEY} alice laptop\n\ncarol@example.com {KEY}\n"
        );
        let signers = SshSigners::parse(&text).unwrap();
        assert_eq!(signers.entries.len(), 2);
        let first = &signers.entries[0];
        assert_eq!(first.principals, ["alice@example.com", "bob@example.com"]);
        assert_eq!(
            first.namespaces.as_deref(),
            Some(&["git".to_string(), "configsync".to_string()][..])
        );
        assert_eq!(
            first.valid_after,
            Some("2024-01-01T00:00:00Z".parse().unwrap())
        );
        assert!(first.fingerprint.starts_with("SHA256:"));
    }

    /// A throwaway Ed25519 key made with `ssh-keygen -t ed25519 -N ''` for these tests only.
    const TEST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDfxUukKOO9KTo6qdQBYKU4CtgC7dkrs2Q84542NgRjLQAAAJiPaSoLj2kq
CwAAAAtzc2gtZWQyNTUxOQAAACDfxUukKOO9KTo6qdQBYKU4CtgC7dkrs2Q84542NgRjLQ
AAAEA1KQE6oxoefkxjeYsibp5kytemALiEvrVh3s55KS6Vv9/FS6Qo470pOjqp1AFgpTgK
2ALt2SuzZDzjnjY2BGMtAAAAEHRlc3RAZXhhbXBsZS5jb20BAgMEBQ==
-----END OPENSSH PRIVATE KEY-----
";
    const TEST_PUB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN/FS6Qo470pOjqp1AFgpTgK2ALt2SuzZDzjnjY2BGMt";
    const P521_PUB: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAE2UPPZE4HNlIISpixs9VCcfwD/lKJjCKcqyVuWBuiKSfhEhlKfyt3REVT1vRoP5X10Brerqohl2dFR+PB8OMR9gwG+0A+odcePU7R7Rv7veNpNdaDpVk0CX3irsWuevOdzXxEtAMOjqysEYz6d22RmIeBIqbgGUDxYeyRC2iyjLI8iYg==";

    fn statement(actor: &str) -> Statement {
        Statement {
            action: super::super::Action::Approve,
            environment: "prod".into(),
            cluster: None,
            revision: "abc123".into(),
            bundle_digest: Some("sha256:00".into()),
            actor: actor.into(),
            issued_at: "2026-12-03T10:00:00Z".parse().unwrap(),
            expires_at: "2026-12-03T11:00:00Z".parse().unwrap(),
        }
    }

    fn sign(namespace: &str, statement: &Statement) -> String {
        let key = ssh_key::PrivateKey::from_openssh(TEST_KEY).unwrap();
        key.sign(namespace, HashAlg::Sha512, statement.canonical().as_bytes())
            .unwrap()
            .to_pem(ssh_key::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn a_good_signature_verifies_and_every_bad_one_says_why() {
        let signers = SshSigners::parse(&format!(
            "test@example.com {TEST_PUB}\nold@example.com valid-before=\"20200101\" {TEST_PUB}\n"
        ))
        .unwrap();
        let good = statement("test@example.com");
        let verified = signers.verify(&good, &sign(NAMESPACE, &good)).unwrap();
        assert_eq!(verified.principal, "test@example.com");
        assert_eq!(verified.key, signers.entries[0].fingerprint);

        let mut altered = good.clone();
        altered.revision = "def456".into();
        assert_eq!(
            signers.verify(&altered, &sign(NAMESPACE, &good)),
            Err(Refusal::BadSignature)
        );
        assert!(matches!(
            signers.verify(&good, &sign("git", &good)),
            Err(Refusal::WrongNamespace(n)) if n == "git"
        ));
        let other = statement("bob@example.com");
        assert!(matches!(
            signers.verify(&other, &sign(NAMESPACE, &other)),
            Err(Refusal::KeyNotForPrincipal { allowed, .. }) if allowed.contains("test@example.com")
        ));
        let old = statement("old@example.com");
        assert!(matches!(
            signers.verify(&old, &sign(NAMESPACE, &old)),
            Err(Refusal::KeyNotValid { .. })
        ));
        for garbage in [
            "",
            "-----BEGIN SSH SIGNATURE-----\nnot base64\n-----END SSH SIGNATURE-----\n",
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
        ] {
            assert!(
                matches!(signers.verify(&good, garbage), Err(Refusal::Malformed(_))),
                "{garbage:?}"
            );
        }
        let huge = "A".repeat(64 * 1024);
        assert!(matches!(
            signers.verify(&good, &huge),
            Err(Refusal::Malformed(m)) if m.contains("more than")
        ));
        let stranger = SshSigners::parse(&format!("test@example.com {KEY}")).unwrap();
        assert!(matches!(
            stranger.verify(&good, &sign(NAMESPACE, &good)),
            Err(Refusal::UnknownKey(_))
        ));
    }

    #[test]
    fn unsupported_key_types_are_refused_when_the_file_is_read() {
        let err = SshSigners::parse(&format!("a@x {P521_PUB}")).unwrap_err();
        assert!(err.reason.contains("not supported"), "{err}");
    }

    #[test]
    fn unusable_lines_are_refused_with_their_line_number() {
        for (text, says) in [
            (format!("*@example.com {KEY}"), "patterns are not supported"),
            (format!("a@x cert-authority {KEY}"), "cert-authority"),
            (format!("a@x bogus=1 {KEY}"), "unknown option"),
            (
                "a@x ssh-ed25519 AAAAnotbase64".to_string(),
                "bad public key",
            ),
            ("a@x".to_string(), "expected"),
            (format!("a@x valid-after=\"2024\" {KEY}"), "bad timestamp"),
        ] {
            let err = SshSigners::parse(&format!("# header\n{text}")).unwrap_err();
            assert_eq!(err.line, 2, "{text}");
            assert!(err.reason.contains(says), "{text}: {err}");
        }
    }
}
