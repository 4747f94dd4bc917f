//! The push webhook receiver: an authenticated request from the forge wakes the poll loop at
//! once, so a push is seen in well under a second instead of at the next poll.
//!
//! The payload is only a trigger: nothing in it is believed (not the branch, not the commit);
//! the watcher fetches and trusts Git. So a forged or replayed request can at most cause a
//! fetch, and the receiver checks only that the request comes from someone who holds the
//! secret, in each forge's documented way:
//!
//! | forge | header | check |
//! |---|---|---|
//! | GitHub | `X-Hub-Signature-256: sha256=<hex>` | HMAC-SHA256 of the body |
//! | Gitea, Forgejo, Gogs | `X-Gitea-Signature` / `X-Forgejo-Signature` / `X-Gogs-Signature: <hex>` | HMAC-SHA256 of the body |
//! | GitLab | `X-Gitlab-Token: <secret>` | the secret itself |
//! | anything else | `X-ConfigSync-Signature: sha256=<hex>` | HMAC-SHA256 of the body |
//!
//! Every comparison is constant-time (`hmac`'s `verify_slice`; for GitLab's token, `subtle`
//! over SHA-256 digests, so the length does not show either). The body is capped before it is
//! read (413), a request without a valid signature gets 401, one with a signature header in
//! the wrong form or an authenticated body that is not JSON gets 400; each outcome is counted
//! in `configsync_webhook_requests_total{provider,outcome}`. Polling stays as the safety net
//! for a webhook that never arrives.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hmac::{Hmac, Mac};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The largest body read; a bigger one is refused with 413 before it is read. Push payloads
/// of configuration repositories are a few kilobytes; a push too large for this is still
/// picked up by the next poll.
pub const MAX_BODY: usize = 1 << 20;
/// The shortest secret accepted: shorter ones can be guessed against a receiver that answers
/// quickly.
pub const MIN_SECRET_LEN: usize = 16;
/// Where the receiver listens for deliveries.
pub const PATH: &str = "/webhook";

/// The shared secret deliveries are signed with. Never shown by `Debug`.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why the secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the webhook secret from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the webhook secret is {len} bytes; at least {MIN_SECRET_LEN} are needed (e.g. `openssl rand -hex 32`)"
    )]
    TooShort { len: usize },
    #[error("--webhook-addr needs a secret: --webhook-secret-file or CONFIGSYNC_WEBHOOK_SECRET")]
    Missing,
}

impl WebhookSecret {
    /// A secret from its text; surrounding whitespace (an editor's newline) is not part of it.
    pub fn new(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { len: text.len() });
        }
        Ok(Self(text.as_bytes().to_vec()))
    }

    /// Reads the secret from `path`.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(&text)
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length")
    }

    /// `sha256=<hex>` of `body`: what a sender puts in `X-ConfigSync-Signature` (and GitHub in
    /// `X-Hub-Signature-256`).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Which forge's scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    Gitea,
    GitLab,
    Generic,
}

impl Provider {
    fn label(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::Gitea => "gitea",
            Self::GitLab => "gitlab",
            Self::Generic => "generic",
        }
    }
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated: the poll loop is woken.
    Accepted(Provider),
    /// No signature header at all, or one that does not match: 401.
    Unauthenticated(Option<Provider>),
    /// A signature header in the wrong form, or an authenticated body that is not JSON: 400.
    Malformed(Option<Provider>, &'static str),
}

/// Checks a delivery against `secret`. The first signature header present decides; headers
/// are looked for in a fixed order (Gitea also sends GitHub's header, with the same value).
pub fn verify(secret: &WebhookSecret, headers: &HeaderMap, body: &[u8]) -> Verdict {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let (provider, outcome) = if let Some(v) = header("x-hub-signature-256") {
        (Provider::GitHub, check_hmac(secret, prefixed(v), body))
    } else if let Some(v) = [
        "x-gitea-signature",
        "x-forgejo-signature",
        "x-gogs-signature",
    ]
    .iter()
    .find_map(|h| header(h))
    {
        (Provider::Gitea, check_hmac(secret, Some(v), body))
    } else if let Some(v) = header("x-configsync-signature") {
        (Provider::Generic, check_hmac(secret, prefixed(v), body))
    } else if let Some(v) = header("x-gitlab-token") {
        (Provider::GitLab, Ok(token_matches(secret, v)))
    } else {
        return Verdict::Unauthenticated(None);
    };
    match outcome {
        Err(why) => Verdict::Malformed(Some(provider), why),
        Ok(false) => Verdict::Unauthenticated(Some(provider)),
        Ok(true) => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(_)) => Verdict::Accepted(provider),
            _ => Verdict::Malformed(Some(provider), "the body is not a JSON object"),
        },
    }
}

/// The hex after `sha256=`; `None` when the prefix is missing.
fn prefixed(value: &[u8]) -> Option<&[u8]> {
    value.strip_prefix(b"sha256=")
}

/// Whether `hex` is the HMAC-SHA256 of `body`, compared in constant time; an error when the
/// value is not 64 hexadecimal digits.
fn check_hmac(
    secret: &WebhookSecret,
    hex: Option<&[u8]>,
    body: &[u8],
) -> Result<bool, &'static str> {
    let hex = hex.ok_or("the signature does not start with sha256=")?;
    let expected = hex::decode(hex.trim_ascii()).map_err(|_| "the signature is not hexadecimal")?;
    if expected.len() != 32 {
        return Err("the signature is not 32 bytes of HMAC-SHA256");
    }
    let mut mac = secret.mac();
    mac.update(body);
    Ok(mac.verify_slice(&expected).is_ok())
}

/// GitLab sends the secret itself: compared as SHA-256 digests in constant time, so neither
/// a matching prefix nor the length shows in the response time.
fn token_matches(secret: &WebhookSecret, token: &[u8]) -> bool {
    let given = Sha256::digest(token.trim_ascii());
    let wanted = Sha256::digest(&secret.0);
    given.ct_eq(&wanted).into()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `github`, `gitea`, `gitlab`, `generic`, or `none` when no scheme was recognised.
    provider: String,
    /// `accepted`, `unauthenticated`, `malformed` or `too_large`.
    outcome: String,
}

#[derive(Clone)]
struct Receiver {
    secret: WebhookSecret,
    wake: Arc<Notify>,
    requests: Family<RequestLabels, Counter>,
}

impl Receiver {
    fn count(&self, provider: Option<Provider>, outcome: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                provider: provider.map_or("none", Provider::label).to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

/// Serves the receiver on `addr` until `shutdown`; each accepted delivery calls
/// `wake.notify_one()` (deliveries while a poll runs coalesce into one more poll). Returns the
/// bound address.
pub async fn serve(
    addr: SocketAddr,
    secret: WebhookSecret,
    wake: Arc<Notify>,
    metrics: &configsync_core::metrics::Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let requests = Family::<RequestLabels, Counter>::default();
    metrics.register(
        "webhook_requests",
        "Push webhook deliveries by provider and outcome",
        requests.clone(),
    );
    let receiver = Receiver {
        secret,
        wake,
        requests,
    };
    configsync_core::ops::serve_router(addr, router(receiver), "webhook receiver", shutdown).await
}

fn router(receiver: Receiver) -> Router {
    Router::new()
        .route(PATH, post(deliver))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(receiver)
}

async fn deliver(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> impl IntoResponse {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let outcome = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "malformed"
            };
            receiver.count(None, outcome);
            tracing::warn!(
                status = status.as_u16(),
                outcome,
                "webhook delivery refused"
            );
            return (status, "body refused\n");
        }
    };
    match verify(&receiver.secret, &headers, &body) {
        Verdict::Accepted(provider) => {
            receiver.count(Some(provider), "accepted");
            tracing::info!(
                provider = provider.label(),
                "webhook delivery accepted: polling now"
            );
            receiver.wake.notify_one();
            (StatusCode::ACCEPTED, "accepted\n")
        }
        Verdict::Unauthenticated(provider) => {
            receiver.count(provider, "unauthenticated");
            tracing::warn!(
                provider = provider.map_or("none", Provider::label),
                "webhook delivery without a valid signature refused"
            );
            (StatusCode::UNAUTHORIZED, "unauthenticated\n")
        }
        Verdict::Malformed(provider, why) => {
            receiver.count(provider, "malformed");
            tracing::warn!(
                provider = provider.map_or("none", Provider::label),
                reason = why,
                "malformed webhook delivery refused"
            );
            (StatusCode::BAD_REQUEST, "malformed\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::new("It's a Secret to Everybody").unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn githubs_documented_example_verifies() {
        // The example of GitHub's "Validating webhook deliveries": secret "It's a Secret to
        // Everybody", payload "Hello, World!".
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secret().sign(b"Hello, World!"), sig);
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = secret().sign(body);
        assert_eq!(
            verify(&secret(), &headers(&[("x-hub-signature-256", &good)]), body),
            Verdict::Accepted(Provider::GitHub)
        );
        // Not JSON, though signed: malformed. Signed differently: unauthenticated.
        let text = b"Hello, World!";
        assert!(matches!(
            verify(&secret(), &headers(&[("x-hub-signature-256", sig)]), text),
            Verdict::Malformed(Some(Provider::GitHub), _)
        ));
        assert_eq!(
            verify(&secret(), &headers(&[("x-hub-signature-256", sig)]), body),
            Verdict::Unauthenticated(Some(Provider::GitHub))
        );
    }

    #[test]
    fn malformed_and_missing_signatures_are_told_apart() {
        let body = b"{}";
        for bad in ["757107ea", "sha1=abc", "sha256=zz", "sha256=abcd"] {
            assert!(
                matches!(
                    verify(&secret(), &headers(&[("x-hub-signature-256", bad)]), body),
                    Verdict::Malformed(..)
                ),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&secret(), &HeaderMap::new(), body),
            Verdict::Unauthenticated(None)
        );
    }

    #[test]
    fn gitlab_tokens_and_gitea_signatures_verify() {
        let body = b"{}";
        let s = secret();
        assert_eq!(
            verify(
                &s,
                &headers(&[("x-gitlab-token", "It's a Secret to Everybody")]),
                body
            ),
            Verdict::Accepted(Provider::GitLab)
        );
        assert_eq!(
            verify(&s, &headers(&[("x-gitlab-token", "It's a Secret")]), body),
            Verdict::Unauthenticated(Some(Provider::GitLab))
        );
        let hex = s.sign(body).trim_start_matches("sha256=").to_string();
        assert_eq!(
            verify(&s, &headers(&[("x-gitea-signature", &hex)]), body),
            Verdict::Accepted(Provider::Gitea)
        );
        assert_eq!(
            verify(&s, &headers(&[("x-forgejo-signature", &hex)]), body),
            Verdict::Accepted(Provider::Gitea)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            WebhookSecret::new(" short \n"),
            Err(SecretError::TooShort { len: 5 })
        ));
        assert_eq!(format!("{:?}", secret()), "WebhookSecret(<redacted>)");
    }
}
