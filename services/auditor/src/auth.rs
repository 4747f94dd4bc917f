//! Bearer tokens of the audit API, in two scopes: `read` (search, status) and `admin`
//! (everything `read` may, plus rebuilding the index). `/healthz`, `/readyz` and `/metrics` need
//! none (see `api`).
//!
//! Tokens are read from files (`--read-token-file`, `--admin-token-file`), never taken as flag
//! values: a value in argv is visible to every user of the machine (`ps`, `/proc/*/cmdline`). A
//! file holds one token, surrounding whitespace ignored, of at least [`MIN_TOKEN_LEN`]
//! characters of RFC 6750's token alphabet. Only SHA-256 digests are kept in memory, and a
//! presented token is compared with every configured digest in constant time (`subtle`), so
//! neither the length of a match nor which scope matched shows in the response time.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// The shortest token accepted: 128 bits as hex. Shorter ones are guessable by brute force
/// against an API that answers quickly.
pub const MIN_TOKEN_LEN: usize = 32;
/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "configsync-audit";

/// What a token lets its bearer do. `Admin` includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the tokens could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the {scope} token file {path}: {source}")]
    Read {
        scope: Scope,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {scope} token in {path} is unusable: {reason}")]
    Invalid {
        scope: Scope,
        path: PathBuf,
        reason: &'static str,
    },
    #[error("the read and admin token files hold the same token; give each scope its own")]
    Shared,
    #[error("cannot draw a random token: {0}")]
    Random(String),
}

/// One bearer token. Its `Debug` form does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from text (surrounding whitespace ignored), or why it cannot be one.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let token = text.trim();
        if token.is_empty() {
            return Err("it is empty");
        }
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err("it is shorter than 32 characters");
        }
        // RFC 6750 b64token: what may follow `Bearer ` in a header without quoting.
        let body = token.trim_end_matches('=');
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err("it holds characters outside A-Z a-z 0-9 - . _ ~ + / (and = at the end)");
        }
        Ok(Self(token.to_string()))
    }

    /// A new token: 32 bytes of the operating system's random source, as hex.
    pub fn generate() -> Result<Self, TokenError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        Ok(Self(hex::encode(bytes)))
    }

    /// Reads the token of `scope` from `path`.
    pub fn read(path: &Path, scope: Scope) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
            scope,
            path: path.to_path_buf(),
            source,
        })?;
        warn_if_world_readable(path, scope);
        Self::parse(&text).map_err(|reason| TokenError::Invalid {
            scope,
            path: path.to_path_buf(),
            reason,
        })
    }

    /// The token itself, to put in a header or a file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A token file others may read is a token others may use; it still works (Kubernetes mounts
/// Secrets 0644 unless told otherwise), but says so.
fn warn_if_world_readable(path: &Path, scope: Scope) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(path = %path.display(), %scope, "token file is readable by every user of this machine; make it 0600 (or 0440 with a group)");
    }
}

/// The tokens the API accepts, as digests.
#[derive(Clone)]
pub struct Tokens {
    read: [u8; 32],
    admin: Option<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &self.admin.is_some())
            .finish_non_exhaustive()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Accepts `read` for reads and `admin` (if any) for everything. Without an admin token,
    /// admin routes refuse everyone.
    pub fn new(read: &Token, admin: Option<&Token>) -> Result<Self, TokenError> {
        if admin.is_some_and(|a| a == read) {
            return Err(TokenError::Shared);
        }
        Ok(Self {
            read: digest(read.expose()),
            admin: admin.map(|a| digest(a.expose())),
        })
    }

    /// Reads the token files.
    pub fn load(read: &Path, admin: Option<&Path>) -> Result<Self, TokenError> {
        let read = Token::read(read, Scope::Read)?;
        let admin = admin.map(|p| Token::read(p, Scope::Admin)).transpose()?;
        Self::new(&read, admin.as_ref())
    }

    /// Whether admin routes can be used at all.
    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// The scope `presented` grants, if it is one of ours. Both digests are always compared,
    /// so the time taken does not tell which one matched.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        let presented = digest(presented);
        let is_read = presented.ct_eq(&self.read);
        let is_admin = match &self.admin {
            Some(admin) => presented.ct_eq(admin),
            None => Choice::from(0),
        };
        if bool::from(is_admin) {
            Some(Scope::Admin)
        } else if bool::from(is_read) {
            Some(Scope::Read)
        } else {
            None
        }
    }
}

/// What a route needs: the middleware's state.
#[derive(Clone, Debug)]
pub struct Gate {
    pub tokens: Tokens,
    pub needs: Scope,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header (401).
    Missing,
    /// A header that is not a bearer token of ours (401).
    Invalid,
    /// A token of ours whose scope is too small, or no admin token configured (403).
    Insufficient,
}

/// The bearer token of an `Authorization` header value, if it is one (scheme
/// case-insensitive, RFC 7235).
pub fn bearer(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Gate {
    /// Whether a request with these headers may pass.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Result<Scope, Refusal> {
        let Some(value) = authorization else {
            return Err(Refusal::Missing);
        };
        let token = bearer(value).ok_or(Refusal::Invalid)?;
        let granted = self.tokens.scope_of(token).ok_or(Refusal::Invalid)?;
        if granted >= self.needs {
            Ok(granted)
        } else {
            Err(Refusal::Insufficient)
        }
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let (status, challenge, message) = match refusal {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{REALM}\""),
                "a bearer token is required (Authorization: Bearer TOKEN)".to_string(),
            ),
            Refusal::Invalid => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
                "the bearer token is not valid".to_string(),
            ),
            Refusal::Insufficient => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                    self.needs
                ),
                if self.needs == Scope::Admin && !self.tokens.has_admin() {
                    "admin routes are disabled: the auditor has no admin token (--admin-token-file)"
                        .to_string()
                } else {
                    format!("this route needs the {} token", self.needs)
                },
            ),
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The middleware of every route that needs a token.
pub async fn require(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    match gate.check(request.headers().get(header::AUTHORIZATION)) {
        Ok(_) => next.run(request).await,
        Err(refusal) => {
            // Never the token itself: only what was refused and why.
            tracing::info!(method = %request.method(), path = request.uri().path(), needs = %gate.needs, refusal = ?refusal, "audit api request refused");
            gate.refuse(refusal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ: &str = "r0000000000000000000000000000000000000000";
    const ADMIN: &str = "a0000000000000000000000000000000000000000";

    fn tokens(admin: bool) -> Tokens {
        let read = Token::parse(READ).unwrap();
        let admin_token = Token::parse(ADMIN).unwrap();
        Tokens::new(&read, admin.then_some(&admin_token)).unwrap()
    }

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap()
    }

    #[test]
    fn tokens_are_checked_for_length_and_alphabet() {
        assert!(Token::parse(&format!("  {READ}\n")).is_ok());
        assert_eq!(Token::parse(""), Err("it is empty"));
        assert_eq!(
            Token::parse("short"),
            Err("it is shorter than 32 characters")
        );
        assert!(Token::parse(&format!("{READ} x")).is_err());
        assert!(Token::parse(&format!("{READ}\"")).is_err());
        assert!(Token::parse("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo/+Lw==").is_ok());
        assert!(!format!("{:?}", Token::parse(READ).unwrap()).contains(READ));
    }

    #[test]
    fn generated_tokens_are_long_unique_and_valid() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 64);
        assert_eq!(Token::parse(a.expose()).unwrap(), a);
    }

    #[test]
    fn one_token_for_both_scopes_is_refused() {
        let t = Token::parse(READ).unwrap();
        assert!(matches!(Tokens::new(&t, Some(&t)), Err(TokenError::Shared)));
    }

    #[test]
    fn scopes_are_granted_by_the_token_presented() {
        let t = tokens(true);
        assert_eq!(t.scope_of(READ), Some(Scope::Read));
        assert_eq!(t.scope_of(ADMIN), Some(Scope::Admin));
        assert_eq!(t.scope_of(&READ[..READ.len() - 1]), None);
        assert_eq!(t.scope_of(""), None);
        assert_eq!(tokens(false).scope_of(ADMIN), None);
    }

    #[test]
    fn gates_refuse_missing_invalid_and_insufficient_tokens() {
        let read = Gate {
            tokens: tokens(true),
            needs: Scope::Read,
        };
        let admin = Gate {
            needs: Scope::Admin,
            ..read.clone()
        };
        assert_eq!(read.check(None), Err(Refusal::Missing));
        assert_eq!(
            read.check(Some(&header(&format!("Basic {READ}")))),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            read.check(Some(&header("Bearer nope"))),
            Err(Refusal::Invalid)
        );
        assert_eq!(read.check(Some(&header("Bearer "))), Err(Refusal::Invalid));
        assert_eq!(
            read.check(Some(&header(&format!("bearer {READ}")))),
            Ok(Scope::Read)
        );
        assert_eq!(
            read.check(Some(&header(&format!("Bearer {ADMIN}")))),
            Ok(Scope::Admin)
        );
        assert_eq!(
            admin.check(Some(&header(&format!("Bearer {READ}")))),
            Err(Refusal::Insufficient)
        );
        assert_eq!(
            admin.check(Some(&header(&format!("Bearer {ADMIN}")))),
            Ok(Scope::Admin)
        );
    }

    #[test]
    fn refusals_carry_a_bearer_challenge() {
        let gate = Gate {
            tokens: tokens(false),
            needs: Scope::Admin,
        };
        let r = gate.refuse(Refusal::Missing);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"configsync-audit\""
        );
        let r = gate.refuse(Refusal::Invalid);
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let r = gate.refuse(Refusal::Insufficient);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
    }
}
