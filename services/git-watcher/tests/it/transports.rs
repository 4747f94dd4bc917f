//! Following remotes over the network transports, each against the real server program:
//! smart HTTP through `git http-backend` with basic authentication, and SSH to OpenSSH's
//! `sshd` with a generated key and known_hosts. Failing credentials and a wrong host key are
//! clear failures that never show the password.

use configsync_core::harness::{Bus, GitHttpServer, GitRepo, Sshd};

use crate::support::{Watcher, config_with, failures, simple_commit, wait_for_commits};

const PASSWORD: &str = "pa55-w0rd-never-shown";

#[tokio::test]
#[cfg_attr(
    not(has_git_http_backend),
    ignore = "this machine's git has no `git http-backend`"
)]
async fn follows_a_smart_http_remote_with_basic_auth() {
    let backend = configsync_prereq::require_git_http_backend();
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("http-repo");
    let server = GitHttpServer::start(&backend, repo.parent(), "bot", PASSWORD).await;
    let secrets = tempfile::tempdir().expect("dir");
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password file");
    let url = server.url("http-repo");
    let work = tempfile::tempdir().expect("work dir");
    let c1 = simple_commit(&repo, 1);

    let watcher = Watcher::start(config_with(
        &bus,
        &url,
        work.path(),
        &[
            "--allow-private-hosts",
            "--http-username",
            "bot",
            "--http-password-file",
            &password_file.display().to_string(),
        ],
    ));
    wait_for_commits(&bus, 1).await;
    let c2 = simple_commit(&repo, 2);
    let c3 = simple_commit(&repo, 3);
    let seen = wait_for_commits(&bus, 3).await;
    watcher.stop().await;

    let shas: Vec<&str> = seen.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(shas, [c1.as_str(), c2.as_str(), c3.as_str()]);
    assert!(seen.iter().all(|c| c.repository == url));
    assert!(failures(&bus.events().await).is_empty());
}

#[tokio::test]
#[cfg_attr(
    not(has_git_http_backend),
    ignore = "this machine's git has no `git http-backend`"
)]
async fn wrong_or_missing_http_credentials_are_clear_and_never_show_the_password() {
    let backend = configsync_prereq::require_git_http_backend();
    let repo = GitRepo::init_named("locked-repo");
    simple_commit(&repo, 1);
    let server = GitHttpServer::start(&backend, repo.parent(), "bot", PASSWORD).await;
    let url = server.url("locked-repo");
    let wrong = "wr0ng-pa55-also-never-shown";

    for (case, extra) in [
        (
            "wrong password",
            vec!["--http-username", "bot", "--http-password", wrong],
        ),
        ("no credentials", vec![]),
    ] {
        let bus = Bus::start().await;
        let work = tempfile::tempdir().expect("work dir");
        let mut flags = vec!["--allow-private-hosts"];
        flags.extend(extra);
        let watcher = Watcher::start(config_with(&bus, &url, work.path(), &flags));
        let events = bus
            .wait_until("a source-failed event", |e| !failures(e).is_empty())
            .await;
        watcher.stop().await;
        let failed = &failures(&events)[0];
        eprintln!("{case}: {}", failed.reason);
        assert!(
            failed.reason.contains("refused the credentials") && failed.reason.contains(&url),
            "{case}: a clear reason naming the remote: {}",
            failed.reason
        );
        assert!(
            !failed.transient,
            "{case}: credentials do not fix themselves"
        );
        for secret in [PASSWORD, wrong] {
            assert!(
                !failed.reason.contains(secret),
                "{case}: no password in {}",
                failed.reason
            );
        }
        let raw = serde_json::to_string(&events.iter().map(|e| &e.data).collect::<Vec<_>>())
            .expect("events serialize");
        assert!(!raw.contains(wrong) && !raw.contains(PASSWORD), "{case}");
        assert!(wait_for_commits_now(&bus).await.is_empty());
    }
}

/// The commits in the log right now.
async fn wait_for_commits_now(bus: &Bus) -> Vec<configsync_core::event::CommitDetected> {
    crate::support::commits(&bus.events().await)
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "OpenSSH's sshd, ssh or ssh-keygen is missing")]
async fn follows_an_ssh_remote_with_a_key_and_known_hosts() {
    let sshd = Sshd::start(&configsync_prereq::require_sshd()).await;
    configsync_prereq::require_tool("ssh");
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("ssh-repo");
    let url = sshd.url(repo.path());
    let work = tempfile::tempdir().expect("work dir");
    let c1 = simple_commit(&repo, 1);

    let watcher = Watcher::start(config_with(
        &bus,
        &url,
        work.path(),
        &[
            "--allow-private-hosts",
            "--ssh-key",
            &sshd.client_key().display().to_string(),
            "--ssh-known-hosts",
            &sshd.known_hosts().display().to_string(),
        ],
    ));
    let first = wait_for_commits(&bus, 1).await;
    assert_eq!(first[0].sha, c1, "sshd log: {}", sshd.log());
    let c2 = simple_commit(&repo, 2);
    let seen = wait_for_commits(&bus, 2).await;
    watcher.stop().await;
    assert_eq!(seen[1].sha, c2);
    // The user is part of the URL's credentials, which the published identity leaves out.
    let published = configsync_core::credentials::redact_url(&url);
    assert!(seen.iter().all(|c| c.repository == published));
    assert!(failures(&bus.events().await).is_empty());
}

#[tokio::test]
#[cfg_attr(not(has_sshd), ignore = "OpenSSH's sshd, ssh or ssh-keygen is missing")]
async fn an_ssh_server_with_another_host_key_is_refused() {
    let sshd = Sshd::start(&configsync_prereq::require_sshd()).await;
    configsync_prereq::require_tool("ssh");
    let repo = GitRepo::init_named("mitm-repo");
    simple_commit(&repo, 1);
    let url = sshd.url(repo.path());
    let empty = tempfile::tempdir().expect("dir");
    let unknown = empty.path().join("known_hosts");
    std::fs::write(&unknown, "").expect("empty known_hosts");

    for (case, known) in [
        ("another key", sshd.wrong_known_hosts()),
        ("an unknown host", unknown),
    ] {
        let bus = Bus::start().await;
        let work = tempfile::tempdir().expect("work dir");
        let watcher = Watcher::start(config_with(
            &bus,
            &url,
            work.path(),
            &[
                "--allow-private-hosts",
                "--ssh-key",
                &sshd.client_key().display().to_string(),
                "--ssh-known-hosts",
                &known.display().to_string(),
            ],
        ));
        let events = bus
            .wait_until("a source-failed event", |e| !failures(e).is_empty())
            .await;
        watcher.stop().await;
        let failed = &failures(&events)[0];
        eprintln!("{case}: {}", failed.reason);
        assert!(
            failed.reason.contains("host key"),
            "{case}: the reason says the host key: {}",
            failed.reason
        );
        assert!(crate::support::commits(&events).is_empty(), "{case}");
        // No trust on first use: the unknown key was not recorded.
        assert!(
            !std::fs::read_to_string(&known)
                .unwrap_or_default()
                .contains(&sshd.host_key_text()),
            "{case}"
        );
    }
}

/// `file://` keeps working with the default flags (no allow flag needed: no network).
#[tokio::test]
async fn a_local_remote_needs_no_allow_flag() {
    let bus = Bus::start().await;
    let repo = GitRepo::init();
    let c1 = simple_commit(&repo, 1);
    let work = tempfile::tempdir().expect("work dir");
    let watcher = Watcher::start(config_with(&bus, &repo.url(), work.path(), &[]));
    let seen = wait_for_commits(&bus, 1).await;
    watcher.stop().await;
    assert_eq!(seen[0].sha, c1);
}
