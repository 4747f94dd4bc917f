//! Push webhooks: each forge's recorded sample payload, signed as that forge signs it, is
//! accepted; bad, missing, malformed and oversized deliveries are refused with 401, 400 and
//! 413 and counted; and a push announced by a webhook is detected long before the next poll.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use configsync_core::harness::{Bus, GitRepo, eventually, free_addr, http_post, http_request};
use configsync_git_watcher::webhook::{PATH, WebhookSecret};

use crate::support::{Watcher, config_with, simple_commit, wait_for_commits};

/// A forge's delivery: its name, headers and body.
type Delivery<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8]);

const SECRET: &str = "webhook-secret-for-tests-0123456789";

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A watcher with the receiver on, polling every `poll`; returns it with the receiver's and
/// the ops endpoint's addresses.
async fn start(
    bus: &Bus,
    repo: &GitRepo,
    work: &Path,
    poll: &str,
) -> (Watcher, SocketAddr, SocketAddr) {
    let secret_file = work.join("webhook.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let (hook, ops) = (free_addr(), free_addr());
    let mirror = work.join("mirror");
    let watcher = Watcher::start(config_with(
        bus,
        &repo.url(),
        &mirror,
        &[
            "--poll-interval",
            poll,
            "--ops-addr",
            &ops.to_string(),
            "--webhook-addr",
            &hook.to_string(),
            "--webhook-secret-file",
            &secret_file.display().to_string(),
        ],
    ));
    eventually("the webhook receiver listens", || async move {
        tokio::net::TcpStream::connect(hook).await.ok()
    })
    .await;
    (watcher, hook, ops)
}

#[tokio::test]
async fn each_forges_signed_payload_is_accepted_and_bad_deliveries_are_refused_and_counted() {
    let bus = Bus::start().await;
    let repo = GitRepo::init();
    simple_commit(&repo, 1);
    let work = tempfile::tempdir().expect("work dir");
    let (watcher, hook, ops) = start(&bus, &repo, work.path(), "60s").await;
    let secret = WebhookSecret::new(SECRET).expect("secret");

    let github = fixture("github-push.json");
    let gitlab = fixture("gitlab-push.json");
    let gitea = fixture("gitea-push.json");
    let github_sig = secret.sign(&github);
    let gitea_sig = secret
        .sign(&gitea)
        .trim_start_matches("sha256=")
        .to_string();
    let generic_sig = secret.sign(&github);
    let json = ("Content-Type", "application/json");
    let accepted: [Delivery; 4] = [
        (
            "github",
            vec![
                json,
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &github_sig),
            ],
            &github,
        ),
        (
            "gitlab",
            vec![
                json,
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Token", SECRET),
            ],
            &gitlab,
        ),
        (
            "gitea",
            vec![
                json,
                ("X-Gitea-Event", "push"),
                ("X-Gitea-Signature", &gitea_sig),
            ],
            &gitea,
        ),
        (
            "generic",
            vec![json, ("X-ConfigSync-Signature", &generic_sig)],
            &github,
        ),
    ];
    for (provider, headers, body) in &accepted {
        let (status, _) = http_post(hook, PATH, headers, body).await;
        assert_eq!(status, 202, "{provider}: a signed delivery is accepted");
    }

    // The GitHub signature over another body, a GitLab token that is not the secret, none at
    // all: unauthenticated.
    let wrong_gitea = secret.sign(b"{}").trim_start_matches("sha256=").to_string();
    for (case, headers, body) in [
        (
            "github, other body",
            vec![("X-Hub-Signature-256", github_sig.as_str())],
            &gitlab,
        ),
        (
            "gitlab, wrong token",
            vec![("X-Gitlab-Token", "not-the-secret-at-all")],
            &gitlab,
        ),
        (
            "gitea, other body",
            vec![("X-Gitea-Signature", wrong_gitea.as_str())],
            &gitea,
        ),
        ("no signature", vec![], &github),
    ] {
        let (status, _) = http_post(hook, PATH, &headers, body).await;
        assert_eq!(status, 401, "{case}");
    }
    // A signature header not in the documented form, or a signed body that is not JSON.
    let not_json = secret.sign(b"not json");
    for (case, headers, body) in [
        (
            "sha1 prefix",
            vec![("X-Hub-Signature-256", "sha1=abcdef")],
            github.as_slice(),
        ),
        (
            "not hex",
            vec![("X-ConfigSync-Signature", "sha256=zz")],
            github.as_slice(),
        ),
        (
            "not json",
            vec![("X-ConfigSync-Signature", not_json.as_str())],
            b"not json".as_slice(),
        ),
    ] {
        let (status, _) = http_post(hook, PATH, &headers, body).await;
        assert_eq!(status, 400, "{case}");
    }
    // Over the cap: refused before the body is read, whatever the signature.
    let huge = vec![b' '; 2 << 20];
    let huge_sig = secret.sign(&huge);
    let (status, _) = http_post(hook, PATH, &[("X-Hub-Signature-256", &huge_sig)], &huge).await;
    assert_eq!(status, 413);
    assert!(watcher.is_running(), "no delivery crashes the service");

    let (status, metrics) = http_request(ops, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    for (labels, count) in [
        ("provider=\"github\",outcome=\"accepted\"", 1),
        ("provider=\"gitlab\",outcome=\"accepted\"", 1),
        ("provider=\"gitea\",outcome=\"accepted\"", 1),
        ("provider=\"generic\",outcome=\"accepted\"", 1),
        ("provider=\"github\",outcome=\"unauthenticated\"", 1),
        ("provider=\"gitlab\",outcome=\"unauthenticated\"", 1),
        ("provider=\"none\",outcome=\"unauthenticated\"", 1),
        ("provider=\"generic\",outcome=\"malformed\"", 2),
        ("provider=\"none\",outcome=\"too_large\"", 1),
    ] {
        let line = format!("configsync_webhook_requests_total{{{labels}}} {count}");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    watcher.stop().await;
}

#[tokio::test]
async fn a_push_announced_by_a_webhook_is_detected_long_before_the_next_poll() {
    let bus = Bus::start().await;
    let repo = GitRepo::init();
    let c1 = simple_commit(&repo, 1);
    let work = tempfile::tempdir().expect("work dir");
    // The first poll runs at start; the next would be a minute later.
    let (watcher, hook, _) = start(&bus, &repo, work.path(), "60s").await;
    assert_eq!(wait_for_commits(&bus, 1).await[0].sha, c1);

    let c2 = simple_commit(&repo, 2);
    let pushed = Instant::now();
    let body = fixture("github-push.json");
    let signature = WebhookSecret::new(SECRET).expect("secret").sign(&body);
    let (status, _) = http_post(hook, PATH, &[("X-Hub-Signature-256", &signature)], &body).await;
    assert_eq!(status, 202);
    let seen = tokio::time::timeout(Duration::from_secs(20), wait_for_commits(&bus, 2))
        .await
        .expect("the pushed commit is detected after the webhook, not at the next poll");
    let latency = pushed.elapsed();
    eprintln!("push -> commit.detected with a webhook: {latency:?}");
    assert_eq!(seen[1].sha, c2);
    assert!(
        latency < Duration::from_secs(20),
        "{latency:?} is well under the 60 s poll"
    );
    watcher.stop().await;
}
