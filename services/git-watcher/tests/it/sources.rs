//! Several sources in one git-watcher: each followed at its own interval, its events named
//! after it (payload and `gitsource` attribute), a sub-directory's paths taken relative to it,
//! and each source's last commit rebuilt from the log on its own; commit trailers parsed.

use clap::Parser;
use configsync_core::event::{EventData, Received, ext, extension};
use configsync_core::harness::{ALICE, Bus, GitRepo};
use configsync_core::names::SourceId;
use configsync_git_watcher::{Config, last_seen};

use crate::support::{Watcher, commits};

fn sources_config(bus: &Bus, work: &std::path::Path, sources: &[String]) -> Config {
    let nats = bus.url();
    let work = work.display().to_string();
    let mut args: Vec<&str> = vec![
        "git-watcher",
        "--nats-url",
        &nats,
        "--connect-deadline",
        "10s",
        "--ops-addr",
        "127.0.0.1:0",
        "--instance",
        "it",
        "--work-dir",
        &work,
        "--allow-private-hosts",
        "--poll-interval",
        "1s",
    ];
    for s in sources {
        args.extend(["--source", s.as_str()]);
    }
    Config::try_parse_from(args).expect("flags parse")
}

/// The git-source attribute of each commit-detected event, with its payload.
fn by_source(events: &[Received]) -> Vec<(Option<String>, configsync_core::event::CommitDetected)> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::CommitDetected(c) => Some((
                extension(&e.event, ext::GIT_SOURCE).map(str::to_string),
                c.clone(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn one_watcher_follows_several_sources_each_named_in_its_events() {
    let bus = Bus::start().await;
    let apps = GitRepo::init_named("apps");
    let mono = GitRepo::init_named("mono");
    let work = tempfile::tempdir().expect("work dir");
    let a1 = apps.commit_as(
        &[("configs/dev/web/values.yaml", Some("n: 1\n"))],
        "apps: first",
        ALICE,
        ALICE,
    );
    let m1 = mono.commit_as(
        &[
            ("teams/a/configs/dev/api/deploy.yaml", Some("n: 1\n")),
            ("teams/b/configs/dev/api/deploy.yaml", Some("n: 1\n")),
        ],
        "mono: first",
        ALICE,
        ALICE,
    );
    let sources = vec![
        format!("apps={}", apps.url()),
        format!("team-a={}#main:teams/a,interval=2s", mono.url()),
    ];
    let watcher = Watcher::start(sources_config(&bus, work.path(), &sources));
    bus.wait_until("both sources' first commits", |events| {
        commits(events).len() >= 2
    })
    .await;

    // Team b's change is outside team a's sub-directory: announced (the branch moved) but with
    // no paths. Team a's with paths relative to its directory.
    let m2 = mono.commit_as(
        &[("teams/b/configs/dev/api/deploy.yaml", Some("n: 2\n"))],
        "mono: team b only",
        ALICE,
        ALICE,
    );
    let m3 = mono.commit_as(
        &[("teams/a/configs/dev/api/deploy.yaml", Some("n: 3\n"))],
        "mono: team a\n\nRaise the limit.\n\nSigned-off-by: Alice <alice@example.com>\nChange-Id: I5e1f\nCo-authored-by: Bob <bob@example.com>\n",
        ALICE,
        ALICE,
    );
    let a2 = apps.commit_as(
        &[("configs/prod/web/values.yaml", Some("n: 2\n"))],
        "apps: second",
        ALICE,
        ALICE,
    );
    let events = bus
        .wait_until("every commit of both sources", |events| {
            commits(events).len() >= 5
        })
        .await;
    watcher.stop().await;

    let seen = by_source(&events);
    assert_eq!(seen.len(), 5, "{seen:#?}");
    let of = |name: &str| -> Vec<String> {
        seen.iter()
            .filter(|(attr, c)| {
                assert_eq!(attr.as_deref(), c.source.as_deref(), "attribute = payload");
                c.source.as_deref() == Some(name)
            })
            .map(|(_, c)| c.sha.clone())
            .collect()
    };
    assert_eq!(of("apps"), [a1.clone(), a2.clone()]);
    assert_eq!(of("team-a"), [m1, m2.clone(), m3.clone()]);
    let commit = |sha: &str| seen.iter().find(|(_, c)| c.sha == sha).unwrap().1.clone();
    let team_b = commit(&m2);
    assert_eq!(team_b.path.as_deref(), Some("teams/a"));
    assert!(team_b.environments.is_empty() && team_b.other_paths.is_empty());
    let team_a = commit(&m3);
    assert_eq!(team_a.environments.len(), 1);
    assert_eq!(team_a.environments[0].environment, "dev");
    assert_eq!(
        team_a.environments[0].apps[0].paths,
        ["configs/dev/api/deploy.yaml"]
    );
    let trailers: Vec<(String, String)> = team_a
        .trailers
        .iter()
        .map(|t| (t.token.clone(), t.value.clone()))
        .collect();
    assert_eq!(
        trailers,
        [
            ("Signed-off-by".into(), "Alice <alice@example.com>".into()),
            ("Change-Id".into(), "I5e1f".into()),
            ("Co-authored-by".into(), "Bob <bob@example.com>".into()),
        ]
    );
    assert!(commit(&a2).trailers.is_empty());
    assert_eq!(commit(&a2).path, None);

    // Each source's memory is its own fold of the log.
    let apps_id = SourceId::new(apps.url(), "main");
    let team_a_id = SourceId::new(mono.url(), "main").with_path(Some("teams/a".into()));
    let remembered = last_seen(&bus.log, &apps_id).await.expect("replays");
    assert_eq!(remembered.sha.as_deref(), Some(a2.as_str()));
    let remembered = last_seen(&bus.log, &team_a_id).await.expect("replays");
    assert_eq!(remembered.sha.as_deref(), Some(m3.as_str()));
    let whole_mono = last_seen(&bus.log, &SourceId::new(mono.url(), "main"))
        .await
        .expect("replays");
    assert_eq!(
        whole_mono.sha, None,
        "the sub-directory is part of the identity"
    );
}

#[test]
fn sources_must_be_distinct_and_intervals_at_least_a_second() {
    let parse = |extra: &[&str]| {
        let mut args = vec!["git-watcher"];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
    };
    assert!(parse(&["--repo", "file:///r", "--poll-interval", "500ms"]).is_err());
    assert!(parse(&["--source", "a=file:///r#main,interval=10ms"]).is_err());
    assert!(
        parse(&["--repo", "file:///r", "--source", "a=file:///r"]).is_err(),
        "--repo and --source are one or the other"
    );
    assert!(parse(&[]).is_err(), "a source is required");
    let config = parse(&["--repo", "file:///r"]).expect("parses");
    assert_eq!(config.poll_interval, std::time::Duration::from_secs(15));
    let followed = config.followed().expect("one source");
    assert_eq!(followed[0].spec.name.as_str(), "default");
    let twice = parse(&["--source", "a=file:///r", "--source", "a=file:///s"]).unwrap();
    assert!(twice.followed().is_err(), "names are unique");
    let same = parse(&["--source", "a=file:///r", "--source", "b=file:///r#main"]).unwrap();
    assert!(same.followed().is_err(), "one branch is followed once");
    let distinct = parse(&[
        "--source",
        "a=file:///r#main:x",
        "--source",
        "b=file:///r#main:y,interval=3s",
    ])
    .unwrap();
    let followed = distinct.followed().expect("distinct sub-directories");
    assert_eq!(followed[1].interval, std::time::Duration::from_secs(3));
    assert_ne!(followed[0].mirror_dir, followed[1].mirror_dir);
}
