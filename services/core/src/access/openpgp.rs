//! OpenPGP detached signatures of human actions (issue 15): a keyring of people's public keys,
//! read from ASCII armor as `gpg --armor --export` prints it, and the check of a detached
//! signature (`gpg --armor --detach-sign`) over the exact bytes of a decision, naming the
//! primary key that made it.
//!
//! rPGP parses and does the cryptography; it has no policy layer, so what makes a key fit to
//! sign here is decided in this module, once when the keyring is read:
//! - a user id counts (for its e-mail) only with a valid self-certification that no newer valid
//!   self-revocation undoes; third-party certifications are ignored, neither trusted nor failed;
//! - the primary key's flags and expiry come from its newest valid self-signature;
//! - a subkey signs only with a valid binding that grants signing and carries a valid back
//!   signature (so nobody can claim another person's subkey as theirs);
//! - any valid self-revocation of a key or subkey is final, whatever its reason code: deciding
//!   which past signatures a "superseded" key still vouches for is not worth the risk here.
//!   Revocations by a designated revoker (another key) are not looked at: removing a key from
//!   the keyring is how an access policy withdraws it.
//!
//! Expiry is judged at a time the caller gives ([`verify_at`]); [`verify`] uses now. A
//! signature's own creation time is the signer's claim, so it cannot be the judge: an auditor
//! re-checking an old decision passes the time the log recorded it.

use std::fmt;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{RevocationCode, Signature, SignatureType};
use pgp::types::{Fingerprint, KeyDetails, KeyId, Tag, Timestamp};

/// The largest armored signature accepted. One signature by any key gpg makes (RSA 4096
/// included) armors to well under 2 KiB; the cap only bounds the work an attacker can ask for.
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// The largest armored keyring accepted. Keys carrying many third-party certifications grow
/// large; `gpg --export-options export-minimal` drops those.
pub const MAX_KEYRING_BYTES: usize = 8 * 1024 * 1024;

/// Why a keyring could not be read or a signature was not accepted. Each message says what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum OpenPgpError {
    #[error(
        "the {what} is {size} bytes, over the limit of {limit} bytes{hint}",
        hint = if *what == "keyring" {
            " (export the keys with `gpg --armor --export --export-options export-minimal`)"
        } else {
            ""
        }
    )]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("the {what} is not ASCII-armored OpenPGP data: {reason}")]
    Armor { what: &'static str, reason: String },
    #[error(
        "the keyring holds no public key: export one with `gpg --armor --export <e-mail or fingerprint>`"
    )]
    EmptyKeyring,
    #[error("public key #{index} of the keyring cannot be read: {reason}")]
    BadKey { index: usize, reason: String },
    #[error(
        "key 0x{fingerprint} has no valid self-signature, so none of its user ids or subkeys can \
         be trusted: re-export it from the owner's gpg"
    )]
    UnboundKey { fingerprint: String },
    #[error(
        "key 0x{fingerprint} appears twice in the keyring: keep one export of each key \
         (`gpg --armor --export` of several keys at once writes each once)"
    )]
    DuplicateKey { fingerprint: String },
    #[error("the signature cannot be read: {reason}")]
    MalformedSignature { reason: String },
    #[error(
        "the armored signature holds {count} signatures; exactly one is expected (sign with one \
         key: `gpg --armor --detach-sign --local-user <you>`)"
    )]
    MultipleSignatures { count: usize },
    #[error(
        "the signature does not name the key that made it (no issuer), so it cannot be checked"
    )]
    NoIssuer,
    #[error("signed by key 0x{key}, which is not in the access policy's keyring")]
    UnknownKey { key: String },
    #[error("{reason}")]
    Unsupported { reason: String },
    /// `reason` is rPGP's, for logs: to a person it says no more than "does not match".
    #[error(
        "the signature by key 0x{fingerprint}{who} does not match the message: the message was \
         altered, or the signature was made over something else",
        who = owner(emails)
    )]
    BadSignature {
        fingerprint: String,
        emails: Vec<String>,
        reason: String,
    },
    #[error(
        "key 0x{key}{who} expired at {expired_at}: its owner must extend it \
         (`gpg --quick-set-expire`) and the keyring be updated with the new export",
        who = owner(emails)
    )]
    Expired {
        key: String,
        emails: Vec<String>,
        expired_at: String,
    },
    #[error(
        "key 0x{key}{who} was revoked by its owner{reason}: signatures by it are not accepted",
        who = owner(emails),
        reason = reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Revoked {
        key: String,
        emails: Vec<String>,
        reason: Option<String>,
    },
    #[error(
        "key 0x{key}{who} is not allowed to sign data (its key flags, or a subkey binding without \
         signing rights or back signature): sign with a signing key or subkey",
        who = owner(emails)
    )]
    NotSigningKey { key: String, emails: Vec<String> },
    #[error("the signature by key 0x{fingerprint} expired at {expired_at}")]
    SignatureExpired {
        fingerprint: String,
        expired_at: String,
    },
}

/// ` (a@x, b@y)` after a key id in a message, so a person sees whose key it is.
fn owner(emails: &[String]) -> String {
    if emails.is_empty() {
        String::new()
    } else {
        format!(" ({})", emails.join(", "))
    }
}

/// Who made a verified signature: always the primary key, also when a subkey signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPgpSigner {
    /// The primary key's fingerprint, upper-case hex without spaces, as `gpg --with-colons` prints it.
    pub fingerprint: String,
    /// The e-mail addresses of its valid user ids, lower-cased, in the key's order, without repeats.
    pub emails: Vec<String>,
}

/// Public keys of the people who may sign, read from ASCII armor.
#[derive(Clone)]
pub struct OpenPgpKeyring {
    keys: Vec<KeyEntry>,
}

/// One primary key, with what was decided about it when the keyring was read.
#[derive(Clone)]
struct KeyEntry {
    signer: OpenPgpSigner,
    key: SignedPublicKey,
    primary: Capability,
    subkeys: Vec<Capability>,
}

/// Whether a key or subkey may sign, from its valid self-signatures.
#[derive(Clone)]
struct Capability {
    fingerprint: Fingerprint,
    key_id: KeyId,
    can_sign: bool,
    expires: Option<SystemTime>,
    /// Set when validly revoked: the reason the owner gave, if any.
    revoked: Option<Option<String>>,
}

impl fmt::Debug for OpenPgpKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.signer))
            .finish()
    }
}

impl OpenPgpKeyring {
    /// Reads public keys from one or more ASCII-armored `PGP PUBLIC KEY BLOCK`s (as
    /// `gpg --armor --export a b c` prints them, or several such exports concatenated).
    /// Blank lines may separate blocks; anything else outside a block is refused, as is a secret
    /// key, a key twice, or a key whose self-signatures do not verify.
    pub fn from_armored(armored: &str) -> Result<Self, OpenPgpError> {
        if armored.len() > MAX_KEYRING_BYTES {
            return Err(OpenPgpError::TooLarge {
                what: "keyring",
                size: armored.len(),
                limit: MAX_KEYRING_BYTES,
            });
        }
        let blocks = armor_blocks(armored, "keyring", "PUBLIC KEY BLOCK")?;
        let mut keys: Vec<KeyEntry> = Vec::new();
        for block in blocks {
            let (parsed, _headers) = SignedPublicKey::from_armor_many_buf(block.as_bytes())
                .map_err(|e| OpenPgpError::Armor {
                    what: "keyring",
                    reason: brief(&e),
                })?;
            for key in parsed {
                let index = keys.len() + 1;
                let key = key.map_err(|e| OpenPgpError::BadKey {
                    index,
                    reason: brief(&e),
                })?;
                let entry = KeyEntry::new(key)?;
                if keys
                    .iter()
                    .any(|k| k.signer.fingerprint == entry.signer.fingerprint)
                {
                    return Err(OpenPgpError::DuplicateKey {
                        fingerprint: entry.signer.fingerprint,
                    });
                }
                keys.push(entry);
            }
        }
        if keys.is_empty() {
            return Err(OpenPgpError::EmptyKeyring);
        }
        Ok(Self { keys })
    }

    /// Every primary key of the keyring, in the order read.
    pub fn keys(&self) -> impl Iterator<Item = &OpenPgpSigner> {
        self.keys.iter().map(|k| &k.signer)
    }

    /// The primary key with this fingerprint (hex, any case, spaces and a `0x` ignored, as gpg
    /// prints it in its several forms).
    pub fn key(&self, fingerprint: &str) -> Option<&OpenPgpSigner> {
        let compact: String = fingerprint
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let wanted = compact.strip_prefix("0X").unwrap_or(&compact);
        self.keys().find(|k| k.fingerprint == wanted)
    }

    /// How many primary keys the keyring holds (never 0).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a keyring is never empty ([`OpenPgpKeyring::from_armored`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key (primary, or subkey with its index) that `fingerprints` or `key_ids` name.
    fn find(
        &self,
        fingerprints: &[&Fingerprint],
        key_ids: &[&KeyId],
    ) -> Option<(&KeyEntry, Option<usize>)> {
        // A 64-bit key id can be made to collide, a fingerprint cannot: when the signature
        // names a fingerprint, only that counts, so a stranger's signature is reported as a
        // stranger's rather than as a bad signature by whoever shares its key id.
        if fingerprints.is_empty() {
            self.find_by(|c| key_ids.iter().any(|id| **id == c.key_id))
        } else {
            self.find_by(|c| fingerprints.iter().any(|fp| **fp == c.fingerprint))
        }
    }

    fn find_by(&self, matches: impl Fn(&Capability) -> bool) -> Option<(&KeyEntry, Option<usize>)> {
        for entry in &self.keys {
            if matches(&entry.primary) {
                return Some((entry, None));
            }
            if let Some(i) = entry.subkeys.iter().position(&matches) {
                return Some((entry, Some(i)));
            }
        }
        None
    }
}

impl KeyEntry {
    fn new(key: SignedPublicKey) -> Result<Self, OpenPgpError> {
        let primary_key = &key.primary_key;
        let fingerprint = format!("{:X}", primary_key.fingerprint());

        // Self-signatures over user ids: a user id is bound by its newest valid certification
        // unless a newer valid certification revocation undoes it.
        let mut newest_self_sig: Option<&Signature> = None;
        let mut emails: Vec<String> = Vec::new();
        for user in &key.details.users {
            let mut newest_cert: Option<&Signature> = None;
            let mut newest_revocation: Option<&Signature> = None;
            for sig in &user.signatures {
                if sig
                    .verify_certification(primary_key, Tag::UserId, &user.id)
                    .is_err()
                {
                    // Someone else's certification, or a broken one: it binds nothing.
                    continue;
                }
                let slot = if sig.typ() == Some(SignatureType::CertRevocation) {
                    &mut newest_revocation
                } else {
                    &mut newest_cert
                };
                *slot = newer(*slot, sig);
            }
            let Some(cert) = newest_cert else { continue };
            if newest_revocation.is_some_and(|r| created(r) >= created(cert)) {
                continue;
            }
            newest_self_sig = newer(newest_self_sig, cert);
            if let Some(email) = email_of(user.id.id())
                && !emails.contains(&email)
            {
                emails.push(email);
            }
        }
        let mut revoked = None;
        for sig in &key.details.direct_signatures {
            if sig.typ() == Some(SignatureType::Key) && sig.verify_key(primary_key).is_ok() {
                newest_self_sig = newer(newest_self_sig, sig);
            }
        }
        for sig in &key.details.revocation_signatures {
            if sig.typ() == Some(SignatureType::KeyRevocation)
                && sig.verify_key(primary_key).is_ok()
            {
                revoked = Some(revocation_reason(sig));
            }
        }
        let Some(self_sig) = newest_self_sig else {
            return Err(OpenPgpError::UnboundKey { fingerprint });
        };
        let primary = Capability {
            fingerprint: primary_key.fingerprint(),
            key_id: primary_key.legacy_key_id(),
            // No key flags at all is an old key that predates them: it signs (RFC 9580 5.2.3.29
            // leaves that to the implementation; gpg allows it).
            can_sign: !has_key_flags(self_sig) || self_sig.key_flags().sign(),
            expires: expiry(primary_key.created_at(), self_sig),
            revoked,
        };

        let subkeys = key
            .public_subkeys
            .iter()
            .map(|sub| {
                let mut binding: Option<&Signature> = None;
                let mut revoked = None;
                for sig in &sub.signatures {
                    if sig.verify_subkey_binding(primary_key, &sub.key).is_err() {
                        continue;
                    }
                    match sig.typ() {
                        Some(SignatureType::SubkeyRevocation) => {
                            revoked = Some(revocation_reason(sig));
                        }
                        _ => binding = newer(binding, sig),
                    }
                }
                // A signing subkey must sign the primary back: without that, anyone could
                // bind someone else's signing key to their own primary and sign as them.
                let can_sign = binding.is_some_and(|b| {
                    b.key_flags().sign()
                        && b.embedded_signature().is_some_and(|back| {
                            back.verify_primary_key_binding(&sub.key, primary_key)
                                .is_ok()
                        })
                });
                Capability {
                    fingerprint: sub.key.fingerprint(),
                    key_id: sub.key.legacy_key_id(),
                    can_sign,
                    expires: binding.and_then(|b| expiry(sub.key.created_at(), b)),
                    revoked,
                }
            })
            .collect();

        Ok(Self {
            signer: OpenPgpSigner {
                fingerprint,
                emails,
            },
            key,
            primary,
            subkeys,
        })
    }
}

/// Verifies a detached, ASCII-armored signature (`gpg --armor --detach-sign`) over exactly
/// `message`, judging key expiry at the present time. See [`verify_at`].
pub fn verify(
    keyring: &OpenPgpKeyring,
    armored_signature: &str,
    message: &[u8],
) -> Result<OpenPgpSigner, OpenPgpError> {
    verify_at(keyring, armored_signature, message, SystemTime::now())
}

/// Verifies a detached, ASCII-armored signature over exactly `message` (a binary signature:
/// text-mode signatures, which forgive changed line endings, are refused), made by a key or
/// signing subkey of `keyring` that was neither revoked nor expired at `at`. Returns the primary
/// key that signed.
pub fn verify_at(
    keyring: &OpenPgpKeyring,
    armored_signature: &str,
    message: &[u8],
    at: SystemTime,
) -> Result<OpenPgpSigner, OpenPgpError> {
    if armored_signature.len() > MAX_SIGNATURE_BYTES {
        return Err(OpenPgpError::TooLarge {
            what: "signature",
            size: armored_signature.len(),
            limit: MAX_SIGNATURE_BYTES,
        });
    }
    let sig = read_signature(armored_signature)?;

    match sig.typ() {
        Some(SignatureType::Binary) => {}
        Some(SignatureType::Text) => {
            return Err(OpenPgpError::Unsupported {
                reason: "the signature was made in text mode (gpg --textmode, or `textmode` in \
                         gpg.conf), which ignores changes of line endings: sign in binary mode \
                         with `gpg --armor --detach-sign`"
                    .into(),
            });
        }
        other => {
            return Err(OpenPgpError::Unsupported {
                reason: format!(
                    "the signature is of type {other:?}, not a signature over data: make it with \
                     `gpg --armor --detach-sign`"
                ),
            });
        }
    }
    // What rPGP still verifies but nobody should sign with: collisions are practical for SHA-1
    // and worse for the older two.
    if let Some(
        alg @ (HashAlgorithm::None
        | HashAlgorithm::Md5
        | HashAlgorithm::Sha1
        | HashAlgorithm::Ripemd160),
    ) = sig.hash_alg()
    {
        return Err(OpenPgpError::Unsupported {
            reason: format!(
                "the signature uses the hash {alg}, which is not collision-resistant: sign with \
                 SHA-256 or better (gpg's `--digest-algo SHA256`)"
            ),
        });
    }

    let fingerprints = sig.issuer_fingerprint();
    let key_ids = sig.issuer_key_id();
    let Some((entry, subkey)) = keyring.find(&fingerprints, &key_ids) else {
        let named = fingerprints
            .first()
            .map(|fp| format!("{fp:X}"))
            .or_else(|| key_ids.first().map(|id| hex::encode_upper(id.as_ref())));
        return Err(match named {
            Some(key) => OpenPgpError::UnknownKey { key },
            None => OpenPgpError::NoIssuer,
        });
    };

    // The primary key's state rules its subkeys too: a revoked or expired primary revokes or
    // expires them all.
    let emails = &entry.signer.emails;
    check_usable(&entry.primary, emails, at)?;
    let signing = match subkey {
        None => &entry.primary,
        Some(i) => {
            let cap = &entry.subkeys[i];
            check_usable(cap, emails, at)?;
            cap
        }
    };
    if !signing.can_sign {
        return Err(OpenPgpError::NotSigningKey {
            key: format!("{:X}", signing.fingerprint),
            emails: emails.clone(),
        });
    }

    let checked = match subkey {
        None => sig.verify(&entry.key.primary_key, message),
        Some(i) => sig.verify(&entry.key.public_subkeys[i].key, message),
    };
    checked.map_err(|e| OpenPgpError::BadSignature {
        fingerprint: entry.signer.fingerprint.clone(),
        emails: emails.clone(),
        reason: brief(&e),
    })?;

    // Checked after the cryptography, so the signature's expiry subpacket is known to be the
    // signer's own.
    if let (Some(created), Some(valid_for)) = (sig.created(), sig.signature_expiration_time())
        && valid_for.as_secs() != 0
    {
        let expired_at = SystemTime::from(created) + Duration::from(valid_for);
        if expired_at <= at {
            return Err(OpenPgpError::SignatureExpired {
                fingerprint: entry.signer.fingerprint.clone(),
                expired_at: rfc3339(expired_at),
            });
        }
    }
    Ok(entry.signer.clone())
}

/// The one signature packet of an armored detached signature.
fn read_signature(armored: &str) -> Result<Signature, OpenPgpError> {
    let blocks = armor_blocks(armored, "signature", "SIGNATURE")?;
    let [block] = blocks.as_slice() else {
        return Err(OpenPgpError::Armor {
            what: "signature",
            reason: format!(
                "it holds {} armored blocks; exactly one `-----BEGIN PGP SIGNATURE-----` block \
                 is expected",
                blocks.len()
            ),
        });
    };
    let (parsed, _headers) =
        DetachedSignature::from_armor_many_buf(block.as_bytes()).map_err(|e| {
            OpenPgpError::Armor {
                what: "signature",
                reason: brief(&e),
            }
        })?;
    let mut signatures = Vec::new();
    for sig in parsed {
        let sig = sig.map_err(|e| OpenPgpError::MalformedSignature { reason: brief(&e) })?;
        signatures.push(sig.signature);
        // Counted, not collected without end: a block of thousands of packets stops here.
        if signatures.len() > 1 {
            break;
        }
    }
    match signatures.len() {
        0 => Err(OpenPgpError::MalformedSignature {
            reason: "the armored block holds no complete signature packet (truncated, or of a \
                     version this verifier does not read)"
                .into(),
        }),
        1 => Ok(signatures.remove(0)),
        _ => {
            // Counted exactly for the message, now that it is bounded by the size cap.
            let count = DetachedSignature::from_armor_many_buf(block.as_bytes())
                .map(|(parsed, _)| parsed.count())
                .unwrap_or(signatures.len());
            Err(OpenPgpError::MultipleSignatures { count })
        }
    }
}

/// Refuses a revoked key, or one expired at `at`.
fn check_usable(cap: &Capability, emails: &[String], at: SystemTime) -> Result<(), OpenPgpError> {
    let key = format!("{:X}", cap.fingerprint);
    if let Some(reason) = &cap.revoked {
        return Err(OpenPgpError::Revoked {
            key,
            emails: emails.to_vec(),
            reason: reason.clone(),
        });
    }
    if let Some(expires) = cap.expires
        && expires <= at
    {
        return Err(OpenPgpError::Expired {
            key,
            emails: emails.to_vec(),
            expired_at: rfc3339(expires),
        });
    }
    Ok(())
}

/// The armored blocks labelled `PGP {label}` in `text`, each from its BEGIN line to its END
/// line. Blank lines may surround blocks; any other text outside them is refused, so that a
/// pasted fragment or a wrong file is named rather than half-read.
fn armor_blocks<'a>(
    text: &'a str,
    what: &'static str,
    label: &str,
) -> Result<Vec<&'a str>, OpenPgpError> {
    let begin = format!("-----BEGIN PGP {label}-----");
    let end = format!("-----END PGP {label}-----");
    let fail = |reason: String| OpenPgpError::Armor { what, reason };
    let mut blocks = Vec::new();
    // Byte offset where the open block's BEGIN line starts, and that line's number.
    let mut open: Option<(usize, usize)> = None;
    let mut offset = 0;
    for (number, raw) in text.split_inclusive('\n').enumerate() {
        let number = number + 1;
        let line = raw.trim_end();
        let start = offset;
        offset += raw.len();
        match open {
            None if line.trim().is_empty() => {}
            None if line == begin => open = Some((start, number)),
            None if line.starts_with("-----BEGIN PGP ") => {
                let found = line.trim_start_matches("-----BEGIN ").trim_end_matches('-');
                let advice = if found.contains("PRIVATE") {
                    ": a secret key must never be shared; export the public key with \
                     `gpg --armor --export`"
                } else {
                    ""
                };
                return Err(fail(format!(
                    "line {number} begins a {found}, where a PGP {label} is expected{advice}"
                )));
            }
            None => {
                return Err(fail(format!(
                    "line {number} is outside any `{begin}` block"
                )));
            }
            Some((from, _)) if line == end => {
                blocks.push(&text[from..offset]);
                open = None;
            }
            Some((_, since)) if line.starts_with("-----BEGIN ") => {
                return Err(fail(format!(
                    "line {number} begins a block before the one begun on line {since} ended \
                     (missing `{end}`)"
                )));
            }
            Some(_) => {}
        }
    }
    if let Some((_, since)) = open {
        return Err(fail(format!(
            "the block begun on line {since} has no `{end}` line (truncated?)"
        )));
    }
    if blocks.is_empty() {
        return Err(fail(format!("it has no `{begin}` line")));
    }
    Ok(blocks)
}

/// `Name (comment) <Address@Example.com>` or a bare address → `address@example.com`.
fn email_of(user_id: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(user_id).ok()?;
    let candidate = match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    }
    .trim();
    // One '@' with something on each side and no spaces: a bare name is no address.
    let (local, domain) = candidate.split_once('@')?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || candidate.chars().any(char::is_whitespace)
    {
        return None;
    }
    Some(candidate.to_lowercase())
}

fn created(sig: &Signature) -> Option<Timestamp> {
    sig.created()
}

/// The newer of `current` and `sig` by creation time (`sig` on a tie: later packets supersede).
fn newer<'a>(current: Option<&'a Signature>, sig: &'a Signature) -> Option<&'a Signature> {
    match current {
        Some(c) if created(c) > created(sig) => Some(c),
        _ => Some(sig),
    }
}

/// When a key created at `created` expires by the key expiration time of `sig`, if ever.
fn expiry(created: Timestamp, sig: &Signature) -> Option<SystemTime> {
    let valid_for = sig.key_expiration_time()?;
    // Zero means "never", as no subpacket does.
    (valid_for.as_secs() != 0).then(|| SystemTime::from(created) + Duration::from(valid_for))
}

fn has_key_flags(sig: &Signature) -> bool {
    sig.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, pgp::packet::SubpacketData::KeyFlags(_)))
    })
}

/// The reason a revocation gives, for the message: its code and the owner's words.
fn revocation_reason(sig: &Signature) -> Option<String> {
    let code = sig.revocation_reason_code().map(|code| match code {
        RevocationCode::NoReason => "no reason given".to_string(),
        RevocationCode::KeySuperseded => "superseded".to_string(),
        RevocationCode::KeyCompromised => "compromised".to_string(),
        RevocationCode::KeyRetired => "retired".to_string(),
        other => format!("{other:?}"),
    });
    let text = sig
        .revocation_reason_string()
        .map(|s| String::from_utf8_lossy(s).trim().to_string())
        .filter(|s| !s.is_empty());
    match (code, text) {
        (Some(code), Some(text)) => Some(format!("{code}: {text}")),
        (code, text) => code.or(text),
    }
}

/// rPGP's error, made fit for a one-line message: some of its errors print a `Debug` form
/// with the parser's input bytes or a whole backtrace after the useful words.
fn brief(error: &pgp::errors::Error) -> String {
    let text = error.to_string();
    let mut cut = text.lines().next().unwrap_or_default();
    for noise in [", backtrace", " Error(", " { "] {
        if let Some(at) = cut.find(noise) {
            cut = &cut[..at];
        }
    }
    const MAX: usize = 160;
    match cut.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &cut[..at]),
        None => cut.to_string(),
    }
}

fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    use super::*;

    const MESSAGE: &[u8] =
        b"approve\nenvironment=prod\nrevision=0123abcd\nexpires=2030-01-01T00:00:00Z\n";

    /// A throwaway GnuPG home where the tests make real keys and signatures with `gpg`, the way
    /// a person would. Its agent is stopped when it is dropped.
    struct Gpg {
        gpg: PathBuf,
        home: tempfile::TempDir,
    }

    impl Gpg {
        fn new() -> Self {
            let gpg = configsync_prereq::require_tool("gpg");
            // Short, under the system temp dir: gpg-agent's socket path must stay under 108 bytes.
            let home = tempfile::Builder::new()
                .prefix("gpg")
                .tempdir()
                .expect("a temp dir for GNUPGHOME");
            // gpg warns about a home others can read; keep its output to what matters.
            std::fs::set_permissions(
                home.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
            .expect("chmod 700 GNUPGHOME");
            Self { gpg, home }
        }

        /// Runs gpg unattended; returns its standard output, panicking with its errors.
        fn run(&self, args: &[&str], input: Option<&[u8]>) -> String {
            let mut child = Command::new(&self.gpg)
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
                .args(["--passphrase", ""])
                .args(args)
                .stdin(if input.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("gpg starts");
            if let Some(input) = input {
                let mut stdin = child.stdin.take().expect("gpg's stdin");
                stdin.write_all(input).expect("write to gpg");
            }
            let out = child.wait_with_output().expect("gpg ends");
            assert!(
                out.status.success(),
                "gpg {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).expect("gpg prints UTF-8")
        }

        /// The fingerprint of the key or subkey that a gpg command reports creating.
        fn created(status: &str) -> String {
            status
                .lines()
                .find_map(|l| l.strip_prefix("[GNUPG:] KEY_CREATED "))
                .and_then(|rest| rest.split_whitespace().nth(1))
                .expect("gpg reports KEY_CREATED")
                .to_string()
        }

        /// Makes a primary key (`algo` as gpg names it) and returns its fingerprint.
        fn gen_key(&self, user_id: &str, algo: &str) -> String {
            self.gen_key_with(&[], user_id, algo, "never")
        }

        fn gen_key_with(&self, extra: &[&str], user_id: &str, algo: &str, expire: &str) -> String {
            let mut args = extra.to_vec();
            // --yes: the impostor test makes a second key with another person's user id.
            args.extend([
                "--yes",
                "--status-fd",
                "1",
                "--quick-gen-key",
                user_id,
                algo,
                "sign",
                expire,
            ]);
            Self::created(&self.run(&args, None))
        }

        /// Adds a signing subkey to `primary` and returns its fingerprint.
        fn add_signing_subkey(&self, primary: &str) -> String {
            self.add_signing_subkey_with(&[], primary, "never")
        }

        fn add_signing_subkey_with(&self, extra: &[&str], primary: &str, expire: &str) -> String {
            let mut args = extra.to_vec();
            args.extend([
                "--status-fd",
                "1",
                "--quick-add-key",
                primary,
                "ed25519",
                "sign",
                expire,
            ]);
            Self::created(&self.run(&args, None))
        }

        fn export(&self, keys: &[&str]) -> String {
            let mut args = vec!["--armor", "--export"];
            args.extend(keys);
            self.run(&args, None)
        }

        /// A detached armored signature over `message`; `signers` are `--local-user` values.
        fn sign_with(&self, extra: &[&str], signers: &[&str], message: &[u8]) -> String {
            let mut args = extra.to_vec();
            for signer in signers {
                args.extend(["--local-user", signer]);
            }
            args.extend(["--armor", "--detach-sign"]);
            self.run(&args, Some(message))
        }

        fn sign(&self, signer: &str, message: &[u8]) -> String {
            self.sign_with(&[], &[signer], message)
        }
    }

    impl Drop for Gpg {
        fn drop(&mut self) {
            // Best effort: a leftover agent only holds a socket in a deleted directory.
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--kill", "gpg-agent"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn keyring(armored: &str) -> OpenPgpKeyring {
        OpenPgpKeyring::from_armored(armored).expect("the keyring reads")
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn ed25519_and_rsa_signatures_name_their_key_and_e_mails() {
        let gpg = Gpg::new();
        let alice = gpg.gen_key("Alice Example <Alice@Example.com>", "ed25519");
        let bob = gpg.gen_key("Bob <bob@example.com>", "rsa3072");
        gpg.run(
            &["--quick-add-uid", &bob, "Bob at work <Bob@Work.example>"],
            None,
        );
        let ring = keyring(&gpg.export(&[&alice, &bob]));
        assert_eq!(ring.len(), 2);

        let signed = verify(&ring, &gpg.sign(&alice, MESSAGE), MESSAGE).expect("alice's verifies");
        assert_eq!(
            signed,
            OpenPgpSigner {
                fingerprint: alice.clone(),
                emails: vec!["alice@example.com".into()],
            }
        );
        assert_eq!(alice.len(), 40, "a v4 fingerprint as gpg prints it");
        assert_eq!(alice, alice.to_ascii_uppercase());

        let bob_sig = gpg.sign(&bob, MESSAGE);
        let signed = verify(&ring, &bob_sig, MESSAGE).expect("bob's RSA signature verifies");
        assert_eq!(signed.fingerprint, bob);
        assert_eq!(signed.emails, ["bob@example.com", "bob@work.example"]);
        assert_eq!(ring.key(&bob.to_lowercase()), Some(&signed));
        assert_eq!(ring.key(&format!("0x{bob}")), Some(&signed));

        // One byte changed, one added, one dropped: each fails, naming whose signature it was.
        let mut changed = MESSAGE.to_vec();
        changed[30] ^= 1;
        let mut longer = MESSAGE.to_vec();
        longer.push(b'\n');
        for altered in [&changed[..], &longer[..], &MESSAGE[..MESSAGE.len() - 1]] {
            let err = verify(&ring, &bob_sig, altered).expect_err("an altered message fails");
            assert!(matches!(err, OpenPgpError::BadSignature { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains(&format!("0x{bob}")), "{text}");
            assert!(text.contains("does not match the message"), "{text}");
        }
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn a_signing_subkey_names_its_primary_key() {
        let gpg = Gpg::new();
        let carol = gpg.gen_key("Carol <carol@example.com>", "ed25519");
        let subkey = gpg.add_signing_subkey(&carol);
        assert_ne!(carol, subkey);
        let ring = keyring(&gpg.export(&[&carol]));

        // `!` makes gpg sign with exactly that subkey.
        let sig = gpg.sign(&format!("{subkey}!"), MESSAGE);
        let issuer = read_signature(&sig).expect("a signature");
        let issuers: Vec<String> = issuer
            .issuer_fingerprint()
            .iter()
            .map(|fp| format!("{fp:X}"))
            .collect();
        assert_eq!(issuers, [subkey.as_str()], "the subkey made it");

        let signed = verify(&ring, &sig, MESSAGE).expect("the subkey's signature verifies");
        assert_eq!(signed.fingerprint, carol);
        assert_eq!(signed.emails, ["carol@example.com"]);
        assert!(matches!(
            verify(&ring, &sig, b"something else"),
            Err(OpenPgpError::BadSignature { .. })
        ));
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn a_key_outside_the_keyring_is_refused_by_name_even_with_a_known_e_mail() {
        let gpg = Gpg::new();
        let alice = gpg.gen_key("Alice <alice@example.com>", "ed25519");
        // Mallory's own key, with Alice's user id on it.
        let mallory = gpg.gen_key("Alice <alice@example.com>", "ed25519");
        let ring = keyring(&gpg.export(&[&alice]));

        let err = verify(&ring, &gpg.sign(&mallory, MESSAGE), MESSAGE).expect_err("refused");
        assert!(
            matches!(&err, OpenPgpError::UnknownKey { key } if *key == mallory),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("signed by key 0x{mallory}, which is not in the access policy's keyring")
        );
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn a_keyring_is_read_from_concatenated_exports_and_refuses_duplicates_and_secrets() {
        let gpg = Gpg::new();
        let alice = gpg.gen_key("Alice <alice@example.com>", "ed25519");
        let bob = gpg.gen_key("Bob <bob@example.com>", "ed25519");
        let (a, b) = (gpg.export(&[&alice]), gpg.export(&[&bob]));

        // `cat alice.asc bob.asc`, with blank lines and CRLF line ends as an editor may leave.
        let concatenated = format!("\n{a}\n\n{}", b.replace('\n', "\r\n"));
        let ring = keyring(&concatenated);
        let fingerprints: Vec<&str> = ring.keys().map(|k| k.fingerprint.as_str()).collect();
        assert_eq!(fingerprints, [alice.as_str(), bob.as_str()]);
        let signed = verify(&ring, &gpg.sign(&bob, MESSAGE), MESSAGE).expect("verifies");
        assert_eq!(signed.fingerprint, bob);

        let twice = OpenPgpKeyring::from_armored(&format!("{a}{a}")).expect_err("a duplicate");
        assert!(
            matches!(&twice, OpenPgpError::DuplicateKey { fingerprint } if *fingerprint == alice)
        );

        let secret = gpg.run(&["--armor", "--export-secret-keys", &alice], None);
        let err = OpenPgpKeyring::from_armored(&secret).expect_err("a secret key");
        assert!(
            err.to_string().contains("secret key must never be shared"),
            "{err}"
        );

        // A signature where the keyring belongs: named, not half-read.
        let err = OpenPgpKeyring::from_armored(&gpg.sign(&alice, MESSAGE)).expect_err("no keys");
        assert!(err.to_string().contains("begins a PGP SIGNATURE"), "{err}");
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn garbage_and_truncated_armor_fail_clearly() {
        let gpg = Gpg::new();
        let alice = gpg.gen_key("Alice <alice@example.com>", "ed25519");
        let ring = keyring(&gpg.export(&[&alice]));
        let sig = gpg.sign(&alice, MESSAGE);
        let lines: Vec<&str> = sig.lines().collect();
        let end = lines.len() - 1;
        assert!(lines[end].starts_with("-----END"), "{sig}");

        let cases: Vec<(String, &str)> = vec![
            (String::new(), "has no `-----BEGIN PGP SIGNATURE-----` line"),
            (
                "   \n\n".into(),
                "has no `-----BEGIN PGP SIGNATURE-----` line",
            ),
            ("not a signature at all\n".into(), "line 1 is outside any"),
            // Cut off before its END line, as a message that was cut short.
            (
                lines[..end - 1].join("\n"),
                "has no `-----END PGP SIGNATURE-----` line",
            ),
            // Cut inside the base64, END line kept.
            (format!("{}\n{}\n", lines[..3].join("\n"), lines[end]), ""),
            // The base64 replaced by noise.
            (
                format!(
                    "{}\n\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n{}\n",
                    lines[0], lines[end]
                ),
                "",
            ),
            (
                format!("{}\n\n!!!! not base64 ****\n{}\n", lines[0], lines[end]),
                "",
            ),
            // Two blocks: which one would count?
            (
                format!("{sig}{sig}"),
                "exactly one `-----BEGIN PGP SIGNATURE-----` block",
            ),
            // A key where the signature belongs.
            (gpg.export(&[&alice]), "begins a PGP PUBLIC KEY BLOCK"),
        ];
        for (input, expected) in cases {
            let err = verify(&ring, &input, MESSAGE).expect_err("malformed input is refused");
            assert!(
                matches!(
                    err,
                    OpenPgpError::Armor { .. } | OpenPgpError::MalformedSignature { .. }
                ),
                "{input:?}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(expected), "{input:?}: {text}");
            assert!(text.starts_with("the signature"), "{text}");
            // One line a person can read, not a parser's dump.
            assert!(!text.contains('\n') && text.len() < 300, "{text}");
        }

        // The keyring alike.
        let key = gpg.export(&[&alice]);
        let key_lines: Vec<&str> = key.lines().collect();
        for bad in [
            String::new(),
            "garbage".to_string(),
            key_lines[..key_lines.len() - 1].join("\n"),
            format!(
                "{}\n{}\n",
                key_lines[..4].join("\n"),
                key_lines[key_lines.len() - 1]
            ),
        ] {
            let err = OpenPgpKeyring::from_armored(&bad).expect_err("a bad keyring is refused");
            assert!(
                matches!(
                    err,
                    OpenPgpError::Armor { .. }
                        | OpenPgpError::BadKey { .. }
                        | OpenPgpError::EmptyKeyring
                ),
                "{bad:?}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                !text.contains('\n') && !text.contains("backtrace"),
                "{text}"
            );
        }
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn signatures_of_other_shapes_are_refused() {
        let gpg = Gpg::new();
        let alice = gpg.gen_key("Alice <alice@example.com>", "ed25519");
        let bob = gpg.gen_key("Bob <bob@example.com>", "rsa3072");
        let ring = keyring(&gpg.export(&[&alice, &bob]));

        // Two signers at once: one armored block with two signature packets.
        let both = gpg.sign_with(&[], &[&alice, &bob], MESSAGE);
        let err = verify(&ring, &both, MESSAGE).expect_err("two signatures");
        assert!(
            matches!(err, OpenPgpError::MultipleSignatures { count: 2 }),
            "{err:?}"
        );

        // Text mode forgives CRLF for LF: refused, not silently weaker.
        let text = gpg.sign_with(&["--textmode"], &[&alice], MESSAGE);
        let err = verify(&ring, &text, MESSAGE).expect_err("text mode");
        assert!(err.to_string().contains("text mode"), "{err}");

        let sha1 = gpg.sign_with(&["--digest-algo", "SHA1"], &[&bob], MESSAGE);
        let err = verify(&ring, &sha1, MESSAGE).expect_err("SHA-1");
        assert!(err.to_string().contains("SHA1"), "{err}");
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn an_expired_key_is_refused_now_but_accepted_at_a_time_it_was_valid() {
        let gpg = Gpg::new();
        // Made and used on 1 January 2020, valid for a day.
        let old = gpg.gen_key_with(
            &["--faked-system-time", "20200101T000000"],
            "Old <old@example.com>",
            "ed25519",
            "1d",
        );
        let sig = gpg.sign_with(
            &["--faked-system-time", "20200101T060000"],
            &[&old],
            MESSAGE,
        );
        let ring = keyring(&gpg.export(&[&old]));

        let err = verify(&ring, &sig, MESSAGE).expect_err("expired");
        assert!(matches!(err, OpenPgpError::Expired { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "key 0x{old} (old@example.com) expired at 2020-01-02"
            )),
            "{text}"
        );

        let noon = DateTime::parse_from_rfc3339("2020-01-01T12:00:00Z").expect("a time");
        let signed = verify_at(&ring, &sig, MESSAGE, noon.into()).expect("valid then");
        assert_eq!(signed.fingerprint, old);

        // A primary that never expires, with a signing subkey that did: the subkey is named.
        let then = ["--faked-system-time", "20200101T000000"];
        let lasting = gpg.gen_key_with(&then, "Sub <sub@example.com>", "ed25519", "never");
        let subkey = gpg.add_signing_subkey_with(&then, &lasting, "1d");
        let sig = gpg.sign_with(
            &["--faked-system-time", "20200101T060000"],
            &[&format!("{subkey}!")],
            MESSAGE,
        );
        let ring = keyring(&gpg.export(&[&lasting]));
        let err = verify(&ring, &sig, MESSAGE).expect_err("the subkey expired");
        assert!(
            matches!(&err, OpenPgpError::Expired { key, .. } if *key == subkey),
            "{err:?}"
        );
        let signed = verify_at(&ring, &sig, MESSAGE, noon.into()).expect("valid then");
        assert_eq!(signed.fingerprint, lasting);
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn a_revoked_user_id_gives_no_e_mail() {
        let gpg = Gpg::new();
        let bob = gpg.gen_key("Bob <bob@example.com>", "ed25519");
        gpg.run(
            &["--quick-add-uid", &bob, "Bob <bob@old-job.example>"],
            None,
        );
        let ring = keyring(&gpg.export(&[&bob]));
        let emails = &ring.key(&bob).expect("bob's key").emails;
        assert_eq!(emails, &["bob@example.com", "bob@old-job.example"]);

        gpg.run(
            &["--quick-revoke-uid", &bob, "Bob <bob@old-job.example>"],
            None,
        );
        let ring = keyring(&gpg.export(&[&bob]));
        let signed = verify(&ring, &gpg.sign(&bob, MESSAGE), MESSAGE).expect("verifies");
        assert_eq!(signed.emails, ["bob@example.com"]);
    }

    #[test]
    #[cfg_attr(
        not(has_gpg),
        ignore = "gpg is not on PATH: install GnuPG (Debian: gnupg)"
    )]
    fn a_revoked_key_is_refused() {
        let gpg = Gpg::new();
        let dave = gpg.gen_key("Dave <dave@example.com>", "ed25519");
        let sig = gpg.sign(&dave, MESSAGE);
        let ring = keyring(&gpg.export(&[&dave]));
        verify(&ring, &sig, MESSAGE).expect("valid before the revocation");

        // gpg leaves a revocation certificate beside every key it makes, its armor line
        // escaped with a ':' so it cannot be imported by accident.
        let path = gpg.home.path().join(format!("openpgp-revocs.d/{dave}.rev"));
        let certificate = std::fs::read_to_string(&path).expect("gpg's revocation certificate");
        let certificate = certificate.replace(":-----BEGIN PGP", "-----BEGIN PGP");
        gpg.run(&["--import"], Some(certificate.as_bytes()));

        let ring = keyring(&gpg.export(&[&dave]));
        let err = verify(&ring, &sig, MESSAGE).expect_err("revoked");
        assert!(matches!(err, OpenPgpError::Revoked { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("key 0x{dave} (dave@example.com) was revoked")),
            "{err}"
        );
    }

    #[test]
    fn oversized_input_is_refused_before_it_is_read() {
        let ring = OpenPgpKeyring { keys: Vec::new() };
        let huge = "A".repeat(MAX_SIGNATURE_BYTES + 1);
        let err = verify(&ring, &huge, MESSAGE).expect_err("too large");
        assert_eq!(
            err.to_string(),
            format!(
                "the signature is {} bytes, over the limit of 65536 bytes",
                huge.len()
            )
        );
        let huge = "A".repeat(MAX_KEYRING_BYTES + 1);
        let err = OpenPgpKeyring::from_armored(&huge).expect_err("too large");
        assert!(err.to_string().contains("export-minimal"), "{err}");
    }

    #[test]
    fn a_keyring_can_be_shared_between_tasks() {
        // Services keep one keyring behind an Arc and verify from any task.
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<OpenPgpKeyring>();
        shareable::<OpenPgpError>();
    }

    #[test]
    fn e_mails_are_taken_from_user_ids() {
        for (user_id, email) in [
            ("Alice <Alice@Example.COM>", Some("alice@example.com")),
            (
                "Alice (work) <alice@corp.example>",
                Some("alice@corp.example"),
            ),
            ("bob@example.com", Some("bob@example.com")),
            (" <carol@example.com> ", Some("carol@example.com")),
            ("Dave", None),
            ("Eve <not an address>", None),
            ("<@example.com>", None),
            ("<a@b@c>", None),
        ] {
            assert_eq!(email_of(user_id.as_bytes()).as_deref(), email, "{user_id}");
        }
        assert_eq!(email_of(b"\xff\xfe <x@y>"), None, "not UTF-8");
    }

    #[test]
    fn armor_blocks_are_cut_at_their_begin_and_end_lines() {
        let one = "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n";
        assert_eq!(
            armor_blocks(one, "signature", "SIGNATURE").expect("one"),
            [one]
        );
        let two = format!("\n{one}\n  \n{one}");
        assert_eq!(
            armor_blocks(&two, "signature", "SIGNATURE")
                .expect("two")
                .len(),
            2
        );

        let nested = "-----BEGIN PGP SIGNATURE-----\n-----BEGIN PGP SIGNATURE-----\n";
        let err = armor_blocks(nested, "signature", "SIGNATURE").expect_err("nested");
        assert!(
            err.to_string().contains("line 2 begins a block before"),
            "{err}"
        );
        let trailing = format!("{one}trailing words\n");
        let err = armor_blocks(&trailing, "signature", "SIGNATURE").expect_err("trailing");
        assert!(err.to_string().contains("line 5 is outside any"), "{err}");
    }
}
