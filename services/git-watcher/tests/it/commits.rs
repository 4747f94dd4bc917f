//! Commits appear in order, with their metadata and their paths grouped by environment and app.

use configsync_core::event::EventData;

use configsync_core::harness::{ALICE, Bus, GitRepo, Who};

use crate::support::{Watcher, config, failures, simple_commit, wait_for_commits};

/// Environments with their apps and paths, for comparing in one assertion.
type Grouped = Vec<(String, Vec<(String, Vec<String>)>)>;

const BOB: Who = Who {
    name: "Bob Committer",
    email: "bob@example.com",
    time: 1_700_000_500,
};

#[tokio::test]
async fn commits_are_emitted_in_order_with_metadata_and_grouped_paths() {
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("configs-repo");
    let work = tempfile::tempdir().expect("work dir");
    let c1 = repo.commit_as(&[("README.md", Some("hello\n"))], "initial", ALICE, ALICE);

    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    // First run: only the tip is announced.
    let seen = wait_for_commits(&bus, 1).await;
    assert_eq!(seen[0].sha, c1);
    assert!(seen[0].parents.is_empty());
    assert_eq!(seen[0].other_paths, vec!["README.md"]);

    let c2 = repo.commit_as(
        &[
            ("configs/dev/web/deploy.yaml", Some("replicas: 1\n")),
            ("configs/prod/web/deploy.yaml", Some("replicas: 3\n")),
            ("configs/dev/api/service.yaml", Some("port: 80\n")),
            ("docs/runbook.md", Some("# runbook\n")),
        ],
        "web: roll out\n\nwith a body line",
        ALICE,
        BOB,
    );
    let c3 = repo.commit_as(
        &[
            ("configs/dev/web/deploy.yaml", None),
            ("configs/dev/api/service.yaml", Some("port: 8080\n")),
        ],
        "api: move port, drop dev web",
        BOB,
        BOB,
    );
    let seen = wait_for_commits(&bus, 3).await;
    let shas: Vec<&str> = seen.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(
        shas,
        [c1.as_str(), c2.as_str(), c3.as_str()],
        "in commit order"
    );

    let second = &seen[1];
    assert_eq!(second.repository, repo.url());
    assert_eq!(second.branch, "main");
    assert_eq!(second.parents, vec![c1.clone()]);
    assert_eq!(
        (second.author.name.as_str(), second.author.email.as_str()),
        (ALICE.name, ALICE.email)
    );
    assert_eq!(second.author.time.timestamp(), ALICE.time);
    assert_eq!(
        (
            second.committer.name.as_str(),
            second.committer.email.as_str()
        ),
        (BOB.name, BOB.email)
    );
    assert_eq!(second.committer.time.timestamp(), BOB.time);
    assert_eq!(
        second.message.trim_end(),
        "web: roll out\n\nwith a body line"
    );
    assert!(!second.signed);
    let grouped: Grouped = second
        .environments
        .iter()
        .map(|e| {
            (
                e.environment.clone(),
                e.apps
                    .iter()
                    .map(|a| (a.app.clone(), a.paths.clone()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        grouped,
        vec![
            (
                "dev".to_string(),
                vec![
                    (
                        "api".to_string(),
                        vec!["configs/dev/api/service.yaml".to_string()]
                    ),
                    (
                        "web".to_string(),
                        vec!["configs/dev/web/deploy.yaml".to_string()]
                    ),
                ]
            ),
            (
                "prod".to_string(),
                vec![(
                    "web".to_string(),
                    vec!["configs/prod/web/deploy.yaml".to_string()]
                )]
            ),
        ]
    );
    assert_eq!(second.other_paths, vec!["docs/runbook.md"]);

    // A deletion is a change too.
    let third = &seen[2];
    assert_eq!(third.parents, vec![c2.clone()]);
    let dev = &third.environments[0];
    assert_eq!(dev.environment, "dev");
    let apps: Vec<(&str, Vec<&str>)> = dev
        .apps
        .iter()
        .map(|a| (a.app.as_str(), a.paths.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        apps,
        [
            ("api", vec!["configs/dev/api/service.yaml"]),
            ("web", vec!["configs/dev/web/deploy.yaml"])
        ]
    );

    // The envelope: subject `<branch>@<short sha>`, revision extension, no failures.
    let events = bus.events().await;
    let envelope = events
        .iter()
        .find(|e| matches!(&e.data, EventData::CommitDetected(c) if c.sha == c2))
        .expect("c2's event");
    use configsync_core::cloudevents::AttributesReader;
    assert_eq!(
        envelope.event.subject(),
        Some(format!("main@{}", &c2[..7]).as_str())
    );
    assert_eq!(envelope.revision(), Some(c2.as_str()));
    assert_eq!(envelope.actor(), Some(ALICE.email));
    assert!(
        failures(&events).is_empty(),
        "no source failures: {events:?}"
    );
    assert!(watcher.is_running());
    watcher.stop().await;
}

#[tokio::test]
async fn a_two_mebibyte_commit_message_is_cut_and_later_commits_still_flow() {
    let bus = Bus::start().await;
    let repo = GitRepo::init_named("huge-message");
    let work = tempfile::tempdir().expect("work dir");
    simple_commit(&repo, 1);
    let watcher = Watcher::start(config(&bus, &repo.url(), work.path()));
    wait_for_commits(&bus, 1).await;

    // 2 MiB of message: more than an argument may hold, so through a file.
    let message = format!("huge\n\n{}", "é".repeat(1 << 20));
    let file = repo.parent().join("message.txt");
    std::fs::write(&file, &message).unwrap();
    repo.write("configs/dev/web/values.yaml", "n: 2\n");
    repo.git(&["add", "-A"]);
    repo.git_with(
        &["commit", "-q", "-F", file.to_str().unwrap()],
        &[
            ("GIT_AUTHOR_NAME", ALICE.name),
            ("GIT_AUTHOR_EMAIL", ALICE.email),
            ("GIT_COMMITTER_NAME", ALICE.name),
            ("GIT_COMMITTER_EMAIL", ALICE.email),
        ],
    );
    let huge = repo.head();
    let after = simple_commit(&repo, 3);

    let seen = wait_for_commits(&bus, 3).await;
    assert_eq!(seen[1].sha, huge);
    assert!(
        seen[1].message.len() < 70 * 1024,
        "{}",
        seen[1].message.len()
    );
    assert!(seen[1].message.starts_with("huge\n\né"));
    assert!(
        seen[1]
            .message
            .ends_with("more bytes of the message are in Git]")
    );
    assert_eq!(seen[2].sha, after, "the next commit is not blocked");
    assert!(failures(&bus.events().await).is_empty());
    watcher.stop().await;
}
