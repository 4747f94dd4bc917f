//! Policy checks: Rego policies, evaluated by regorus on every object of a run.
//!
//! Conventions are conftest's, so teams can bring the policies they have:
//! - a policy directory holds `*.rego` files (walked in path order; `*_test.rego` files
//!   are unit tests and are skipped); Rego v1 and, for older files, v0 syntax
//!   (`deny[msg] { ... }`) are accepted: a file that does not parse as v1 is parsed as v0;
//! - any package may define the set rules `deny` and `violation` (errors) and `warn`
//!   (warnings); each element is a message string or an object
//!   `{"msg": "...", "rule": "my.rule-id" (or "id"), "path": ".spec.replicas"}`; the rule id
//!   defaults to `policy.<package>.<rule>`;
//! - `input` is one Kubernetes object; `data.configsync.objects` holds every object of the
//!   run, for policies that look across objects (Secrets there have their values replaced);
//!   it is built only when a policy file names `data.configsync`, as it costs more than the
//!   baseline on runs with large CRDs.
//!
//! A built-in baseline (packages `configsync.baseline.*`, see [`baseline`]) always runs.
//!
//! Exceptions: an object opts out of rules by id with the annotation
//! `configsync.io/policy-exempt: "baseline.host-network,baseline.host-path"` (comma-separated
//! rule ids; any rule, built-in or user). Node agents such as node-exporter need this.
//!
//! Policies are code, so they run within limits (see [`limits`]): per object and per run,
//! as `policy.timeout`; `numbers.range` bounded, as `policy.memory`. A rule that fails at
//! run time gives `policy.error`, one that returns something other than a message gives
//! `policy.result`, a file that does not compile `policy.compile`. Findings on a Secret
//! never carry its values (see [`redact`]).

mod baseline;
mod engine;
mod evaluate;
mod limits;
mod redact;

use std::path::Path;

use configsync_core::event::Finding;

use crate::manifests::Manifest;
pub use engine::is_policy_file;
pub use limits::{MAX_RANGE_ELEMENTS, PolicyLimits};

/// The annotation listing the rule ids an object is exempt from.
pub const EXEMPT_ANNOTATION: &str = "configsync.io/policy-exempt";

/// Largest policy file [`Policies::read_dir`] reads.
const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;
/// Most policy files [`Policies::read_dir`] reads.
const MAX_POLICY_FILES: usize = 1_000;

/// How findings of `deny`/`violation` rules count (`--policy-mode deny|warn`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PolicyMode {
    /// Severities as the policies wrote them: `deny` and `violation` block.
    #[default]
    Enforce,
    /// Every policy finding is a warning, for rolling out new policies without blocking.
    Warn,
}

/// The compiled policies: the baseline and the user's, ready to evaluate many times.
#[derive(Debug, Clone)]
pub struct Policies {
    compiled: engine::Compiled,
    limits: PolicyLimits,
}

impl Policies {
    /// Compiles the baseline plus the user's policies (path relative to the repository root,
    /// Rego source; files that are not policy files are ignored). A file that does not
    /// compile is left out and reported as a `policy.compile` finding.
    pub fn new(user: &[(String, String)], limits: PolicyLimits) -> (Policies, Vec<Finding>) {
        let (compiled, findings) = engine::compile(user);
        (Policies { compiled, limits }, findings)
    }

    /// Reads the policy files under `dir` (recursively, in path order), named by `dir` joined
    /// with their relative path, for [`Policies::new`]. An unreadable directory or file, a
    /// file over 1 MiB or more than 1,000 files is a `policy.read` finding.
    pub fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, Box<Finding>> {
        let mut files = Vec::new();
        read_into(dir, &mut files)?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Evaluates every rule on every object. Findings carry the object, its file and line,
    /// and the JSON path the policy gave.
    pub fn evaluate(&self, manifests: &[Manifest], mode: PolicyMode) -> Vec<Finding> {
        evaluate::evaluate(&self.compiled, manifests, self.limits, mode)
    }
}

fn read_error(path: &Path, message: String) -> Box<Finding> {
    Box::new(Finding::file_error(
        "policy.read",
        path.display().to_string(),
        None,
        message,
    ))
}

/// Walks `dir`. Symbolic links are refused: a repository's `policies/` is content from Git,
/// and a link could make the validator read, and run, a file from outside the repository.
fn read_into(dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), Box<Finding>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| read_error(dir, format!("cannot read policy directory: {e}")))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| read_error(dir, format!("cannot read policy directory: {e}")))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| read_error(&path, format!("cannot read: {e}")))?;
        if file_type.is_dir() {
            read_into(&path, out)?;
            continue;
        }
        let name = path.to_string_lossy().replace('\\', "/");
        if !is_policy_file(&name) {
            continue;
        }
        if file_type.is_symlink() {
            return Err(read_error(
                &path,
                "policy file is a symbolic link; links are not followed".into(),
            ));
        }
        let metadata = std::fs::metadata(&path)
            .map_err(|e| read_error(&path, format!("cannot read policy file: {e}")))?;
        if !metadata.is_file() {
            continue;
        }
        if metadata.len() > MAX_POLICY_FILE_BYTES {
            return Err(read_error(
                &path,
                format!(
                    "policy file is {} bytes, over the limit of {MAX_POLICY_FILE_BYTES}",
                    metadata.len()
                ),
            ));
        }
        if out.len() == MAX_POLICY_FILES {
            return Err(read_error(
                dir,
                format!("more than {MAX_POLICY_FILES} policy files"),
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| read_error(&path, format!("cannot read policy file: {e}")))?;
        out.push((name, text));
    }
    Ok(())
}
