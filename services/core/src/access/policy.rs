//! The access policy: one YAML file naming groups of people and, per environment, who may
//! approve, reject, roll back, unpin and allow a held prune, and how many approvals a revision
//! needs. Its keys come from an allowed_signers file (SSH) and, optionally, an armored OpenPGP
//! keyring, both named relative to the policy. See docs/security.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use super::signers::{SignersError, SshSigners};
use super::statement::{Action, Claim, Refusal, Statement, Verified, check_times};
use crate::event::SignatureFormat;
use crate::names::Name;

/// How far apart the signer's and the checker's clocks may be.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// The file, as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessPolicyFile {
    /// Where people's keys are, relative to this file.
    pub signers: SignersFile,
    /// Groups of people, by the principal (e-mail) their keys are listed under.
    #[serde(default, deserialize_with = "unique_keys")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Rules per environment. An environment not listed needs no approvals, and any person
    /// with a key may roll it back, unpin it or allow a held prune there (signed).
    #[serde(default, deserialize_with = "unique_keys")]
    pub environments: BTreeMap<String, EnvironmentRules>,
}

/// Key files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignersFile {
    /// An allowed_signers file (`gpg.ssh.allowedSignersFile` format).
    #[serde(default)]
    pub ssh: Option<PathBuf>,
    /// ASCII-armored OpenPGP public keys; each key acts for the e-mails of its user ids.
    #[serde(default)]
    pub openpgp: Option<PathBuf>,
}

/// One environment's rules. Each action lists the groups whose members may take it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentRules {
    #[serde(default)]
    pub approvals: Option<ApprovalRules>,
    /// Who may reject a revision (default: the approvers).
    #[serde(default)]
    pub reject: Option<Vec<String>>,
    #[serde(default)]
    pub rollback: Option<Vec<String>>,
    /// Whether a rollback target passes the approval gate too (its own approvals, as if it were
    /// deployed forward); default: a signed rollback by someone allowed is enough.
    #[serde(default)]
    pub approve_rollbacks: bool,
    #[serde(default)]
    pub unpin: Option<Vec<String>>,
    /// Who may allow deletions the prune guard held back.
    #[serde(default)]
    pub prune: Option<Vec<String>>,
    /// Whether only commits with a verified signature (SSH or OpenPGP, by a key of the
    /// policy's signers, for the committer's e-mail) may be deployed here.
    #[serde(default)]
    pub require_signed_commits: bool,
    /// What ConfigSync may manage here; a revision with anything else fails validation.
    #[serde(default)]
    pub manages: Option<Scope>,
}

/// The kinds and namespaces ConfigSync may manage in an environment.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    /// `Kind` (any API group) or `group/Kind` (`apps/Deployment`; `core/ConfigMap` for the
    /// core group). Absent: any kind.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// Namespaces objects may be in. With a list, cluster-scoped objects are refused, except
    /// the listed namespaces themselves. Absent: any namespace, and cluster-scoped objects.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
}

impl Scope {
    /// Why an object is outside this scope (`scope.kind` or `scope.namespace`, and a message),
    /// if it is.
    pub fn refuses(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<(&'static str, String)> {
        let group = api_version
            .rsplit_once('/')
            .map_or("core", |(group, _)| group);
        if let Some(kinds) = &self.kinds
            && !kinds
                .iter()
                .any(|k| k == kind || *k == format!("{group}/{kind}"))
        {
            return Some((
                "scope.kind",
                format!(
                    "{group}/{kind} is not among the kinds ConfigSync may manage in this environment ({})",
                    kinds.join(", ")
                ),
            ));
        }
        let namespaces = self.namespaces.as_ref()?;
        let allowed = namespaces.join(", ");
        match namespace {
            Some(ns) if !namespaces.iter().any(|n| n == ns) => Some((
                "scope.namespace",
                format!(
                    "namespace {ns} is not among those ConfigSync may manage in this environment ({allowed})"
                ),
            )),
            Some(_) => None,
            None if kind == "Namespace" && namespaces.iter().any(|n| n == name) => None,
            None => Some((
                "scope.namespace",
                format!(
                    "{kind} {name} is cluster-scoped, and this environment limits ConfigSync to namespaces ({allowed})"
                ),
            )),
        }
    }
}

/// How a revision is approved for an environment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRules {
    /// How many distinct people must approve.
    pub required: u32,
    /// The groups whose members may approve.
    pub from: Vec<String>,
    /// Whether the commit's author may approve their own change.
    #[serde(default)]
    pub self_approval: bool,
    /// How long an approval counts after it is signed (`24h`, `30m`).
    #[serde(
        default = "default_valid_for",
        deserialize_with = "humantime_serde_str::deserialize"
    )]
    #[schemars(with = "String")]
    pub valid_for: Duration,
    /// Whether approvals of an earlier revision count for a later one.
    #[serde(default)]
    pub carry_over: bool,
}

/// A map whose keys must be unique: YAML parsers keep the last of duplicate keys, which would
/// silently drop a group or an environment's rules.
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique(std::marker::PhantomData))
}

fn default_valid_for() -> Duration {
    Duration::from_secs(24 * 3600)
}

mod humantime_serde_str {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("validFor {s:?}: {e} (write e.g. 24h or 30m)"))
        })
    }
}

/// Why a policy cannot be used. Nothing is approved with a policy that fails to load.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {source}", path.display())]
    Signers { path: PathBuf, source: SignersError },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// A signed commit, as [`AccessPolicy::verify_commit`] checks it.
#[derive(Debug, Clone, Copy)]
pub struct SignedCommit<'a> {
    /// The armored signature of its `gpgsig` header.
    pub armored: &'a str,
    /// The commit object without that header.
    pub signed_data: &'a [u8],
    pub committer_email: &'a str,
    pub committed_at: DateTime<Utc>,
}

/// A loaded, checked access policy.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    pub path: PathBuf,
    pub file: AccessPolicyFile,
    pub ssh: SshSigners,
    pub openpgp: Option<super::openpgp::OpenPgpKeyring>,
}

impl AccessPolicy {
    /// Reads and checks the policy and the key files it names.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| PolicyError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let text = read(path)?;
        let file: AccessPolicyFile =
            serde_yaml::from_str(&text).map_err(|e| PolicyError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let ssh = match &file.signers.ssh {
            Some(p) => {
                let p = dir.join(p);
                SshSigners::parse(&read(&p)?)
                    .map_err(|source| PolicyError::Signers { path: p, source })?
            }
            None => SshSigners::default(),
        };
        let policy = Self {
            path: path.to_path_buf(),
            ssh,
            openpgp: match &file.signers.openpgp {
                Some(p) => {
                    let p = dir.join(p);
                    Some(
                        super::openpgp::OpenPgpKeyring::from_armored(&read(&p)?).map_err(|e| {
                            PolicyError::Invalid {
                                path: p,
                                message: e.to_string(),
                            }
                        })?,
                    )
                }
                None => None,
            },
            file,
        };
        policy.check().map_err(|message| PolicyError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(policy)
    }

    /// Every principal with a key.
    fn known(&self) -> BTreeSet<String> {
        let mut known: BTreeSet<String> = self.ssh.principals().map(str::to_string).collect();
        if let Some(k) = &self.openpgp {
            known.extend(k.keys().flat_map(|s| s.emails.iter().cloned()));
        }
        known
    }

    fn check(&self) -> Result<(), String> {
        if self.file.signers.ssh.is_none() && self.file.signers.openpgp.is_none() {
            return Err(
                "signers: name an allowed_signers file (ssh) or an OpenPGP keyring (openpgp)"
                    .into(),
            );
        }
        let known = self.known();
        for (group, members) in &self.file.groups {
            Name::new(group).map_err(|e| format!("group {group:?}: {e}"))?;
            if members.is_empty() {
                return Err(format!("group {group} has no members"));
            }
            let mut seen = BTreeSet::new();
            for member in members {
                let member = member.to_ascii_lowercase();
                if !known.contains(&member) {
                    return Err(format!(
                        "group {group}: {member} has no key in the policy's signers"
                    ));
                }
                if !seen.insert(member.clone()) {
                    return Err(format!("group {group} lists {member} twice"));
                }
            }
        }
        for (env, rules) in &self.file.environments {
            Name::new(env).map_err(|e| format!("environment {env:?}: {e}"))?;
            let lists = [
                ("reject", &rules.reject),
                ("rollback", &rules.rollback),
                ("unpin", &rules.unpin),
                ("prune", &rules.prune),
            ];
            let approvers = rules.approvals.as_ref().map(|a| &a.from);
            for (what, groups) in lists
                .iter()
                .filter_map(|(w, g)| g.as_ref().map(|g| (*w, g)))
                .chain(approvers.map(|g| ("approvals.from", g)))
            {
                for g in groups {
                    if !self.file.groups.contains_key(g) {
                        return Err(format!("environments.{env}.{what}: no group named {g:?}"));
                    }
                }
            }
            if let Some(a) = &rules.approvals {
                let eligible = self.members(&a.from).len();
                if a.required == 0 {
                    return Err(format!(
                        "environments.{env}.approvals.required is 0: leave approvals out instead"
                    ));
                }
                if a.required as usize > eligible {
                    return Err(format!(
                        "environments.{env}.approvals: {} approvals required but only {eligible} people may approve",
                        a.required
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rules of an environment (empty when it is not listed).
    pub fn rules(&self, environment: &str) -> EnvironmentRules {
        self.file
            .environments
            .get(environment)
            .cloned()
            .unwrap_or_default()
    }

    /// The `manages` scope of each environment that has one.
    pub fn scopes(&self) -> BTreeMap<String, Scope> {
        self.file
            .environments
            .iter()
            .filter_map(|(env, rules)| rules.manages.clone().map(|s| (env.clone(), s)))
            .collect()
    }

    /// The members of some groups (lowercased, sorted).
    pub fn members(&self, groups: &[String]) -> BTreeSet<String> {
        groups
            .iter()
            .filter_map(|g| self.file.groups.get(g))
            .flatten()
            .map(|m| m.to_ascii_lowercase())
            .collect()
    }

    /// Who may take `action` in `environment`: `None` means any person with a key.
    pub fn allowed(&self, action: Action, environment: &str) -> Option<BTreeSet<String>> {
        let rules = self.rules(environment);
        let approvers = rules.approvals.as_ref().map(|a| a.from.clone());
        let groups = match action {
            // Approving where nothing is required approves nothing: nobody may.
            Action::Approve => Some(approvers.unwrap_or_default()),
            Action::Reject => Some(rules.reject.or(approvers).unwrap_or_default()),
            Action::Rollback => rules.rollback,
            Action::Unpin => rules.unpin,
            Action::Prune => rules.prune,
        };
        groups.map(|g| self.members(&g))
    }

    /// Checks a human action's signature, who signed it and its validity at `at`.
    pub fn verify(&self, claim: &Claim, at: DateTime<Utc>) -> Result<Verified, Refusal> {
        let signature = claim
            .signature
            .as_ref()
            .ok_or(Refusal::Unsigned(claim.action))?;
        let statement = claim.statement(signature);
        check_times(&statement, at, CLOCK_SKEW)?;
        let verified = self.verify_signature(&statement, signature)?;
        if let Some(allowed) = self.allowed(claim.action, &claim.environment)
            && !allowed.contains(&verified.principal)
        {
            return Err(Refusal::NotAllowed {
                principal: verified.principal,
                action: claim.action,
                environment: claim.environment.clone(),
                allowed: if allowed.is_empty() {
                    "nobody".into()
                } else {
                    allowed.into_iter().collect::<Vec<_>>().join(", ")
                },
            });
        }
        Ok(verified)
    }

    /// Checks only the signature over `statement` (any time, any permission): what
    /// `configsync audit verify-signatures` re-checks of past decisions.
    pub fn verify_signature(
        &self,
        statement: &Statement,
        signature: &crate::event::ActionSignature,
    ) -> Result<Verified, Refusal> {
        match signature.format {
            SignatureFormat::Ssh => self.ssh.verify(statement, &signature.signature),
            SignatureFormat::Openpgp => self.verify_openpgp(statement, &signature.signature),
        }
    }

    fn verify_openpgp(&self, statement: &Statement, armored: &str) -> Result<Verified, Refusal> {
        self.verify_openpgp_message(
            statement.canonical().as_bytes(),
            &statement.actor,
            armored,
            statement.issued_at,
        )
    }

    /// Checks a detached OpenPGP signature over `message` by `principal`; the key must have
    /// been valid at `at`, when the person signed (not now: a decision stays verifiable after
    /// the key expires).
    fn verify_openpgp_message(
        &self,
        message: &[u8],
        principal: &str,
        armored: &str,
        at: DateTime<Utc>,
    ) -> Result<Verified, Refusal> {
        Refusal::check_size(armored)?;
        let keyring = self.openpgp.as_ref().ok_or_else(|| {
            Refusal::OpenPgpUnavailable("the policy names no OpenPGP keyring".into())
        })?;
        let signer = super::openpgp::verify_at(keyring, armored, message, at.into()).map_err(
            |e| match e {
                super::openpgp::OpenPgpError::UnknownKey { key } => Refusal::UnknownKey(key),
                super::openpgp::OpenPgpError::BadSignature { .. } => Refusal::BadSignature,
                other => Refusal::Malformed(other.to_string()),
            },
        )?;
        let principal = principal.to_ascii_lowercase();
        if !signer.emails.contains(&principal) {
            return Err(Refusal::KeyNotForPrincipal {
                key: signer.fingerprint,
                principal,
                allowed: signer.emails.join(", "),
            });
        }
        Ok(Verified {
            principal,
            key: signer.fingerprint,
        })
    }

    /// Checks a commit's signature (as `git verify-commit` with these keys would): an SSH
    /// signature in the `git` namespace or an OpenPGP one, over the commit without its
    /// signature, by a key the policy lists for the committer's e-mail, valid when committed.
    pub fn verify_commit(
        &self,
        signature: &SignedCommit<'_>,
    ) -> Result<(SignatureFormat, Verified), Refusal> {
        let armored = signature.armored.trim_start();
        if armored.starts_with("-----BEGIN SSH SIGNATURE-----") {
            self.ssh
                .verify_message(
                    "git",
                    signature.committer_email,
                    signature.signed_data,
                    armored,
                    signature.committed_at,
                )
                .map(|v| (SignatureFormat::Ssh, v))
        } else if armored.starts_with("-----BEGIN PGP SIGNATURE-----") {
            self.verify_openpgp_message(
                signature.signed_data,
                signature.committer_email,
                armored,
                signature.committed_at,
            )
            .map(|v| (SignatureFormat::Openpgp, v))
        } else {
            Err(Refusal::Malformed(
                "neither an SSH nor an OpenPGP signature (X.509 signatures are not supported)"
                    .into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn load(policy: &str) -> Result<AccessPolicy, PolicyError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("allowed_signers"),
            format!("alice@example.com {KEY}\nbob@example.com {KEY}\n"),
        )
        .unwrap();
        let path = dir.path().join("access.yaml");
        std::fs::write(&path, policy).unwrap();
        AccessPolicy::load(&path)
    }

    const GOOD: &str = "signers: {ssh: allowed_signers}\ngroups:\n  sre: [alice@example.com, bob@example.com]\nenvironments:\n  prod:\n    approvals: {required: 2, from: [sre], validFor: 1h}\n    rollback: [sre]\n";

    #[test]
    fn a_good_policy_loads_with_its_defaults() {
        let policy = load(GOOD).unwrap();
        let prod = policy.rules("prod").approvals.unwrap();
        assert_eq!(prod.valid_for, Duration::from_secs(3600));
        assert!(!prod.self_approval && !prod.carry_over);
        assert_eq!(
            policy.allowed(Action::Reject, "prod").unwrap().len(),
            2,
            "rejecting defaults to the approvers"
        );
        assert_eq!(policy.allowed(Action::Unpin, "prod"), None);
        assert_eq!(
            policy.allowed(Action::Approve, "dev"),
            Some(BTreeSet::new())
        );
    }

    #[test]
    fn a_scope_refuses_other_kinds_namespaces_and_cluster_scoped_objects() {
        let scope = Scope {
            kinds: Some(vec![
                "ConfigMap".into(),
                "apps/Deployment".into(),
                "Namespace".into(),
            ]),
            namespaces: Some(vec!["shop".into()]),
        };
        assert_eq!(scope.refuses("v1", "ConfigMap", Some("shop"), "a"), None);
        assert_eq!(
            scope.refuses("apps/v1", "Deployment", Some("shop"), "a"),
            None
        );
        assert_eq!(scope.refuses("v1", "Namespace", None, "shop"), None);
        let refused = |api: &str, kind: &str, ns: Option<&str>, name: &str| {
            scope.refuses(api, kind, ns, name).map(|(rule, _)| rule)
        };
        assert_eq!(
            refused("extensions/v1beta1", "Deployment", Some("shop"), "a"),
            Some("scope.kind")
        );
        assert_eq!(
            refused("v1", "Secret", Some("shop"), "a"),
            Some("scope.kind")
        );
        assert_eq!(
            refused("v1", "ConfigMap", Some("kube-system"), "a"),
            Some("scope.namespace")
        );
        assert_eq!(
            refused("v1", "Namespace", None, "kube-system"),
            Some("scope.namespace")
        );
        let open = Scope::default();
        assert_eq!(
            open.refuses("rbac.authorization.k8s.io/v1", "ClusterRole", None, "x"),
            None
        );
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        for (policy, says) in [
            (GOOD.replace("validFor", "validFour"), "unknown field"),
            (
                GOOD.replace("  sre: [", "  sre: [carol@example.com]\n  sre: ["),
                "duplicate",
            ),
            (
                GOOD.replace("rollback: [sre]", "rollback: [ops]"),
                "no group named \"ops\"",
            ),
            (
                GOOD.replace("required: 2", "required: 3"),
                "only 2 people may approve",
            ),
            (GOOD.replace("required: 2", "required: 0"), "required is 0"),
            (
                GOOD.replace("bob@example.com]", "bob@example.com, eve@example.com]"),
                "eve@example.com has no key",
            ),
            (GOOD.replace("validFor: 1h", "validFor: soon"), "validFor"),
            (
                GOOD.replace("signers: {ssh: allowed_signers}", "signers: {}"),
                "name an allowed_signers",
            ),
            (GOOD.replace("allowed_signers}", "missing}"), "cannot read"),
        ] {
            let err = match load(&policy) {
                Ok(_) => panic!("{says:?}: accepted\n{policy}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(says), "{says:?} not in {err:?}");
        }
    }
}
