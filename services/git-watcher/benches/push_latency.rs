//! Push-to-detection benchmark (issue 16): how long from a `git commit` landing in the
//! remote to its `commit.detected` event on the bus, when the forge's push webhook wakes the
//! watcher, against polling alone at the default interval (the baseline, measured in the same
//! run). Each push comes after a random pause within one poll interval, as pushes arrive at
//! any moment of the poll cycle. The git-watcher runs in this process on a real nats-server
//! and a `file://` repository made with the `git` CLI; the event is seen through a core NATS
//! subscription to the commit-detected subject.
//!
//! `cargo bench -p configsync-git-watcher --bench push_latency -- [PUSHES]`

use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use configsync_core::event::{CommitDetected, EventPayload};
use configsync_core::harness::{Bus, GitRepo, free_addr, http_post};
use configsync_git_watcher::webhook::{PATH, WebhookSecret};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "benchmark-webhook-secret-0123456789";

/// A pseudo-random pause in `[0, max)` (xorshift seeded from the clock: pauses need only be
/// spread over the poll cycle, not unpredictable).
struct Pauses(u64);

impl Pauses {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Self(seed)
    }

    fn next(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        max.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Runs `pushes` pushes against a watcher polling every `interval`, waking it by webhook when
/// `webhook` is set; returns the latencies, sorted.
async fn measure(pushes: usize, interval: Duration, webhook: bool) -> Vec<Duration> {
    let bus = Bus::start().await;
    let repo = GitRepo::init();
    repo.write("configs/dev/web/values.yaml", "n: 0\n");
    repo.commit("initial");
    let work = tempfile::tempdir().expect("work dir");
    let secret_file = work.path().join("secret");
    std::fs::write(&secret_file, SECRET).expect("secret");
    let hook = free_addr();
    let interval_text = humantime::format_duration(interval).to_string();
    let mut args = vec![
        "git-watcher".to_string(),
        "--nats-url".into(),
        bus.url(),
        "--ops-addr".into(),
        "127.0.0.1:0".into(),
        "--repo".into(),
        repo.url(),
        "--poll-interval".into(),
        interval_text,
        "--work-dir".into(),
        work.path().join("mirror").display().to_string(),
    ];
    if webhook {
        args.extend([
            "--webhook-addr".into(),
            hook.to_string(),
            "--webhook-secret-file".into(),
            secret_file.display().to_string(),
        ]);
    }
    let config = configsync_git_watcher::Config::try_parse_from(args).expect("flags");
    let client = async_nats::connect(bus.url()).await.expect("nats");
    let mut detected = client
        .subscribe(configsync_core::subject::type_filter(CommitDetected::TYPE))
        .await
        .expect("subscribe");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(configsync_git_watcher::run(config, shutdown.clone()));
    // The initial commit, announced at the first poll.
    tokio::time::timeout(Duration::from_secs(60), detected.next())
        .await
        .expect("the initial commit is detected");

    let secret = WebhookSecret::new(SECRET).expect("secret");
    let mut pauses = Pauses::new();
    let mut latencies = Vec::with_capacity(pushes);
    for n in 1..=pushes {
        tokio::time::sleep(pauses.next(interval)).await;
        repo.write("configs/dev/web/values.yaml", &format!("n: {n}\n"));
        let started = Instant::now();
        repo.commit(&format!("push {n}"));
        if webhook {
            let body = format!(r#"{{"ref":"refs/heads/main","n":{n}}}"#);
            let signature = secret.sign(body.as_bytes());
            let (status, _) = http_post(
                hook,
                PATH,
                &[("X-ConfigSync-Signature", &signature)],
                body.as_bytes(),
            )
            .await;
            assert_eq!(status, 202, "the webhook is accepted");
        }
        tokio::time::timeout(interval * 3 + Duration::from_secs(30), detected.next())
            .await
            .expect("the push is detected");
        latencies.push(started.elapsed());
    }
    shutdown.cancel();
    let _ = task.await;
    latencies.sort();
    latencies
}

#[tokio::main]
async fn main() {
    let pushes: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let defaults = configsync_git_watcher::Config::try_parse_from(["git-watcher", "--repo", "x"])
        .expect("defaults parse");
    let interval = defaults.poll_interval;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("push -> commit.detected latency, git-watcher in process");
    println!(
        "conditions: {pushes} pushes per mode, file:// remote (git CLI commits), nats-server on \
         loopback, poll interval {} (the default), each push after a random pause within one \
         interval, {cores} CPUs, {} build",
        humantime::format_duration(interval),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    for (name, webhook) in [("webhook", true), ("polling (baseline)", false)] {
        let l = measure(pushes, interval, webhook).await;
        println!(
            "{name:<20} p50 {:>9.1?}  p90 {:>9.1?}  min {:>9.1?}  max {:>9.1?}",
            percentile(&l, 0.5),
            percentile(&l, 0.9),
            l[0],
            l[l.len() - 1]
        );
    }
}
