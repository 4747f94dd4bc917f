//! Running a render tool on untrusted input: in a scratch copy of the repository (regular
//! files only: no `.git`, no symbolic links, bounded size), with a cleared environment whose
//! home, config, cache and kubeconfig all point into the scratch directory, no standard
//! input, no network when `unshare --net` works here, a timeout that kills the whole process
//! group, and a cap on the output read. Secret material the caller names is taken out of the
//! error output before it becomes a finding.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use configsync_core::event::{Finding, Severity};

use super::{RenderOptions, Rendered, finding};

/// Lines of the tool's standard error kept in a failure finding.
const STDERR_LINES: usize = 20;
/// Longest standard-error line kept.
const STDERR_LINE_CHARS: usize = 300;
/// Standard error kept in memory while the tool runs (its tail).
const STDERR_BYTES: usize = 64 * 1024;
/// How long the output readers may outlive the tool (a descendant that left the process
/// group could hold the pipes open).
const READER_GRACE: Duration = Duration::from_secs(2);

/// How the tool was kept off the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// In a new network namespace (`unshare --net`): only a loopback interface, down.
    NetworkNamespace,
    /// `unshare --net` does not work here: only the pre-checks keep remote sources out.
    None,
}

impl Isolation {
    pub fn describe(self) -> &'static str {
        match self {
            Isolation::NetworkNamespace => "no network (unshare --net)",
            Isolation::None => "network not isolated (unshare --net unavailable)",
        }
    }
}

/// What must not reach a finding from the tool's standard error.
#[derive(Debug, Default)]
pub(super) struct Redactions {
    /// Replaced by `[redacted]` wherever they appear (secret generator material).
    pub secrets: Vec<String>,
    /// A line containing any of these is dropped (a chart's values).
    pub drop_lines_with: Vec<String>,
}

/// `unshare` on the tools' `PATH` and its arguments, when it makes a network namespace here.
/// Probed once per `unshare` program; searched like the tools, so a `PATH` without it (as a
/// test's) runs them without isolation, and says so.
fn unshare(options: &RenderOptions) -> Option<(PathBuf, Vec<&'static str>)> {
    /// The arguments that work for each `unshare` program, or none.
    type Probes = HashMap<PathBuf, Option<Vec<&'static str>>>;
    static PROBES: OnceLock<Mutex<Probes>> = OnceLock::new();
    let program = find_tool("unshare", options)?;
    let probes = PROBES.get_or_init(Mutex::default);
    let mut probes = probes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let args = probes.entry(program.clone()).or_insert_with(|| {
        [vec!["--net", "--map-root-user"], vec!["--net"]]
            .into_iter()
            .find(|args| {
                Command::new(&program)
                    .args(args)
                    .arg("true")
                    .env_clear()
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
    });
    args.clone().map(|args| (program, args))
}

fn search(path: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn tool_path(options: &RenderOptions) -> Option<OsString> {
    options
        .tool_path
        .clone()
        .or_else(|| std::env::var_os("PATH"))
}

/// The executable `name` on the tools' `PATH`.
pub(super) fn find_tool(name: &str, options: &RenderOptions) -> Option<PathBuf> {
    search(tool_path(options).as_deref(), name)
}

/// Runs `program args` on a scratch copy of `repo_root` (the working directory); its
/// standard output, or findings on `source` (the root's source file) whose error output
/// went through `redactions`.
pub(super) fn run(
    repo_root: &Path,
    source: &str,
    program: &Path,
    args: &[String],
    options: &RenderOptions,
    redactions: &Redactions,
) -> Result<Rendered, Vec<Finding>> {
    let failed = |rule: &str, message: String| vec![finding(rule, source, None, message)];
    let scratch = tempfile::Builder::new()
        .prefix("configsync-render-")
        .tempdir()
        .map_err(|e| {
            failed(
                "render.failed",
                format!("cannot create a scratch directory: {e}"),
            )
        })?;
    let repo = scratch.path().join("repo");
    let home = scratch.path().join("home");
    for dir in [&repo, &home, &scratch.path().join("tmp")] {
        std::fs::create_dir_all(dir).map_err(|e| {
            failed(
                "render.failed",
                format!("cannot prepare the scratch directory: {e}"),
            )
        })?;
    }
    copy_repository(repo_root, &repo, options)
        .map_err(|f| vec![finding(&f.0, source, None, f.1)])?;

    let unshare = unshare(options);
    let isolation = if unshare.is_some() {
        Isolation::NetworkNamespace
    } else {
        Isolation::None
    };
    let tool = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut command = match unshare {
        Some((unshare, unshare_args)) => {
            let mut c = Command::new(unshare);
            c.args(unshare_args).arg(program);
            c
        }
        None => Command::new(program),
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", tool_path(options).unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("KUBECONFIG", home.join(".kube/config"))
        .env("HELM_CONFIG_HOME", home.join(".config/helm"))
        .env("HELM_CACHE_HOME", home.join(".cache/helm"))
        .env("HELM_DATA_HOME", home.join(".local/share/helm"))
        .env("TMPDIR", scratch.path().join("tmp"))
        .current_dir(&repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| failed("render.failed", format!("cannot start {tool}: {e}")))?;
    let group = child.id();

    let too_large = Arc::new(AtomicBool::new(false));
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(mut stdout) = child.stdout.take() {
        let too_large = Arc::clone(&too_large);
        let max = options.max_output_bytes;
        std::thread::spawn(move || {
            let _ = out_tx.send(read_capped(&mut stdout, max, || {
                too_large.store(true, Ordering::SeqCst);
                kill_group(group);
            }));
        });
    }
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = err_tx.send(read_tail(&mut stderr));
        });
    }

    let deadline = Instant::now() + options.timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                kill_group(group);
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => {
                kill_group(group);
                break child.wait().ok();
            }
        }
    };
    // Whatever the tool left behind in its group goes too.
    kill_group(group);
    let output = out_rx.recv_timeout(READER_GRACE).ok();
    let stderr = err_rx.recv_timeout(READER_GRACE).unwrap_or_default();
    let how = isolation.describe();
    if timed_out {
        return Err(failed(
            "render.timeout",
            format!(
                "{tool} did not finish within {:?}; its process group was killed ({how})",
                options.timeout
            ),
        ));
    }
    if too_large.load(Ordering::SeqCst) {
        return Err(failed(
            "render.output-too-large",
            format!(
                "{tool} wrote more than {} bytes; it was stopped and killed ({how})",
                options.max_output_bytes
            ),
        ));
    }
    let scratch_prefix = format!("{}/", repo.display());
    let tail = tail_lines(
        &stderr,
        &[&scratch_prefix, &scratch.path().display().to_string()],
        redactions,
    );
    match (status, output) {
        (Some(status), Some(Ok(yaml))) if status.success() => Ok(Rendered {
            name: source.to_string(),
            yaml,
            isolation,
            warnings: match isolation {
                Isolation::NetworkNamespace => Vec::new(),
                Isolation::None => vec![Finding {
                    severity: Severity::Warning,
                    ..finding(
                        "render.no-isolation",
                        source,
                        None,
                        format!(
                            "{tool} ran with the network reachable: `unshare --net` is not \
                             available here, so only the pre-checks kept remote sources out"
                        ),
                    )
                }],
            },
        }),
        (Some(status), Some(Ok(_))) => Err(failed(
            "render.failed",
            format!("{tool} failed ({status}, {how}): {tail}"),
        )),
        (_, Some(Err(e))) => Err(failed(
            "render.failed",
            format!("cannot read the output of {tool}: {e}"),
        )),
        (_, None) => Err(failed(
            "render.failed",
            format!("{tool} left a process holding its output open ({how}): {tail}"),
        )),
        (None, _) => Err(failed(
            "render.failed",
            format!("lost track of {tool} ({how})"),
        )),
    }
}

/// Reads until EOF or until `max` bytes are exceeded, in which case `over` is called and
/// reading stops (the rest is never held in memory).
fn read_capped(
    reader: &mut impl Read,
    max: usize,
    over: impl FnOnce(),
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.len() + n > max {
            over();
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Standard error's tail: the last `STDERR_BYTES` or so, and whether the start was cut.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    cut: bool,
}

/// Reads to EOF, keeping only the last `STDERR_BYTES`.
fn read_tail(reader: &mut impl Read) -> Tail {
    let mut tail = Tail::default();
    let mut buf = vec![0u8; 8 * 1024];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        tail.bytes.extend_from_slice(&buf[..n]);
        if tail.bytes.len() > 2 * STDERR_BYTES {
            tail.bytes.drain(..tail.bytes.len() - STDERR_BYTES);
            tail.cut = true;
        }
    }
    tail
}

/// The last non-empty lines of `stderr`, trimmed and shortened, with secrets replaced, lines
/// naming a chart value dropped, and scratch paths removed so that they read as repository
/// paths. Redaction comes first, on whole lines: shortening could cut a secret in two.
fn tail_lines(stderr: &Tail, scratch_paths: &[&str], redactions: &Redactions) -> String {
    let mut text = String::from_utf8_lossy(&stderr.bytes).into_owned();
    if stderr.cut {
        // The first line may be the end of a secret whose start was cut off.
        text = text
            .split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default();
    }
    let mut secrets: Vec<&str> = redactions
        .secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .collect();
    // Longest first: a literal `key=value` goes whole, not as `key=[redacted]` plus pieces.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        text = text.replace(secret, "[redacted]");
    }
    for prefix in scratch_paths {
        text = text.replace(prefix, "");
    }
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            !redactions
                .drop_lines_with
                .iter()
                .any(|v| l.contains(v.as_str()))
        })
        .map(|l| l.chars().take(STDERR_LINE_CHARS).collect())
        .collect();
    if lines.is_empty() {
        return "no error output".into();
    }
    lines[lines.len().saturating_sub(STDERR_LINES)..].join("\n")
}

fn kill_group(group: u32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    if let Some(pid) = i32::try_from(group).ok().and_then(Pid::from_raw) {
        // ESRCH (the group is already gone) is the usual case and fine.
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

/// Copies the regular files of `from` into `to`, skipping `.git` and never copying a link
/// (links inside a rendered root are findings of the pre-checks). Bounded by the options.
fn copy_repository(
    from: &Path,
    to: &Path,
    options: &RenderOptions,
) -> Result<(), (String, String)> {
    let too_large = |what: String| {
        (
            "render.repository-too-large".to_string(),
            format!("the repository is too large to render: {what}"),
        )
    };
    let mut files = 0usize;
    let mut bytes = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let entries = std::fs::read_dir(from.join(&rel)).map_err(|e| {
            (
                "render.failed".to_string(),
                format!("cannot list {}: {e}", rel.display()),
            )
        })?;
        for entry in entries.flatten() {
            if entry.file_name() == ".git" {
                continue;
            }
            let rel = rel.join(entry.file_name());
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                std::fs::create_dir_all(to.join(&rel)).map_err(|e| {
                    (
                        "render.failed".to_string(),
                        format!("cannot copy the repository: {e}"),
                    )
                })?;
                stack.push(rel);
            } else if kind.is_file() {
                files += 1;
                if files > options.max_copy_files {
                    return Err(too_large(format!(
                        "more than {} files",
                        options.max_copy_files
                    )));
                }
                let remaining = options.max_copy_bytes.saturating_sub(bytes);
                let copied =
                    copy_file(&from.join(&rel), &to.join(&rel), remaining).map_err(|e| {
                        (
                            "render.failed".to_string(),
                            format!("cannot copy {}: {e}", rel.display()),
                        )
                    })?;
                bytes += copied;
                if bytes > options.max_copy_bytes {
                    return Err(too_large(format!(
                        "more than {} bytes",
                        options.max_copy_bytes
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Copies at most `limit + 1` bytes (one more tells the caller the limit was passed).
fn copy_file(from: &Path, to: &Path, limit: u64) -> std::io::Result<u64> {
    let source = std::fs::File::open(from)?;
    let mut target = std::fs::File::create(to)?;
    std::io::copy(&mut source.take(limit + 1), &mut target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_has_regular_files_only_and_is_bounded() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join(".git")).unwrap();
        std::fs::create_dir_all(from.path().join("a")).unwrap();
        std::fs::write(from.path().join(".git/config"), "x").unwrap();
        std::fs::write(from.path().join("a/f.yaml"), "0123456789").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", from.path().join("a/l.yaml")).unwrap();
        let options = RenderOptions::default();
        copy_repository(from.path(), to.path(), &options).unwrap();
        assert_eq!(
            std::fs::read(to.path().join("a/f.yaml")).unwrap(),
            b"0123456789"
        );
        assert!(std::fs::symlink_metadata(to.path().join("a/l.yaml")).is_err());
        assert!(!to.path().join(".git").exists());

        let small = RenderOptions {
            max_copy_bytes: 9,
            ..RenderOptions::default()
        };
        let to = tempfile::tempdir().unwrap();
        let (rule, _) = copy_repository(from.path(), to.path(), &small).unwrap_err();
        assert_eq!(rule, "render.repository-too-large");
    }

    #[test]
    fn stderr_tail_keeps_the_last_lines_without_scratch_paths() {
        let stderr: String = (1..=30)
            .map(|i| format!("  line {i} /tmp/s/repo/a.yaml\n\n"))
            .collect();
        let stderr = Tail {
            bytes: stderr.into_bytes(),
            cut: false,
        };
        let tail = tail_lines(&stderr, &["/tmp/s/repo/"], &Redactions::default());
        let lines: Vec<_> = tail.lines().collect();
        assert_eq!(lines.len(), STDERR_LINES);
        assert_eq!(lines[0], "line 11 a.yaml");
        assert_eq!(lines[19], "line 30 a.yaml");
    }

    #[test]
    fn secrets_are_replaced_before_lines_are_shortened() {
        let secret = "s".repeat(20);
        let long_line = format!("{}{secret}", "x".repeat(STDERR_LINE_CHARS - 5));
        let stderr = Tail {
            bytes: format!(
                "cut-secret-end\n{long_line}\nkey={secret} value\nvalue 12345 here\nok\n"
            )
            .into_bytes(),
            cut: true,
        };
        let redactions = Redactions {
            secrets: vec![secret.clone(), format!("key={secret}"), " ".into()],
            drop_lines_with: vec!["12345".into()],
        };
        let tail = tail_lines(&stderr, &[], &redactions);
        assert!(!tail.contains("ssssssssss"), "{tail}");
        assert!(
            !tail.contains("cut-secret-end"),
            "the cut first line goes: {tail}"
        );
        let lines: Vec<_> = tail.lines().collect();
        assert_eq!(lines[1..], ["[redacted] value", "ok"]);
        assert!(lines[0].ends_with("x[reda"), "{}", lines[0]);
    }

    #[test]
    fn reading_stops_past_the_cap() {
        let mut over = false;
        let data = vec![b'x'; 200 * 1024];
        let out = read_capped(&mut data.as_slice(), 100 * 1024, || over = true).unwrap();
        assert!(over);
        assert!(out.len() <= 100 * 1024);
        let out =
            read_capped(&mut data.as_slice(), 300 * 1024, || panic!("under the cap")).unwrap();
        assert_eq!(out.len(), data.len());
    }
}
