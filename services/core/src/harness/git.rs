//! Git repositories for tests, made and changed with the `git` CLI (as a person would), isolated
//! from the user's and the system's Git configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Who made a commit and when (seconds since the epoch).
#[derive(Clone, Copy, Debug)]
pub struct Who {
    pub name: &'static str,
    pub email: &'static str,
    pub time: i64,
}

pub const ALICE: Who = Who {
    name: "Alice Example",
    email: "alice@example.com",
    time: 1_700_000_000,
};

/// A non-bare repository on branch `main`; its temporary directory, if it made one, is
/// removed with it.
pub struct GitRepo {
    _dir: Option<TempDir>,
    path: PathBuf,
}

impl GitRepo {
    /// A fresh repository in a temporary directory.
    pub fn init() -> Self {
        Self::init_named("repo")
    }

    /// A fresh repository named `name` (its directory's name) in a temporary directory, alone
    /// there (so that [`GitRepo::parent`] can be served by `git daemon`).
    pub fn init_named(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("configsync-git-")
            .tempdir()
            .expect("a temporary directory");
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).expect("the repository's directory is made");
        let repo = Self {
            _dir: Some(dir),
            path,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// Makes `path` (an existing directory, kept when this is dropped) a repository.
    pub fn init_at(path: &Path) -> Self {
        let repo = Self {
            _dir: None,
            path: path.to_path_buf(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `file://<path>`.
    pub fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// The directory holding the repository (for `git daemon --base-path`).
    pub fn parent(&self) -> &Path {
        self.path.parent().expect("the repository has a parent")
    }

    /// Runs `git args` in the work tree and returns its standard output, trimmed; fails the
    /// test when git fails.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_with(args, &[])
    }

    /// [`GitRepo::git`] with more environment variables (an author, a date).
    pub fn git_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = Command::new("git")
            // An identity for commits that name none: tests never read the user's.
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(args)
            .current_dir(&self.path)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .envs(env.iter().copied())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Writes `text` to `path` in the work tree, making its directories.
    pub fn write(&self, path: &str, text: &str) {
        self.write_files(&[(path, Some(text))]);
    }

    /// Writes `files` into the work tree; a content of `None` deletes the file.
    pub fn write_files(&self, files: &[(&str, Option<&str>)]) {
        for (path, content) in files {
            let full = self.path.join(path);
            match content {
                Some(content) => {
                    std::fs::create_dir_all(full.parent().expect("a file has a parent"))
                        .expect("directories are made");
                    std::fs::write(&full, content).expect("the file is written");
                }
                None => std::fs::remove_file(&full).expect("the file is removed"),
            }
        }
    }

    /// Commits everything in the work tree and returns the commit's SHA.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// Writes `files`, commits everything as `author` and `committer` (at their times) and
    /// returns the commit's SHA.
    pub fn commit_as(
        &self,
        files: &[(&str, Option<&str>)],
        message: &str,
        author: Who,
        committer: Who,
    ) -> String {
        self.write_files(files);
        self.git(&["add", "-A"]);
        let author_date = format!("@{} +0000", author.time);
        let committer_date = format!("@{} +0200", committer.time);
        self.git_with(
            &["commit", "-q", "--allow-empty", "-m", message],
            &[
                ("GIT_AUTHOR_NAME", author.name),
                ("GIT_AUTHOR_EMAIL", author.email),
                ("GIT_AUTHOR_DATE", &author_date),
                ("GIT_COMMITTER_NAME", committer.name),
                ("GIT_COMMITTER_EMAIL", committer.email),
                ("GIT_COMMITTER_DATE", &committer_date),
            ],
        );
        self.head()
    }

    /// The SHA of `HEAD`.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }
}
