//! Each environment's remediation policy, from `--policy ENV=auto|alert|off` (repeatable, or
//! `CONFIGSYNC_POLICIES` separated by `;`); environments not listed get `alert`.

use std::collections::BTreeMap;

use configsync_core::event::RemediationPolicy;
use configsync_core::names::Name;

/// The policy of an environment that is not listed: report, never touch the cluster.
pub const DEFAULT_POLICY: RemediationPolicy = RemediationPolicy::Alert;

/// Why a `--policy` value was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid --policy {spec:?}: {reason} (expected ENV=auto|alert|off)")]
pub struct PolicyError {
    pub spec: String,
    pub reason: String,
}

/// One `--policy` value: an environment and its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub environment: Name,
    pub policy: RemediationPolicy,
}

impl std::str::FromStr for PolicySpec {
    type Err = PolicyError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| PolicyError {
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let (env, policy) = spec.split_once('=').ok_or_else(|| err("missing '='"))?;
        let environment = Name::new(env.trim()).map_err(|e| err(&e.to_string()))?;
        let policy = match policy.trim() {
            "auto" => RemediationPolicy::Auto,
            "alert" => RemediationPolicy::Alert,
            "off" => RemediationPolicy::Off,
            _ => return Err(err("unknown policy")),
        };
        Ok(Self {
            environment,
            policy,
        })
    }
}

/// Every environment's policy.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    by_environment: BTreeMap<String, RemediationPolicy>,
}

impl Policies {
    /// From `--policy` values (each may hold several specs separated by `;`).
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self, PolicyError> {
        let parsed = specs
            .iter()
            .flat_map(|s| s.as_ref().split(';'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<PolicySpec>, _>>()?;
        Self::from_parsed(&parsed)
    }

    /// From parsed values; an environment listed twice is refused.
    pub fn from_parsed(specs: &[PolicySpec]) -> Result<Self, PolicyError> {
        let mut by_environment = BTreeMap::new();
        for spec in specs {
            if by_environment
                .insert(spec.environment.to_string(), spec.policy)
                .is_some()
            {
                return Err(PolicyError {
                    spec: spec.environment.to_string(),
                    reason: "environment listed twice".into(),
                });
            }
        }
        Ok(Self { by_environment })
    }

    /// The policy of `environment`.
    pub fn of(&self, environment: &str) -> RemediationPolicy {
        self.by_environment
            .get(environment)
            .copied()
            .unwrap_or(DEFAULT_POLICY)
    }

    /// Every listed environment and its policy.
    pub fn listed(&self) -> impl Iterator<Item = (&str, RemediationPolicy)> {
        self.by_environment.iter().map(|(e, p)| (e.as_str(), *p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_parsed_when_read_and_a_bad_value_refused_with_its_reason() {
        #[derive(clap::Parser)]
        struct Flags {
            #[arg(long = "policy", value_delimiter = ';')]
            policies: Vec<PolicySpec>,
        }
        use clap::Parser;
        let ok = Flags::try_parse_from(["x", "--policy", "dev=auto;prod=off"]).unwrap();
        assert_eq!(
            Policies::from_parsed(&ok.policies).unwrap().of("prod"),
            RemediationPolicy::Off
        );
        let bad = Flags::try_parse_from(["x", "--policy", "dev=sometimes"])
            .err()
            .expect("refused when read")
            .to_string();
        assert!(bad.contains("unknown policy"), "{bad}");
    }

    #[test]
    fn policies_parse_and_unlisted_environments_alert() {
        let p = Policies::from_specs(&["dev=auto;staging=off", "prod=alert"]).unwrap();
        assert_eq!(p.of("dev"), RemediationPolicy::Auto);
        assert_eq!(p.of("staging"), RemediationPolicy::Off);
        assert_eq!(p.of("prod"), RemediationPolicy::Alert);
        assert_eq!(p.of("qa"), RemediationPolicy::Alert);
        assert_eq!(
            Policies::from_specs::<&str>(&[]).unwrap().of("dev"),
            DEFAULT_POLICY
        );
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        for bad in ["dev", "dev=fix", "DEV=auto", "=auto", "dev=auto;dev=off"] {
            let e = Policies::from_specs(&[bad]).expect_err(bad);
            assert!(e.to_string().contains("expected ENV=auto|alert|off"), "{e}");
        }
    }
}
