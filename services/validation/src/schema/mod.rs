//! Kubernetes schema validation: each manifest is checked against the OpenAPI schema of its
//! kind, from the bundled built-in schemas of one Kubernetes version or from the CRDs among
//! the manifests, and every problem is reported with its JSON path. Also: removed and
//! deprecated API versions, and the metadata every object needs.
//!
//! Rules (all errors unless noted):
//! - `schema.unknown-field` (only when strict), `schema.type`, `schema.required`,
//!   `schema.enum`, `schema.int-or-string`, `schema.quantity`, `schema.format` (date-time,
//!   base64, int32 range), `schema.depth` (absurdly nested values).
//! - `schema.missing`: a custom resource whose kind no CRD defines (nothing at all when
//!   `ignore_missing_schemas`: the user asked for it, and a warning per object would bury the
//!   real findings), or whose CRD does not serve its version (always an error).
//! - `schema.removed-api`: a built-in API version removed in or before the chosen version;
//!   `schema.unknown-kind`: a built-in group with a kind or version never bundled (a typo, or
//!   an API newer than the chosen version).
//! - `schema.deprecated-api` (warning): served by the chosen version but deprecated or gone
//!   in the newest bundled version.
//! - `schema.crd`: a CRD whose schema cannot be compiled (reported on the CRD).

mod builtin;
mod check;
mod crd;
mod deprecations;
mod model;
mod names;
mod quantity;
mod workloads;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use configsync_core::event::{Finding, Severity};
use serde_json::Value;

use crate::manifests::Manifest;
use check::{Problem, Walker};
use model::{Arena, KindIndex, NodeId};

/// A Kubernetes minor version with bundled schemas (1.NN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    minor: u32,
}

impl KubeVersion {
    /// The newest bundled version.
    pub fn newest() -> Self {
        let (minor, _) = builtin::BUNDLED[builtin::BUNDLED.len() - 1];
        Self { minor }
    }

    /// Every bundled version, oldest first.
    pub fn supported() -> Vec<KubeVersion> {
        builtin::BUNDLED
            .iter()
            .map(|(minor, _)| KubeVersion { minor: *minor })
            .collect()
    }

    /// The minor version (33 for 1.33).
    pub fn minor(self) -> u32 {
        self.minor
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

impl FromStr for KubeVersion {
    type Err = SchemaError;

    /// Accepts `1.33`, `v1.33` and `1.33.2` (the patch level does not change schemas).
    fn from_str(text: &str) -> Result<Self, SchemaError> {
        let bad = || SchemaError::Version {
            given: text.to_string(),
            supported: supported_list(),
        };
        let trimmed = text.trim();
        let trimmed = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let mut parts = trimmed.split('.');
        let (Some("1"), Some(minor), patch, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !number(minor) || !patch.is_none_or(number) {
            return Err(bad());
        }
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        KubeVersion::supported()
            .into_iter()
            .find(|v| v.minor == minor)
            .ok_or_else(bad)
    }
}

fn supported_list() -> String {
    let all = KubeVersion::supported();
    format!("{} to {}", all[0], all[all.len() - 1])
}

/// How strictly objects are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaOptions {
    /// Unknown fields are errors (as with kubectl's strict field validation). Without it they
    /// are ignored, as the API server prunes them.
    pub strict: bool,
    /// Custom resources whose CRD is not among the manifests are not checked (no finding).
    pub ignore_missing_schemas: bool,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        Self {
            strict: true,
            ignore_missing_schemas: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "unsupported Kubernetes version {given:?}: supported are {supported} (as 1.NN, v1.NN or 1.NN.P)"
    )]
    Version { given: String, supported: String },
    #[error("bundled schemas of Kubernetes 1.{minor} are corrupt: {reason}")]
    Bundle { minor: u32, reason: String },
    #[error("bundled kind index is corrupt: {0}")]
    Index(String),
}

/// The built-in schemas of one Kubernetes version plus the CRDs added to them.
#[derive(Clone)]
pub struct Schemas {
    version: KubeVersion,
    arena: Arena,
    builtin: KindIndex,
    object_meta: NodeId,
    lifetimes: builtin::Lifetimes,
    /// Custom kinds: apiVersion → kind → root node.
    custom: KindIndex,
    /// Custom kinds by (group, kind) → the apiVersions their CRD serves (for messages).
    custom_versions: HashMap<(String, String), Vec<String>>,
}

impl Schemas {
    /// Decompresses and compiles the bundled schemas of `version` (no cache: a few
    /// milliseconds).
    pub fn builtin(version: KubeVersion) -> Result<Schemas, SchemaError> {
        let compiled = builtin::load(version.minor)?;
        Ok(Schemas {
            version,
            arena: compiled.arena,
            builtin: compiled.kinds,
            object_meta: compiled.object_meta,
            lifetimes: builtin::Lifetimes::load()?,
            custom: KindIndex::new(),
            custom_versions: HashMap::new(),
        })
    }

    pub fn version(&self) -> KubeVersion {
        self.version
    }

    /// Adds the CRDs (`apiextensions.k8s.io/v1` CustomResourceDefinition) among `manifests`
    /// (and from --crd files, loaded by the caller with `manifests::load`); the other
    /// manifests are skipped. Returns findings for broken CRDs.
    pub fn add_crds<'a>(
        &mut self,
        manifests: impl IntoIterator<Item = &'a Manifest>,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        for manifest in manifests {
            let r = &manifest.reference;
            if r.api_version != "apiextensions.k8s.io/v1" || r.kind != "CustomResourceDefinition" {
                continue;
            }
            let (compiled, problems) =
                crd::compile(&mut self.arena, self.object_meta, &manifest.object);
            findings.extend(problems.into_iter().map(|p| to_finding(manifest, p)));
            let Some(compiled) = compiled else { continue };
            let versions = self
                .custom_versions
                .entry((compiled.group, compiled.kind.clone()))
                .or_default();
            for (api_version, root) in compiled.served {
                versions.push(api_version.clone());
                self.custom
                    .entry(api_version)
                    .or_default()
                    .insert(compiled.kind.clone(), root);
            }
        }
        findings
    }

    /// Checks one object; all problems are reported, each with the manifest's file and line,
    /// the object and the JSON path.
    pub fn check(&self, manifest: &Manifest, options: &SchemaOptions) -> Vec<Finding> {
        let mut problems = Vec::new();
        let api_version = manifest.reference.api_version.as_str();
        let kind = manifest.reference.kind.as_str();
        let object = &manifest.object;
        let mut walker = Walker::new(&self.arena, self.object_meta, options.strict);
        let builtin = model::lookup(&self.builtin, api_version, kind);
        let root = builtin
            .inspect(|_| self.deprecation(api_version, kind, &mut problems))
            .or_else(|| model::lookup(&self.custom, api_version, kind));
        match root {
            Some(root) => walker.walk(root, object),
            None => {
                if let Some(problem) = self.no_schema(api_version, kind, options) {
                    problems.push(problem);
                }
                // Metadata is the same for every kind: still worth checking.
                if let Some(metadata) = object.get("metadata") {
                    walker.walk_field("metadata", self.object_meta, metadata);
                }
            }
        }
        problems.append(&mut walker.problems);
        problems.extend(name_problem(object));
        problems.extend(names::problems(kind, builtin.is_some(), object));
        if builtin.is_some() {
            problems.extend(workloads::problems(kind, object));
        }
        problems
            .into_iter()
            .map(|p| to_finding(manifest, p))
            .collect()
    }

    /// Why there is no schema for a kind that is neither built in nor from a CRD.
    fn no_schema(&self, api_version: &str, kind: &str, options: &SchemaOptions) -> Option<Problem> {
        let group = deprecations::group(api_version);
        let chosen = self.version.minor;
        let problem = |rule, message| Problem {
            severity: Severity::Error,
            rule,
            path: ".apiVersion".into(),
            message,
        };
        let known = deprecations::find(api_version, kind);
        let builtin_group = self.lifetimes.has_group(group)
            || deprecations::TABLE
                .iter()
                .any(|d| deprecations::group(d.api_version) == group);
        if builtin_group {
            let span = self.lifetimes.span(api_version, kind);
            let removed_in = known
                .and_then(|d| d.removed_in)
                .filter(|r| *r <= chosen)
                .or_else(|| {
                    span.filter(|(_, last)| *last < chosen)
                        .and_then(|(_, last)| self.lifetimes.next(last))
                });
            if let Some(removed_in) = removed_in {
                let instead = replacement(api_version, kind)
                    .map(|r| format!("; use {r}"))
                    .unwrap_or_default();
                return Some(problem(
                    "schema.removed-api",
                    format!(
                        "{api_version} {kind} was removed in Kubernetes 1.{removed_in} (checking against {}){instead}",
                        self.version
                    ),
                ));
            }
            let later = span
                .map(|(first, _)| format!(" (served from 1.{first})"))
                .unwrap_or_default();
            return Some(problem(
                "schema.unknown-kind",
                format!(
                    "Kubernetes {} has no {api_version} {kind}{later}",
                    self.version
                ),
            ));
        }
        if let Some(served) = self
            .custom_versions
            .get(&(group.to_string(), kind.to_string()))
        {
            return Some(problem(
                "schema.missing",
                format!(
                    "the CRD for {kind} does not serve {api_version} (it serves {})",
                    if served.is_empty() {
                        "no version".into()
                    } else {
                        served.join(", ")
                    }
                ),
            ));
        }
        (!options.ignore_missing_schemas).then(|| {
            problem(
                "schema.missing",
                format!("no schema for {api_version} {kind}: add its CustomResourceDefinition (or pass it with --crd), or ignore missing schemas"),
            )
        })
    }

    /// A warning for a served kind that is deprecated or gone from the newest bundled version.
    fn deprecation(&self, api_version: &str, kind: &str, problems: &mut Vec<Problem>) {
        let chosen = self.version.minor;
        let known = deprecations::find(api_version, kind).filter(|d| d.deprecated_in <= chosen);
        let gone = self
            .lifetimes
            .span(api_version, kind)
            .filter(|(_, last)| *last < self.lifetimes.newest())
            .and_then(|(_, last)| Some((last, self.lifetimes.next(last)?)));
        let status = match (known, gone) {
            (_, Some((last, removed))) => {
                format!("is served up to 1.{last} and removed in 1.{removed}")
            }
            (Some(d), None) => match d.removed_in {
                Some(r) => format!(
                    "is deprecated since 1.{} and removed in 1.{r}",
                    d.deprecated_in
                ),
                None => format!("is deprecated since 1.{}", d.deprecated_in),
            },
            (None, None) => return,
        };
        let instead = replacement(api_version, kind)
            .map(|r| format!("; use {r}"))
            .unwrap_or_default();
        problems.push(Problem {
            severity: Severity::Warning,
            rule: "schema.deprecated-api",
            path: ".apiVersion".into(),
            message: format!("{api_version} {kind} {status}{instead}"),
        });
    }
}

/// What replaces a kind, from the table: `apps/v1` becomes `apps/v1 Deployment`.
fn replacement(api_version: &str, kind: &str) -> Option<String> {
    let r = deprecations::find(api_version, kind)?.replacement?;
    Some(if r.contains(' ') {
        r.to_string()
    } else {
        format!("{r} {kind}")
    })
}

/// Every object needs `metadata.name` or `metadata.generateName`.
fn name_problem(object: &Value) -> Option<Problem> {
    let problem = |path: &str, message: &str| Problem {
        severity: Severity::Error,
        rule: "schema.required",
        path: path.into(),
        message: message.into(),
    };
    match object.get("metadata") {
        None | Some(Value::Null) => Some(problem(
            ".metadata",
            "required field \"metadata\" is missing",
        )),
        Some(Value::Object(meta)) => {
            let has = |k: &str| {
                meta.get(k)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            };
            (!has("name") && !has("generateName")).then(|| {
                problem(
                    ".metadata.name",
                    "metadata.name (or metadata.generateName) is required",
                )
            })
        }
        // Not an object: the ObjectMeta schema already says so.
        Some(_) => None,
    }
}

fn to_finding(manifest: &Manifest, p: Problem) -> Finding {
    Finding {
        path: Some(p.path),
        ..manifest.finding(p.severity, p.rule, p.message)
    }
}
