//! Reading the tree at a revision through the shared `git` module (what the validator uses):
//! files and directories come back with their bytes; symbolic links, paths leaving the tree
//! and oversized files are refused.

use std::sync::atomic::AtomicBool;

use configsync_core::git::{self, GitError, Limits, Mirror, RemoteOptions};

use configsync_core::harness::{ALICE, GitRepo};

use crate::support::simple_commit;

#[test]
fn files_and_directories_are_read_at_a_revision_and_unsafe_entries_refused() {
    let repo = GitRepo::init_named("tree-repo");
    let old = repo.commit_as(
        &[("configs/dev/web/deploy.yaml", Some("replicas: 1\n"))],
        "one",
        ALICE,
        ALICE,
    );
    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("configs/dev/web/evil.yaml"))
        .expect("symlink");
    let big = "x".repeat(2048);
    let new = repo.commit_as(
        &[
            ("configs/dev/web/deploy.yaml", Some("replicas: 2\n")),
            ("configs/dev/web/extra/config.yaml", Some("a: b\n")),
            ("configs/prod/web/deploy.yaml", Some("replicas: 3\n")),
            ("configs/prod/big/blob.yaml", Some(&big)),
        ],
        "two",
        ALICE,
        ALICE,
    );
    let work = tempfile::tempdir().expect("work dir");
    let mirror =
        Mirror::open_or_init(work.path(), &repo.url(), RemoteOptions::default()).expect("mirror");
    let tip = mirror
        .fetch("main", &AtomicBool::new(false))
        .expect("fetch");
    assert_eq!(tip.to_string(), new);
    assert_eq!(
        mirror.tip("main").expect("tip").map(|t| t.to_string()),
        Some(new.clone())
    );
    let r = mirror.repository().expect("open");
    let limits = Limits {
        max_file_bytes: 1024,
        ..Limits::default()
    };
    let (old, new) = (git::parse_sha(&old).unwrap(), git::parse_sha(&new).unwrap());

    let read = |rev, path: &str| git::read_file(&r, rev, path, &limits);
    assert_eq!(
        read(old, "configs/dev/web/deploy.yaml").unwrap(),
        b"replicas: 1\n"
    );
    assert_eq!(
        read(new, "configs/dev/web/deploy.yaml").unwrap(),
        b"replicas: 2\n"
    );
    assert!(matches!(
        read(old, "configs/prod/web/deploy.yaml"),
        Err(GitError::PathNotFound { .. })
    ));
    assert!(matches!(
        read(new, "configs/dev/web/evil.yaml"),
        Err(GitError::Refused {
            kind: "symbolic link",
            ..
        })
    ));
    assert!(matches!(
        read(new, "../etc/passwd"),
        Err(GitError::InvalidPath { .. })
    ));
    assert!(matches!(
        read(new, "/etc/passwd"),
        Err(GitError::InvalidPath { .. })
    ));
    assert!(matches!(
        read(new, "configs/prod/big/blob.yaml"),
        Err(GitError::TooLarge { .. })
    ));
    assert!(matches!(
        read(new, "configs/dev"),
        Err(GitError::Refused { .. })
    ));

    let prod = git::read_dir(&r, new, "configs/prod/web", &limits).expect("prod/web reads");
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0].path, "configs/prod/web/deploy.yaml");
    assert_eq!(prod[0].bytes, b"replicas: 3\n");
    // The dev directory holds a symbolic link: the whole walk is refused, not silently partial.
    assert!(matches!(
        git::read_dir(&r, new, "configs/dev", &limits),
        Err(GitError::Refused {
            kind: "symbolic link",
            ..
        })
    ));
    let nested = git::read_dir(&r, new, "configs/dev/web/extra", &limits).expect("nested reads");
    assert_eq!(nested[0].path, "configs/dev/web/extra/config.yaml");

    // History helpers used by the watcher.
    assert!(git::is_ancestor(&r, old, new).unwrap());
    assert!(!git::is_ancestor(&r, new, old).unwrap());
    assert_eq!(
        git::first_parent_range(&r, Some(old), new).unwrap(),
        vec![new]
    );
    let changed = git::changed_paths(&r, new).unwrap();
    assert!(changed.contains(&"configs/dev/web/evil.yaml".to_string()));
    assert!(changed.contains(&"configs/prod/big/blob.yaml".to_string()));
}

#[test]
fn unsupported_transports_and_missing_branches_are_clear_errors() {
    let work = tempfile::tempdir().expect("work dir");
    assert!(matches!(
        Mirror::open_or_init(work.path(), "ftp://example.com/r.git", RemoteOptions::default()),
        Err(GitError::UnsupportedTransport { ref url, .. }) if url == "ftp://example.com/r.git"
    ));
    // A password in a URL is refused, and not repeated.
    let err = Mirror::open_or_init(
        work.path(),
        "https://user:pw-s3cret@example.com/r.git",
        RemoteOptions::default(),
    )
    .expect_err("refused");
    assert!(
        matches!(err, GitError::InvalidUrl { ref url, .. } if url == "https://example.com/r.git"),
        "{err}"
    );
    assert!(!err.to_string().contains("pw-s3cret"), "{err}");
    // git:// has no authentication: credentials there are a configuration error, said as such
    // (and, like everywhere, never repeated).
    let err = Mirror::open_or_init(
        work.path(),
        "git://u:s3cret@127.0.0.1:1/r",
        RemoteOptions::default(),
    )
    .expect_err("refused");
    assert!(matches!(err, GitError::InvalidUrl { .. }), "{err}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    let repo = GitRepo::init_named("branchless");
    simple_commit(&repo, 1);
    let mirror =
        Mirror::open_or_init(work.path(), &repo.url(), RemoteOptions::default()).expect("mirror");
    let err = mirror
        .fetch("release", &AtomicBool::new(false))
        .expect_err("no such branch");
    assert!(matches!(err, GitError::BranchNotFound { .. }), "{err}");
    assert!(!err.is_transient());
}

#[test]
fn a_pulled_merge_lists_the_local_commits_then_the_merge() {
    // The branch's previous tip `o` comes back as the second parent of a merge (what `git pull`
    // makes): first-parent history from the merge must stop at what `o` already contains.
    let repo = GitRepo::init_named("merge-repo");
    let _base = simple_commit(&repo, 1);
    let o = simple_commit(&repo, 2);
    repo.git(&["checkout", "-q", "-b", "local", "HEAD~1"]);
    let l = repo.commit_as(
        &[("docs/local.md", Some("local\n"))],
        "local work",
        ALICE,
        ALICE,
    );
    repo.git(&[
        "-c",
        "user.name=A",
        "-c",
        "user.email=a@example.com",
        "merge",
        "-q",
        "--no-ff",
        "--no-edit",
        "main",
    ]);
    let m = repo.git(&["rev-parse", "HEAD"]).trim().to_string();

    let work = tempfile::tempdir().expect("work dir");
    let mirror =
        Mirror::open_or_init(work.path(), &repo.url(), RemoteOptions::default()).expect("mirror");
    let tip = mirror
        .fetch("local", &AtomicBool::new(false))
        .expect("fetch");
    let r = mirror.repository().expect("open");
    let o = git::parse_sha(&o).unwrap();
    assert!(git::is_ancestor(&r, o, tip).unwrap());
    let listed: Vec<String> = git::first_parent_range(&r, Some(o), tip)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(listed, [l, m]);
}

/// A file far over the size limit in the repository: the watcher fetches it (the pack is
/// streamed to disk), announces the commit from trees alone, and reading the file is refused
/// by the size in its object header, so the process never holds it in memory.
fn a_huge_file_is_fetched_and_refused_by_size_without_loading_it(size: u64) {
    let repo = GitRepo::init_named("huge-repo");
    let huge = repo.path().join("configs/dev/web/huge.yaml");
    std::fs::create_dir_all(huge.parent().unwrap()).expect("dirs");
    // Sparse: no disk for the zeros; Git stores it compressed to a few MiB.
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(size))
        .expect("a huge file");
    let sha = repo.commit("a huge file");
    std::fs::remove_file(&huge).expect("the work tree copy goes");

    let work = tempfile::tempdir().expect("work dir");
    let mirror =
        Mirror::open_or_init(work.path(), &repo.url(), RemoteOptions::default()).expect("mirror");
    let tip = mirror
        .fetch("main", &AtomicBool::new(false))
        .expect("fetch");
    assert_eq!(tip.to_string(), sha);
    let r = mirror.repository().expect("open");
    assert_eq!(
        git::changed_paths(&r, tip).unwrap(),
        ["configs/dev/web/huge.yaml"]
    );
    let err = git::read_file(&r, tip, "configs/dev/web/huge.yaml", &Limits::default())
        .expect_err("refused");
    assert!(
        matches!(err, GitError::TooLarge { size: found, .. } if found == size),
        "{err}"
    );
    let peak_kib: u64 = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!("peak resident memory: {} MiB", peak_kib / 1024);
}

/// 64 MiB: 64 times the limit, fetched in seconds.
#[test]
fn a_file_over_the_limit_is_fetched_and_refused_by_size() {
    a_huge_file_is_fetched_and_refused_by_size_without_loading_it(64 << 20);
}

/// The issue's 2 GiB case. gix inflates each object while indexing a fetched pack, so the
/// fetch holds the largest object in memory (about 2 GiB here, docs/architecture.md); the
/// test takes about 3 minutes, so it runs on request.
#[test]
#[ignore = "2 GiB of memory and about 3 minutes: cargo nextest run --run-ignored all two_gib"]
fn a_two_gib_file_is_fetched_and_refused_by_size() {
    a_huge_file_is_fetched_and_refused_by_size_without_loading_it(2 << 30);
}
