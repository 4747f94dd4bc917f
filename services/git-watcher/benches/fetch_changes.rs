//! Fetch and changed-paths benchmark (issue 16): a generated repository of 10,000 files and
//! 1,000 commits, mirrored from scratch and every commit's changed paths listed, by the
//! watcher's own code (gix: `Mirror::fetch`, `first_parent_range`, `changed_paths`) against
//! the `git` CLI in the same run (`git fetch` into a fresh bare repository, then the same
//! first-parent, name-only diffs with one `git log --first-parent --name-only`, which is `git
//! diff --name-only` of each commit against its parent in one process, the fastest way Git
//! has). Each side runs several times; the median is printed.
//!
//! `cargo bench -p configsync-git-watcher --bench fetch_changes -- [FILES] [COMMITS] [RUNS]`

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use configsync_core::git::{self, Mirror, RemoteOptions};

/// Environments and apps the files are spread over, as a config repository lays them out.
const ENVS: [&str; 3] = ["dev", "staging", "prod"];
const APPS: usize = 50;
/// Files each later commit changes.
const CHANGED_PER_COMMIT: usize = 5;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn path_of(i: usize) -> String {
    let env = ENVS[i % ENVS.len()];
    let app = (i / ENVS.len()) % APPS;
    format!("configs/{env}/app-{app}/file-{i}.yaml")
}

/// A repository of `files` files and `commits` commits on `main`, made with `git
/// fast-import` (a commit at a time through the CLI would take minutes).
fn generate(dir: &Path, files: usize, commits: usize) {
    git(dir, &["init", "-q", "-b", "main"]);
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .spawn()
        .expect("git fast-import starts");
    let mut input = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
    let blob = |out: &mut dyn Write, path: &str, text: &str| {
        write!(out, "M 100644 inline {path}\ndata {}\n{text}\n", text.len()).expect("write");
    };
    for c in 0..commits {
        let message = format!("commit {c}");
        write!(
            input,
            "commit refs/heads/main\ncommitter Bench <bench@example.com> {} +0000\ndata {}\n{message}\n",
            1_700_000_000 + c,
            message.len()
        )
        .expect("write");
        if c == 0 {
            for i in 0..files {
                let text = format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: f{i}\ndata:\n  v: \"0\"\n"
                );
                blob(&mut input, &path_of(i), &text);
            }
        } else {
            for k in 0..CHANGED_PER_COMMIT {
                let i = (c * 7919 + k * 104_729) % files;
                let text = format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: f{i}\ndata:\n  v: \"{c}\"\n"
                );
                blob(&mut input, &path_of(i), &text);
            }
        }
        writeln!(input).expect("write");
    }
    drop(input);
    assert!(child.wait().expect("fast-import ends").success());
}

/// The watcher's way: a fresh mirror, one fetch, then every commit's changed paths.
fn configsync(url: &str, scratch: &Path) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir_in(scratch).expect("mirror dir");
    let start = Instant::now();
    let mirror = Mirror::open_or_init(dir.path(), url, RemoteOptions::default()).expect("mirror");
    let tip = mirror
        .fetch("main", &AtomicBool::new(false))
        .expect("fetch");
    let fetched = start.elapsed();
    let repo = mirror.repository().expect("open");
    let mut paths = 0;
    for id in git::first_parent_range(&repo, None, tip).expect("history") {
        paths += git::changed_paths(&repo, id).expect("diff").len();
    }
    (fetched, start.elapsed() - fetched, paths)
}

/// Git's way: a fresh bare repository, `git fetch`, then one `git log --name-only`.
fn git_cli(url: &str, scratch: &Path) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir_in(scratch).expect("bare dir");
    git(dir.path(), &["init", "-q", "--bare"]);
    let start = Instant::now();
    git(dir.path(), &["fetch", "-q", url, "main:refs/heads/main"]);
    let fetched = start.elapsed();
    let log = git(
        dir.path(),
        &[
            "log",
            "--first-parent",
            "--name-only",
            "--no-renames",
            "--format=",
            "main",
        ],
    );
    let paths = log.lines().filter(|l| !l.is_empty()).count();
    (fetched, start.elapsed() - fetched, paths)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let files = args.first().copied().unwrap_or(10_000);
    let commits = args.get(1).copied().unwrap_or(1_000);
    let runs = args.get(2).copied().unwrap_or(5);
    let scratch = tempfile::tempdir().expect("scratch");
    let source = scratch.path().join("source");
    std::fs::create_dir(&source).expect("source dir");
    let made = Instant::now();
    generate(&source, files, commits);
    let url = format!("file://{}", source.display());
    println!(
        "fetch + changed paths: {files} files, {commits} commits ({CHANGED_PER_COMMIT} files changed \
         per commit after the first), file:// remote, fresh mirror each run, median of {runs} runs \
         (repository generated in {}; release build)",
        ms(made.elapsed())
    );
    let (mut ours, mut theirs) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    let (mut our_paths, mut their_paths) = (0, 0);
    for _ in 0..runs {
        let (f, d, p) = configsync(&url, scratch.path());
        ours.0.push(f);
        ours.1.push(d);
        our_paths = p;
        let (f, d, p) = git_cli(&url, scratch.path());
        theirs.0.push(f);
        theirs.1.push(d);
        their_paths = p;
    }
    assert_eq!(our_paths, their_paths, "both list the same changed paths");
    let (of, od) = (median(ours.0), median(ours.1));
    let (tf, td) = (median(theirs.0), median(theirs.1));
    println!(
        "{:<28} {:>10} {:>16} {:>10}",
        "", "fetch", "changed paths", "total"
    );
    println!(
        "{:<28} {:>10} {:>16} {:>10}",
        "configsync (gix)",
        ms(of),
        ms(od),
        ms(of + od)
    );
    println!(
        "{:<28} {:>10} {:>16} {:>10}",
        "git fetch + git log -name",
        ms(tf),
        ms(td),
        ms(tf + td)
    );
    println!(
        "{our_paths} changed paths listed by each; configsync/git total: {:.2}x",
        (of + od).as_secs_f64() / (tf + td).as_secs_f64()
    );
}
