//! Test prerequisites outside the workspace (kubectl, helm, gpg, `git daemon`, the shared corpus),
//! so that no test passes by doing nothing (issue 17).
//!
//! Two halves that use the same probes, so they cannot disagree:
//! - [`build`], for the build script of a test crate: it emits a `cfg` (`has_kubectl`, ...)
//!   when the prerequisite is there, and always under CI. A test that needs it carries
//!   `#[cfg_attr(not(has_kubectl), ignore = "kubectl not on PATH: run tools/test.sh")]`, so a
//!   developer without the tool sees it IGNORED, never passed.
//! - `require_*`, called at the start of such a test: it returns what the test needs, or
//!   panics with what is missing and how to install it. Under CI the cfg is always set, so the
//!   test runs and a missing prerequisite fails it loudly.
//!
//! CI is recognised as CI systems announce themselves: `CI` set to anything but empty, `0` or
//! `false` (`.ci/run` runs with `CI=true`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether this process runs under CI, where every prerequisite must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| means_ci(&v))
}

fn means_ci(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false")
}

/// The workspace's root directory (this crate lives in `services/prereq`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared corpus of real-world manifests: `CONFIGSYNC_CORPUS` when set, else
/// `../shared/corpus` beside the workspace (where CI lays `shared/`). It may not exist.
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("CONFIGSYNC_CORPUS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("../shared/corpus"),
    }
}

/// The executable file `name` in a directory of `PATH`, as the tests' commands would find it.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The `git-daemon` program of the `git` on `PATH`: some distributions package it apart
/// (Fedora's `git-daemon`), so `git daemon` may be missing.
pub fn git_daemon() -> Option<PathBuf> {
    git_program("git-daemon")
}

/// A program of the `git` on `PATH` (`git --exec-path` holds `git-daemon`, `git-http-backend`).
fn git_program(name: &str) -> Option<PathBuf> {
    let out = Command::new("git")
        .arg("--exec-path")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let exec_path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let program = Path::new(&exec_path).join(name);
    (out.status.success() && is_executable(&program)).then_some(program)
}

/// The `git-http-backend` CGI program of the `git` on `PATH` (smart HTTP).
pub fn git_http_backend() -> Option<PathBuf> {
    git_program("git-http-backend")
}

/// OpenSSH's server, `sshd`: on `PATH`, or in `/usr/sbin` (not on a normal user's `PATH`).
pub fn sshd() -> Option<PathBuf> {
    find_tool("sshd").or_else(|| {
        let path = PathBuf::from("/usr/sbin/sshd");
        is_executable(&path).then_some(path)
    })
}

/// How to get a tool the tests need; every one is installed by `tools/test.sh`.
fn install_hint(tool: &str) -> String {
    let script = match tool {
        "kubectl" => "tools/install-kubectl.sh",
        "helm" => "tools/install-helm-shim.sh (Helm's Go SDK from PyPI helm-python-sdk)",
        "nats-server" => "tools/install-nats-server.sh",
        // A system package on every distribution, and on the machines the project runs on.
        "gpg" => return "install GnuPG (Debian and Ubuntu: apt-get install gnupg)".into(),
        "sshd" | "ssh" | "ssh-keygen" => {
            return "install OpenSSH (Debian and Ubuntu: apt-get install openssh-client \
                    openssh-server; tools/test.sh does)"
                .into();
        }
        _ => return format!("install {tool}; tools/test.sh installs what the tests need"),
    };
    format!("run {script}, or tools/test.sh, which installs every test prerequisite")
}

/// Where a test stops when a prerequisite is missing. Under CI this is a failure, which is
/// the point; outside CI the build script normally made the test ignored before it got here
/// (the prerequisite went away after the build).
fn missing(what: String) -> ! {
    let context = if in_ci() {
        "CI must have every test prerequisite"
    } else {
        "it was present when this test was built; rebuild to have the test ignored"
    };
    panic!("test prerequisite missing: {what} ({context})");
}

/// The path of `tool` on `PATH`; panics naming the tool and its installer when absent.
pub fn require_tool(tool: &str) -> PathBuf {
    find_tool(tool).unwrap_or_else(|| {
        missing(format!(
            "`{tool}` is not on PATH ({}): {}",
            std::env::var("PATH").unwrap_or_default(),
            install_hint(tool)
        ))
    })
}

/// The shared corpus's root, which must hold `part` (such as `kube-prometheus/manifests`);
/// panics naming the expected location when it does not.
pub fn require_corpus(part: &str) -> PathBuf {
    let dir = corpus_dir();
    if !dir.join(part).exists() {
        missing(format!(
            "the shared corpus has no {part} at {}: the corpus is ../shared/corpus beside the \
             workspace (shared/corpus/README.md); set CONFIGSYNC_CORPUS to use another copy",
            dir.display()
        ));
    }
    dir
}

/// `sshd`; panics naming the package that ships it when absent.
pub fn require_sshd() -> PathBuf {
    sshd().unwrap_or_else(|| {
        missing(format!(
            "`sshd` is neither on PATH nor in /usr/sbin: {}",
            install_hint("sshd")
        ))
    })
}

/// The `git-http-backend` program; panics naming what ships it when absent.
pub fn require_git_http_backend() -> PathBuf {
    git_http_backend().unwrap_or_else(|| {
        missing(
            "this machine's git has no `git http-backend` (`git --exec-path` holds no \
             git-http-backend): install a git that ships it (Debian's and Ubuntu's git does)"
                .into(),
        )
    })
}

/// The `git-daemon` program; panics naming the packages that ship it when absent.
pub fn require_git_daemon() -> PathBuf {
    git_daemon().unwrap_or_else(|| {
        missing(
            "this machine's git has no `git daemon` (`git --exec-path` holds no git-daemon): \
             install a git that ships it (Debian's and Ubuntu's git package does; Fedora and \
             RHEL package it apart as git-daemon)"
                .into(),
        )
    })
}

/// For build scripts of test crates: each call declares one `cfg` and sets it when the
/// prerequisite is present, or always under CI (where `require_*` then fails the test).
///
/// Cargo reruns the script when `CI`, `PATH` or `CONFIGSYNC_CORPUS` change, when a found
/// prerequisite changes or goes away, and, for a missing tool, when a directory of `PATH`
/// changes (the tool was installed). A corpus laid down later is only seen after a rebuild
/// that reruns the script (`touch build.rs`): watching every place it could appear is not
/// cheap.
pub mod build {
    use std::path::Path;

    /// `cfg` is set when `tool` is on `PATH`.
    pub fn tool(cfg: &str, tool: &str) {
        let found = super::find_tool(tool);
        match &found {
            Some(path) => watch(path),
            None => watch_path_dirs(),
        }
        emit(cfg, found.is_some());
    }

    /// `cfg` is set when the shared corpus holds every one of `parts`.
    pub fn corpus(cfg: &str, parts: &[&str]) {
        let dir = super::corpus_dir();
        let found = parts.iter().all(|part| dir.join(part).exists());
        if found {
            for part in parts {
                watch(&dir.join(part));
            }
        }
        emit(cfg, found);
    }

    /// `cfg` is set when `sshd`, `ssh` and `ssh-keygen` are available.
    pub fn sshd(cfg: &str) {
        let found = super::sshd();
        let clients = ["ssh", "ssh-keygen"].map(super::find_tool);
        for path in found.iter().chain(clients.iter().flatten()) {
            watch(path);
        }
        let all = found.is_some() && clients.iter().all(Option::is_some);
        if !all {
            watch_path_dirs();
        }
        emit(cfg, all);
    }

    /// `cfg` is set when `git http-backend` is available.
    pub fn git_http_backend(cfg: &str) {
        println!("cargo::rerun-if-env-changed=GIT_EXEC_PATH");
        let found = super::git_http_backend();
        match &found {
            Some(path) => watch(path),
            None => watch_path_dirs(),
        }
        emit(cfg, found.is_some());
    }

    /// `cfg` is set when `git daemon` is available.
    pub fn git_daemon(cfg: &str) {
        // git looks for its programs in GIT_EXEC_PATH first.
        println!("cargo::rerun-if-env-changed=GIT_EXEC_PATH");
        let found = super::git_daemon();
        match &found {
            Some(path) => watch(path),
            None => watch_path_dirs(),
        }
        emit(cfg, found.is_some());
    }

    fn emit(cfg: &str, present: bool) {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        for var in ["CI", "PATH", "CONFIGSYNC_CORPUS"] {
            println!("cargo::rerun-if-env-changed={var}");
        }
        if present || super::in_ci() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }

    fn watch(path: &Path) {
        println!("cargo::rerun-if-changed={}", path.display());
    }

    /// Only directories that exist: Cargo reruns a script on every build while a watched
    /// path is missing.
    fn watch_path_dirs() {
        let Some(paths) = std::env::var_os("PATH") else {
            return;
        };
        for dir in std::env::split_paths(&paths) {
            if dir.is_absolute() && dir.is_dir() {
                watch(&dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_any_value_but_empty_zero_or_false() {
        for v in ["true", "1", "yes", "TRUE"] {
            assert!(means_ci(v), "{v}");
        }
        for v in ["", " ", "0", "false", "False"] {
            assert!(!means_ci(v), "{v:?}");
        }
    }

    #[test]
    fn a_tool_is_found_only_as_an_executable_file() {
        // `sh` is on every PATH these tests run with; a name no one uses is not.
        assert!(find_tool("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find_tool("configsync-no-such-tool-17"), None);
    }

    #[test]
    fn a_missing_tool_panics_with_its_installer() {
        let panic = std::panic::catch_unwind(|| require_tool("kubectl-absent-17")).unwrap_err();
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.contains("`kubectl-absent-17` is not on PATH"),
            "{message}"
        );
        assert!(message.contains("tools/test.sh"), "{message}");
        let kubectl = install_hint("kubectl");
        assert!(kubectl.contains("tools/install-kubectl.sh"), "{kubectl}");
        assert!(install_hint("helm").contains("tools/install-helm-shim.sh"));
        assert!(install_hint("gpg").contains("apt-get install gnupg"));
    }

    #[test]
    fn a_missing_corpus_part_panics_naming_where_it_was_looked_for() {
        let panic = std::panic::catch_unwind(|| require_corpus("no-such-project-17/manifests"))
            .unwrap_err();
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            message.contains("no-such-project-17/manifests"),
            "{message}"
        );
        assert!(
            message.contains(&corpus_dir().display().to_string()),
            "{message}"
        );
    }
}
