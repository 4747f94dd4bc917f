//! The `configsync` binary against a real nats-server: stream setup, tail, replay, schemas.
//! The rollout commands against a running `configsync up` are in `rollout`; secret values
//! kept out of everything a running `up` writes, in `secrets`.

mod approvals;
mod rollout;
mod secrets;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use async_nats::jetstream::stream;
use configsync::commands::state_dir::Endpoints;
use configsync_core::config::NatsArgs;
use configsync_core::event::{HealthReady, Outgoing, ValidationFailed};
use configsync_core::harness::{NatsServer, connect};
use configsync_core::log::{EventLog, Publisher, StreamSpec};
use configsync_core::metrics::Metrics;

fn configsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_configsync"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("configsync runs")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

async fn publish_sample(log: &EventLog) -> Publisher {
    let publisher = log.publisher(Duration::from_secs(10));
    for (env, n) in [("dev", 1), ("prod", 2), ("dev", 3)] {
        let p = HealthReady {
            environment: env.into(),
            cluster: "c1".into(),
            revision: format!("rev{n}"),
            objects: n,
        };
        publisher
            .publish(
                &Outgoing::builder(&p)
                    .build("configsync://cli-test/1")
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let failed = ValidationFailed {
        environment: "prod".into(),
        revision: "rev4".into(),
        findings: vec![],
    };
    publisher
        .publish(
            &Outgoing::builder(&failed)
                .build("configsync://cli-test/1")
                .unwrap(),
        )
        .await
        .unwrap();
    publisher
}

#[tokio::test]
async fn nats_init_creates_then_confirms_the_stream() {
    let server = NatsServer::start().await.unwrap();
    let url = server.url();
    let first = configsync(&["nats", "init", "--nats-url", &url]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("CONFIGSYNC_EVENTS created"),
        "{}",
        text(&first.stdout)
    );
    let second = configsync(&["nats", "init", "--nats-url", &url]);
    assert!(second.status.success());
    assert!(
        text(&second.stdout).contains("already up to date"),
        "{}",
        text(&second.stdout)
    );
}

#[tokio::test]
async fn nats_init_refuses_an_incompatible_stream_with_a_clear_error() {
    let server = NatsServer::start().await.unwrap();
    let log = connect(&server).await;
    let mut memory = StreamSpec::from_definition(1).unwrap().config;
    memory.storage = stream::StorageType::Memory;
    log.js.create_stream(memory).await.unwrap();
    let out = configsync(&["nats", "init", "--nats-url", &server.url()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("incompatible") && err.contains("storage is Memory"),
        "{err}"
    );
}

#[tokio::test]
async fn nats_unreachable_exits_non_zero_after_the_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = configsync(&[
        "nats",
        "init",
        "--nats-url",
        &url,
        "--connect-deadline",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(
        text(&out.stderr).contains("unreachable"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn events_tail_prints_json_and_human_lines_with_filters() {
    let server = NatsServer::start().await.unwrap();
    let url = server.url();
    assert!(
        configsync(&["nats", "init", "--nats-url", &url])
            .status
            .success()
    );
    publish_sample(&connect(&server).await).await;

    let out = configsync(&[
        "events",
        "tail",
        "--nats-url",
        &url,
        "--from",
        "begin",
        "--no-follow",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["specversion"], "1.0");
    assert_eq!(lines[0]["type"], "io.configsync.health.ready.v1");
    assert_eq!(lines[0]["environment"], "dev");
    assert_eq!(lines[0]["data"]["revision"], "rev1");
    assert_eq!(lines[3]["_stream"]["sequence"], 4);

    let dev = configsync(&[
        "events",
        "tail",
        "--nats-url",
        &url,
        "--from",
        "begin",
        "--no-follow",
        "--env",
        "dev",
    ]);
    assert_eq!(
        text(&dev.stdout).lines().count(),
        2,
        "{}",
        text(&dev.stdout)
    );
    let typed = configsync(&[
        "events",
        "tail",
        "--nats-url",
        &url,
        "--from",
        "begin",
        "--no-follow",
        "--type",
        "validation.failed.v1",
        "--format",
        "human",
    ]);
    let human = text(&typed.stdout);
    assert_eq!(human.lines().count(), 1, "{human}");
    assert!(
        human.starts_with("#4 ")
            && human.contains("validation.failed")
            && human.contains("env=prod rev=rev4"),
        "{human}"
    );
    let from_seq = configsync(&[
        "events",
        "tail",
        "--nats-url",
        &url,
        "--from",
        "3",
        "--no-follow",
    ]);
    assert_eq!(text(&from_seq.stdout).lines().count(), 2);
}

#[tokio::test]
async fn replay_prints_state_at_a_sequence_and_round_trips_snapshots() {
    let server = NatsServer::start().await.unwrap();
    let url = server.url();
    assert!(
        configsync(&["nats", "init", "--nats-url", &url])
            .status
            .success()
    );
    publish_sample(&connect(&server).await).await;

    let at2 = configsync(&["replay", "--nats-url", &url, "--until", "2"]);
    assert!(at2.status.success(), "{}", text(&at2.stderr));
    let state: serde_json::Value = serde_json::from_slice(&at2.stdout).unwrap();
    assert_eq!(state["sequence"], 2);
    // A health verdict counts only for the revision a target runs: with no apply in the log,
    // the target is known (sequence) but its health is not.
    assert_eq!(state["targets"]["dev/c1"]["sequence"], 1);
    assert_eq!(
        state["targets"]["dev/c1"]["healthy"],
        serde_json::Value::Null
    );
    assert!(
        state["environments"].as_object().unwrap().is_empty(),
        "validation at seq 4 not yet applied"
    );

    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("state.msgpack");
    let snap_s = snap.to_str().unwrap();
    assert!(
        configsync(&[
            "replay",
            "--nats-url",
            &url,
            "--until",
            "2",
            "--snapshot-out",
            snap_s
        ])
        .status
        .success()
    );
    let resumed = configsync(&["replay", "--nats-url", &url, "--snapshot-in", snap_s]);
    let full = configsync(&["replay", "--nats-url", &url]);
    assert_eq!(
        text(&resumed.stdout),
        text(&full.stdout),
        "snapshot + rest = full replay"
    );
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert_eq!(
        full["environments"]["prod"]["latest_validation"]["Failed"]["revision"],
        "rev4"
    );

    let target = configsync(&["replay", "--nats-url", &url, "--target", "prod/c1"]);
    let target: serde_json::Value = serde_json::from_slice(&target.stdout).unwrap();
    assert_eq!(target["sequence"], 2);
    assert_eq!(target["inventory"], serde_json::json!([]));
    let missing = configsync(&["replay", "--nats-url", &url, "--target", "nope/x"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn schemas_check_passes_on_the_repository_and_fails_on_a_stale_dir() {
    let repo_schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
    assert!(
        configsync(&["schemas", "check", "--dir", repo_schemas])
            .status
            .success()
    );
    let dir = tempfile::tempdir().unwrap();
    let stale = configsync(&["schemas", "check", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(text(&stale.stdout).contains("(missing)"));
    assert!(
        configsync(&["schemas", "write", "--dir", dir.path().to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        configsync(&["schemas", "check", "--dir", dir.path().to_str().unwrap()])
            .status
            .success()
    );
}

/// Waits for `configsync up` to write its endpoints file.
async fn wait_for_endpoints(
    dir: &std::path::Path,
    child: &mut std::process::Child,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("endpoints.json")) {
            return serde_json::from_str(&text).expect("endpoints.json is json");
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "configsync up exited early"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "configsync up never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "configsync up did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn up_runs_everything_keeps_the_log_across_restarts_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap().to_string();
    // A directory that is not a Git repository: the git-watcher reports it, the rest serves.
    let not_a_repo = dir.path().join("not-a-repo");
    std::fs::create_dir_all(&not_a_repo).unwrap();
    let repo_s = not_a_repo.to_str().unwrap().to_string();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_configsync"))
            .args(["up", "--state-dir", &state_s, "--repo", &repo_s])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("configsync up starts")
    };
    let mut up = spawn();
    let endpoints = wait_for_endpoints(&state, &mut up).await;
    let url = endpoints["nats_url"].as_str().unwrap().to_string();
    let services = endpoints["services"].as_array().unwrap();
    assert_eq!(services.len(), 6);

    // The server has users: nobody gets in without a password, and the passwords are the
    // owner's alone.
    let anonymous = NatsArgs::for_url(url.clone()).connect("t").await;
    assert!(
        anonymous.is_err_and(|e| e.to_string().contains("refused")),
        "the local nats-server requires a user"
    );
    let credentials_file = state.join("nats-credentials.json");
    assert_eq!(
        endpoints["nats_credentials"].as_str(),
        credentials_file.to_str()
    );
    let mode = std::fs::metadata(&credentials_file)
        .expect("the passwords are kept in the state directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the owner reads the passwords");
    let passwords = std::fs::read_to_string(&credentials_file).unwrap();
    let users: serde_json::Value = serde_json::from_str(&passwords).unwrap();
    assert_eq!(
        users.as_object().unwrap().keys().count(),
        configsync_core::nats_auth::users().len()
    );

    // Publish through the running instance as admin (the sample has several emitters'
    // events), read back through --state-dir (as operator).
    let server_log = {
        let endpoints = Endpoints::read(&state).unwrap();
        let admin = endpoints
            .nats_args("admin", &NatsArgs::for_url(""))
            .unwrap();
        let client = admin.connect("t").await.unwrap();
        EventLog::new(client, "configsync://cli-test/1", Metrics::new()).unwrap()
    };
    publish_sample(&server_log).await;
    // `nats init` finds the server and acts as admin; the stream is already up to date.
    let init = configsync(&["nats", "init", "--state-dir", &state_s]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    assert!(text(&init.stdout).contains("already up to date"));
    let tail = configsync(&[
        "events",
        "tail",
        "--state-dir",
        &state_s,
        "--from",
        "begin",
        "--no-follow",
        "--type",
        "health.ready.v1",
    ]);
    assert_eq!(
        text(&tail.stdout).lines().count(),
        3,
        "{}",
        text(&tail.stderr)
    );
    // The audit API's tokens: made private in the state directory, found there by the CLI.
    let tokens = ["audit-read.token", "audit-admin.token"].map(|name| {
        use std::os::unix::fs::PermissionsExt;
        let path = state.join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is private");
        std::fs::read_to_string(path).unwrap()
    });
    let found = audit_search_until_found(&["type:health.ready.v1", "--state-dir", &state_s]);
    assert_eq!(text(&found.stdout).lines().count(), 3);
    let audit_url = endpoints["audit_url"].as_str().unwrap().to_string();
    let anonymous = configsync(&["audit", "search", "anything", "--audit-url", &audit_url]);
    assert!(
        text(&anonymous.stderr).contains("answered 401"),
        "{}",
        text(&anonymous.stderr)
    );
    // The broken repository is reported as an event, not a crash.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let failed = configsync(&[
            "events",
            "tail",
            "--state-dir",
            &state_s,
            "--from",
            "begin",
            "--no-follow",
            "--type",
            "source.failed.v1",
        ]);
        if text(&failed.stdout).contains("not a git repository") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no source.failed event: {}",
            text(&failed.stdout)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let status = terminate(&mut up);
    assert!(status.success(), "clean shutdown exits 0: {status:?}");
    assert!(
        !state.join("endpoints.json").exists(),
        "endpoints removed on shutdown"
    );
    assert!(
        tokio::net::TcpStream::connect(url.trim_start_matches("nats://"))
            .await
            .is_err(),
        "nats-server stopped with it"
    );

    // The log lives in the state dir: a second `up` still has the events, the same passwords
    // and the same tokens.
    let mut again = spawn();
    wait_for_endpoints(&state, &mut again).await;
    assert_eq!(
        std::fs::read_to_string(&credentials_file).unwrap(),
        passwords,
        "the passwords are reused"
    );
    assert_eq!(
        ["audit-read.token", "audit-admin.token"]
            .map(|name| std::fs::read_to_string(state.join(name)).unwrap()),
        tokens,
        "the tokens are kept across restarts"
    );
    let tail = configsync(&[
        "events",
        "tail",
        "--state-dir",
        &state_s,
        "--from",
        "begin",
        "--no-follow",
        "--type",
        "health.ready.v1",
    ]);
    assert_eq!(
        text(&tail.stdout).lines().count(),
        3,
        "events survive a restart of up"
    );
    assert!(terminate(&mut again).success());
}

#[tokio::test]
async fn up_with_a_given_nats_connects_with_the_flags_and_so_do_the_commands() {
    let server = NatsServer::start_with_auth().await.unwrap();
    let passwords = server.credentials().unwrap();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap().to_string();
    let not_a_repo = dir.path().join("not-a-repo");
    std::fs::create_dir_all(&not_a_repo).unwrap();
    let up = |user: Option<(&str, &str)>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_configsync"));
        command
            .args(["up", "--state-dir", &state_s, "--nats-url", &url, "--repo"])
            .arg(&not_a_repo)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some((user, password)) = user {
            command
                .args(["--nats-user", user])
                .env("CONFIGSYNC_NATS_PASSWORD", password);
        }
        command.spawn().expect("configsync up starts")
    };

    // Without credentials: refused at once, saying by whom and what to give.
    let anonymous = up(None).wait_with_output().unwrap();
    assert!(!anonymous.status.success());
    let error = text(&anonymous.stderr);
    assert!(
        error.contains(&format!("nats at {url} refused"))
            && error.contains("give --nats-user and --nats-password"),
        "{error}"
    );

    // With admin's (one user for every service, as the flags say): it runs, and tells the
    // commands to bring their own credentials.
    let mut running = up(Some(("admin", passwords.password("admin").unwrap())));
    let endpoints = wait_for_endpoints(&state, &mut running).await;
    assert_eq!(endpoints["nats_url"], url.as_str());
    assert!(endpoints.get("nats_credentials").is_none(), "{endpoints}");
    let tail = |user: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_configsync"));
        command
            .args([
                "events",
                "tail",
                "--state-dir",
                &state_s,
                "--from",
                "begin",
                "--no-follow",
            ])
            .args(["--type", "source.failed.v1", "--connect-deadline", "5s"])
            .env("RUST_LOG", "warn");
        if let Some(user) = user {
            command.env("CONFIGSYNC_NATS_USER", user).env(
                "CONFIGSYNC_NATS_PASSWORD",
                passwords.password(user).unwrap(),
            );
        }
        command.output().expect("configsync runs")
    };
    let refused = tail(None);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("refused"),
        "{}",
        text(&refused.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let read = tail(Some("operator"));
        assert!(read.status.success(), "{}", text(&read.stderr));
        if text(&read.stdout).contains("not a git repository") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no source.failed event: {}",
            text(&read.stdout)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(terminate(&mut running).success());
}

/// Runs `configsync audit search ARGS...` until its output is not empty or the deadline passes.
fn audit_search_until_found(args: &[&str]) -> Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = vec!["audit", "search"];
        all.extend_from_slice(args);
        let out = configsync(&all);
        if out.status.success() && !out.stdout.is_empty() {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit search {args:?} found nothing: {} {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_search_finds_events_through_a_running_auditor() {
    use configsync_core::event::{CommitDetected, Person};

    let server = NatsServer::start().await.unwrap();
    let log = connect(&server).await;
    configsync_core::log::stream::ensure(&log.js, &log.spec)
        .await
        .expect("stream is created");
    let who = Person {
        name: "Ada".into(),
        email: "ada@example.invalid".into(),
        time: chrono::Utc::now(),
    };
    let commit = CommitDetected {
        repository: "file:///repo".into(),
        branch: "main".into(),
        source: None,
        path: None,
        trailers: Vec::new(),
        sha: "cafe01".into(),
        parents: vec![],
        author: who.clone(),
        committer: who,
        message: "Enable the pangolinization flag in dev".into(),
        signed: false,
        signature: None,
        environments: vec![],
        other_paths: vec![],
        whole_tree: false,
    };
    let published = log
        .publisher(Duration::from_secs(10))
        .publish(
            &Outgoing::builder(&commit)
                .build("configsync://cli-test/1")
                .unwrap(),
        )
        .await
        .unwrap();
    publish_sample(&log).await;

    let index = tempfile::tempdir().unwrap();
    // The tokens as `configsync up` keeps them in its state directory.
    let state = tempfile::tempdir().unwrap();
    let (read_token, admin_token) =
        configsync::commands::state_dir::ensure_audit_tokens(state.path()).unwrap();
    let mut nats = NatsArgs::for_url(server.url());
    nats.connect_deadline = Duration::from_secs(10);
    let config = configsync_auditor::Config {
        service: configsync_core::config::ServiceArgs {
            nats,
            ops_addr: Some("127.0.0.1:0".parse().unwrap()),
            instance: Some("cli-test".into()),
            log_format: configsync_core::telemetry::LogFormat::Human,
        },
        http_addr: "127.0.0.1:0".parse().unwrap(),
        index_dir: Some(index.path().to_path_buf()),
        read_token_file: read_token.clone(),
        admin_token_file: Some(admin_token.clone()),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let auditor = tokio::time::timeout(
        Duration::from_secs(30),
        configsync_auditor::start(config, shutdown.clone()),
    )
    .await
    .expect("the auditor starts in time")
    .expect("the auditor starts");
    let url = format!("http://{}", auditor.http_addr);
    let read_file = read_token.to_str().unwrap();

    // Without a token: exit 1, the auditor's 401, and where a token comes from.
    let out = configsync(&["audit", "search", "pangolinization", "--audit-url", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("answered 401") && err.contains("--token"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // By a word of the commit message, with the token from a file: one JSON line, the commit.
    let out = audit_search_until_found(&[
        "pangolinization",
        "--audit-url",
        &url,
        "--token-file",
        read_file,
    ]);
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is json"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", text(&out.stdout));
    assert_eq!(lines[0]["data"]["sha"], "cafe01");
    assert_eq!(lines[0]["_stream"]["sequence"], published.sequence);

    // The token from the environment.
    let token = std::fs::read_to_string(&read_token).unwrap();
    let from_env = Command::new(env!("CARGO_BIN_EXE_configsync"))
        .args(["audit", "search", "pangolinization", "--audit-url", &url])
        .env("CONFIGSYNC_AUDIT_TOKEN", token.trim())
        .output()
        .unwrap();
    assert!(from_env.status.success(), "{}", text(&from_env.stderr));
    assert_eq!(text(&from_env.stdout).lines().count(), 1);

    // By field, through --state-dir (address and token), human format, newest first, limited.
    std::fs::write(
        state.path().join("endpoints.json"),
        serde_json::json!({"nats_url": server.url(), "audit_url": url}).to_string(),
    )
    .unwrap();
    let state_s = state.path().to_str().unwrap();
    let out = audit_search_until_found(&[
        "environment:dev AND type:health.ready.v1",
        "--state-dir",
        state_s,
        "--format",
        "human",
        "--limit",
        "1",
    ]);
    let human = text(&out.stdout);
    let first = human.lines().next().unwrap_or_default();
    assert!(
        first.contains("health.ready.v1")
            && first.contains("env=dev")
            && first.contains("rev=rev3"),
        "{human}"
    );
    assert!(human.contains("1 of 2 matching events"), "{human}");

    // A malformed query: exit 1 with the auditor's reason.
    let out = configsync(&[
        "audit",
        "search",
        "environment:(dev",
        "--audit-url",
        &url,
        "--token-file",
        read_file,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("400"), "{}", text(&out.stderr));

    // A reindex needs the admin token: refused with the read token, done with the state
    // directory's admin token.
    let out = configsync(&[
        "audit",
        "reindex",
        "--audit-url",
        &url,
        "--token-file",
        read_file,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("answered 403"),
        "{}",
        text(&out.stderr)
    );
    let out = configsync(&["audit", "reindex", "--state-dir", state_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("rebuilding its index"),
        "{}",
        text(&out.stderr)
    );
    // Rebuilt: the commit is found again.
    audit_search_until_found(&["pangolinization", "--state-dir", state_s]);

    // No auditor there: exit 1 with a clear message.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), auditor.wait())
        .await
        .expect("the auditor stops in time")
        .expect("the auditor stops cleanly");
    let out = configsync(&["audit", "search", "anything", "--state-dir", state_s]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot reach the auditor at"), "{err}");
}

/// Runs `configsync validate ARGS` in `root`.
fn validate(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_configsync"))
        .arg("validate")
        .args(["--root", root.to_str().unwrap()])
        .args(args)
        .output()
        .expect("configsync validate runs")
}

#[test]
fn validate_exits_by_verdict_in_every_format_and_reads_nothing_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n";
    std::fs::create_dir_all(root.join("configs/dev/web")).unwrap();
    std::fs::create_dir_all(root.join("configs/prod/web")).unwrap();
    std::fs::write(root.join("configs/dev/web/config.yaml"), cm).unwrap();
    std::fs::write(
        root.join("configs/prod/web/config.yaml"),
        format!(
            "{cm}---\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{password: hunter2}}\n"
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("configs/prod/web/passwd.yaml")).unwrap();

    let ok = validate(root, &["--env", "dev"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).contains("configs/dev/web/config.yaml - ConfigMap settings is valid"));

    let bad = validate(root, &["--env", "prod"]);
    assert_eq!(bad.status.code(), Some(1));
    let out = text(&bad.stdout);
    assert!(out.contains("object is missing apiVersion"), "{out}");
    assert!(
        out.contains(
            "passwd.yaml - error: symbolic link to /etc/passwd leaves the repository root"
        ),
        "{out}"
    );
    assert!(
        !out.contains("hunter2") && !out.contains("root:"),
        "no secret and nothing of /etc/passwd in the output"
    );

    let json = validate(root, &["--env", "prod", "-o", "json"]);
    let parsed: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("json output parses");
    assert_eq!(parsed["valid"], false);
    assert_eq!(parsed["resources"][0]["kind"], "ConfigMap");
    let gh = text(&validate(root, &["--env", "prod", "-o", "github"]).stdout);
    assert!(
        gh.lines()
            .any(|l| l.starts_with("::error file=configs/prod/web/config.yaml,line=")),
        "{gh}"
    );

    // JUnit XML read by a real XML parser (Python's), SARIF by a JSON one.
    let junit = validate(root, &["--env", "prod", "-o", "junit"]);
    assert_eq!(junit.status.code(), Some(1));
    let parsed = Command::new("python3")
        .args(["-c", "import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.read()); s = r.find('testsuite'); print(s.get('tests'), s.get('failures'), s.get('errors'), len(s.findall('testcase')))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&junit.stdout)?;
            child.wait_with_output()
        })
        .expect("python3 parses the junit report");
    assert_eq!(
        text(&parsed.stdout).trim(),
        "3 0 2 3",
        "tests, failures, errors, testcases: {}",
        text(&junit.stdout)
    );
    let sarif: serde_json::Value =
        serde_json::from_slice(&validate(root, &["--env", "prod", "-o", "sarif"]).stdout)
            .expect("sarif is json");
    assert_eq!(sarif["version"], "2.1.0");
    assert!(
        sarif["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ruleId"].is_string() && r["message"]["text"].is_string())
    );

    let usage = validate(root, &["-o", "nonsense"]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
    let outside = validate(root, &["../"]);
    assert_eq!(outside.status.code(), Some(1));
    assert!(text(&outside.stdout).contains("leaves the repository root"));
}

#[test]
#[cfg_attr(
    not(all(has_corpus, has_kubectl)),
    ignore = "needs ../shared/corpus and kubectl on PATH (kustomize): run tools/test.sh"
)]
fn validate_checks_the_shared_corpus_with_its_crds_and_through_kustomize() {
    let corpus = configsync_prereq::require_corpus("kube-prometheus/manifests");
    configsync_prereq::require_tool("kubectl");
    // kube-prometheus validates with the CRDs of its setup/ directory; its node-exporter is a
    // node agent that the Pod Security baseline refuses (host network, PID, paths), so the
    // baseline runs in warn mode here, and in deny mode it must name those violations.
    for (root, args, resources) in [
        (
            "kube-prometheus",
            &["manifests", "--policy-mode", "warn"][..],
            131,
        ),
        ("microservices-demo", &["kustomize"][..], 35),
        (
            "microservices-demo",
            &["release/kubernetes-manifests.yaml"][..],
            35,
        ),
    ] {
        let mut full = vec!["--summary"];
        full.extend_from_slice(args);
        let out = validate(&corpus.join(root), &full);
        let summary = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{root} {args:?}: {summary}");
        assert!(
            summary.starts_with(&format!("Summary: {resources} resources")),
            "{root}: {summary}"
        );
        assert!(
            summary.contains("Invalid: 0, Errors: 0"),
            "{root}: {summary}"
        );
    }
    let deny = validate(&corpus.join("kube-prometheus"), &["manifests"]);
    assert_eq!(deny.status.code(), Some(1));
    let out = text(&deny.stdout);
    assert!(
        out.contains("DaemonSet node-exporter is invalid") && out.contains("hostNetwork"),
        "{out}"
    );
    // Without its CRDs, kube-prometheus's custom resources have no schema.
    let no_crds = validate(
        &corpus.join("kube-prometheus"),
        &["manifests/prometheus-prometheus.yaml", "-o", "json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&no_crds.stdout).unwrap();
    assert_eq!(report["findings"][0]["rule"], "schema.missing", "{report}");
    let with_crd = validate(
        &corpus.join("kube-prometheus"),
        &[
            "manifests/prometheus-prometheus.yaml",
            "--crd",
            corpus
                .join("kube-prometheus/manifests/setup")
                .to_str()
                .unwrap(),
            "--assume-exists",
            "Namespace/monitoring",
            "--summary",
        ],
    );
    assert_eq!(
        with_crd.status.code(),
        Some(0),
        "{}",
        text(&with_crd.stdout)
    );
}

/// Every kind of hostile input at once, in plain files, a kustomization, a chart and a
/// policy: each becomes a finding, nothing outside the repository is read, and the run ends
/// in bounded time with exit 1.
#[test]
fn validate_turns_a_hostile_repository_into_findings_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let put = |path: &str, bytes: &[u8]| {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    put(
        "configs/prod/ok.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\ndata:\n  a: b\n",
    );
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
    {
        bomb.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    put("configs/prod/bomb.yaml", bomb.as_bytes());
    // 100 MB, sparse: it must be refused by its size, not read.
    std::fs::File::create(root.join("configs/prod/huge.yaml"))
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    put(
        "configs/prod/binary.yaml",
        &[0x7f, b'E', b'L', b'F', 0, 0xff, 0xfe, 0x01],
    );
    put(
        "configs/prod/latin1.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: caf\xe9\n",
    );
    std::os::unix::fs::symlink("/etc/passwd", root.join("configs/prod/passwd.yaml")).unwrap();
    put(
        "configs/prod/kust/kustomization.yaml",
        b"resources:\n- ../../../../../../etc/passwd\n- https://github.com/example/repo//base?ref=v1\n",
    );
    put(
        "configs/prod/chart/Chart.yaml",
        b"apiVersion: v2\nname: web\nversion: 1.0.0\n",
    );
    put("configs/prod/chart/values.yaml", b"replicas: 1\n");
    std::os::unix::fs::symlink(
        "/etc/shadow",
        root.join("configs/prod/chart/values-prod.yaml"),
    )
    .unwrap();
    put(
        "policies/forever.rego",
        b"package forever\nimport rego.v1\ndeny contains \"never\" if {\n  some i in numbers.range(1, 900000)\n  some j in numbers.range(1, 900000)\n  i + j < 0\n}\n",
    );

    let start = std::time::Instant::now();
    let out = validate(root, &["--env", "prod", "-o", "json"]);
    let elapsed = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let findings = report["findings"].as_array().unwrap();
    let rule_of = |file: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f["file"].as_str().is_some_and(|f| f.ends_with(file)))
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(rule_of("bomb.yaml"), ["yaml.syntax"], "{findings:?}");
    assert_eq!(rule_of("huge.yaml"), ["file.too-large"]);
    assert_eq!(rule_of("binary.yaml"), ["file.encoding"]);
    assert_eq!(rule_of("latin1.yaml"), ["file.encoding"]);
    assert_eq!(rule_of("passwd.yaml"), ["file.refused"]);
    let kust = rule_of("kust/kustomization.yaml");
    assert!(
        kust.contains(&"render.path-escape".to_string())
            && kust.contains(&"render.remote-source".to_string()),
        "{findings:?}"
    );
    let chart: Vec<String> = findings
        .iter()
        .filter(|f| f["file"].as_str().is_some_and(|f| f.contains("chart/")))
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect();
    assert!(
        chart
            .iter()
            .any(|r| r == "render.symlink" || r == "render.path-escape"),
        "the value file leaving the chart is refused: {findings:?}"
    );
    assert!(
        findings.iter().any(|f| f["rule"] == "policy.timeout"),
        "{findings:?}"
    );
    assert!(
        report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "ok"),
        "the good file is still validated"
    );
    let all = text(&out.stdout);
    assert!(
        !all.contains("root:x:") && !all.contains("root:*:") && !all.contains("lollol"),
        "nothing of /etc/passwd or /etc/shadow, no expanded bomb"
    );
}

#[test]
fn validate_without_paths_checks_each_environment_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: default\ndata:\n  a: b\n";
    for env in ["dev", "prod"] {
        std::fs::create_dir_all(root.join("configs").join(env)).unwrap();
        std::fs::write(root.join("configs").join(env).join("cm.yaml"), cm).unwrap();
    }
    let out = validate(root, &["--summary"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).starts_with("Summary: 2 resources found in 2 files - Valid: 2"));

    // A policy file that is a link out of the repository is refused, not run.
    std::fs::create_dir_all(root.join("policies")).unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        outside.path(),
        "package leak\nimport rego.v1\ndeny contains \"ran a file from outside\" if true\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("policies/evil.rego")).unwrap();
    let out = validate(root, &[]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        shown.contains("policies/evil.rego - error: policy file is a symbolic link"),
        "{shown}"
    );
    assert!(!shown.contains("ran a file from outside"), "{shown}");
}

/// Thousands of findings in one document: reported, with positions for the first ones, and
/// in time linear in the input.
#[test]
fn validate_stays_fast_on_a_document_with_thousands_of_findings() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "many"}
    });
    for i in 0..5000 {
        doc[format!("x{i}")] = 1.into();
    }
    // YAML caps implicit keys at 1,024 characters; JSON does not.
    doc["k".repeat(200_000)] = 1.into();
    std::fs::write(
        dir.path().join("cm.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let out = validate(dir.path(), &["-o", "json"]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(
        findings
            .iter()
            .filter(|f| f["rule"] == "schema.unknown-field")
            .count(),
        5001
    );
    let x0 = findings.iter().find(|f| f["path"] == ".x0").unwrap();
    assert!(
        x0["line"].as_u64().unwrap() > 1,
        "the first findings point at their field: {x0}"
    );
    assert!(
        out.stdout.len() < 5_000_000,
        "a 200 KB key is shortened in messages and paths: {} bytes",
        out.stdout.len()
    );
}

/// CRDs given with --crd in a kubebuilder layout (a kustomization beside the bases, patches
/// that are not whole objects): the CRDs are read, the rest is not this run's business.
#[test]
fn validate_reads_crds_from_a_kubebuilder_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let put = |path: &str, text: &str| {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put(
        "config/crd/kustomization.yaml",
        "resources: [bases/widgets.yaml]\npatches: [{path: patches/webhook.yaml}]\n",
    );
    put(
        "config/crd/patches/webhook.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  conversion: {strategy: Webhook}\n",
    );
    put(
        "config/crd/bases/widgets.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              size: {type: integer}\n",
    );
    put(
        "config/crd/bases/gadgets.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: gadgets.example.com\nspec:\n  group: example.com\n  names: {kind: Gadget, plural: gadgets}\n  scope: Cluster\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
    );
    // Cluster-scoped by its CRD: the namespace it names is ignored, not a missing reference.
    put(
        "configs/dev/gadget.yaml",
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n  namespace: nowhere\n",
    );
    put(
        "configs/dev/widgets.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: good\n  namespace: default\nspec:\n  size: 3\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: bad\n  namespace: default\nspec:\n  size: big\n  colour: red\n",
    );
    let out = validate(
        root,
        &[
            "configs/dev",
            "--crd",
            root.join("config/crd").to_str().unwrap(),
        ],
    );
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("Widget good is valid"), "{shown}");
    assert!(
        shown.contains("Widget bad is invalid")
            && shown.contains("colour")
            && shown.contains("integer"),
        "{shown}"
    );
    assert!(
        !shown.contains("webhook.yaml"),
        "the patch is not reported: {shown}"
    );
}

/// Runs `configsync validate ARGS` from `cwd`, without --root.
fn validate_from(cwd: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_configsync"))
        .arg("validate")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("configsync validate runs")
}

/// Without --root, a path given from anywhere is read with the Git work tree that holds it
/// as its root (so that work tree's `policies/` apply and findings name files as in the
/// repository), or its own directory outside any work tree; paths of two work trees are each
/// validated with their own root; a link named on the command line is still judged.
#[test]
fn validate_finds_the_root_of_each_path_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let put = |path: &str, text: &str| {
        let p = base.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  a: b\n"
        )
    };
    for repo in ["repo", "other"] {
        let init = Command::new("git")
            .args(["init", "-q"])
            .arg(base.join(repo))
            .output()
            .expect("git runs");
        assert!(init.status.success(), "{}", text(&init.stderr));
    }
    put("repo/configs/dev/web/cm.yaml", &cm("web"));
    // The work tree's policy: its finding proves the root is the work tree, not the file's
    // directory.
    put(
        "repo/policies/names.rego",
        "package names\nimport rego.v1\nwarn contains \"policy of the work tree ran\" if input.metadata.name == \"web\"\n",
    );
    put("other/app/cm.yaml", &cm("other"));
    put("loose/cm.yaml", &cm("loose"));
    std::fs::create_dir_all(base.join("elsewhere")).unwrap();
    let file = base.join("repo/configs/dev/web/cm.yaml");

    // An absolute path, from a directory in no repository.
    let out = validate_from(&base.join("elsewhere"), &[file.to_str().unwrap()]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}{}", text(&out.stderr));
    assert!(
        shown.contains("configs/dev/web/cm.yaml - ConfigMap web is valid"),
        "named relative to the work tree: {shown}"
    );
    assert!(!shown.contains(base.to_str().unwrap()), "{shown}");
    assert!(shown.contains("policy of the work tree ran"), "{shown}");
    assert!(!shown.contains("outside the repository root"), "{shown}");

    // A relative path leaving the current directory, and a directory inside the work tree.
    let out = validate_from(
        &base.join("elsewhere"),
        &["../repo/configs/dev/web/cm.yaml", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = validate_from(&base.join("repo/configs"), &["dev", "--summary"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("Summary: 1 resources found in 1 files"));

    // Outside any work tree: the file's own directory is the root.
    let out = validate_from(&base.join("elsewhere"), &["../loose/cm.yaml"]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(
        shown.starts_with("cm.yaml - ConfigMap loose is valid"),
        "{shown}"
    );

    // Two work trees: each with its own root, named with it so names stay unambiguous.
    let out = validate_from(
        &base.join("elsewhere"),
        &[file.to_str().unwrap(), "../other/app", "../loose/cm.yaml"],
    );
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    for name in [
        "repo/configs/dev/web/cm.yaml - ConfigMap web is valid",
        "other/app/cm.yaml - ConfigMap other is valid",
        "loose/cm.yaml - ConfigMap loose is valid",
    ] {
        assert!(
            shown.contains(&format!("{}/{name}", base.display())),
            "{shown}"
        );
    }
    assert_eq!(
        shown.matches("policy of the work tree ran").count(),
        1,
        "only the first work tree has the policy: {shown}"
    );

    // A link named on the command line that leaves the work tree is refused, not followed.
    std::os::unix::fs::symlink("/etc/passwd", base.join("repo/configs/dev/passwd.yaml")).unwrap();
    let link = base.join("repo/configs/dev/passwd.yaml");
    let out = validate_from(&base.join("elsewhere"), &[link.to_str().unwrap()]);
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("leaves the repository root"), "{shown}");
    assert!(!shown.contains("root:"), "{shown}");
}
