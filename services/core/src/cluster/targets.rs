//! Environment → clusters, from `--cluster ENV/NAME=KUBECONFIG[#CONTEXT]` (repeatable, or
//! `CONFIGSYNC_CLUSTERS` separated by `;`), and a `kube::Client` for each.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::names::{Name, Target};

/// One cluster of one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    pub environment: Name,
    pub cluster: Name,
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
}

/// Why a cluster could not be configured or reached.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid --cluster {spec:?}: {reason} (expected ENV/NAME=KUBECONFIG[#CONTEXT])")]
    Spec { spec: String, reason: String },
    #[error("kubeconfig {path} for cluster {cluster}: {reason}")]
    Kubeconfig {
        cluster: String,
        path: String,
        reason: String,
    },
    #[error(
        "kubeconfig {path} for cluster {cluster} uses {mechanism} authentication, which runs code or calls out; refused unless --allow-exec-auth"
    )]
    ExecRefused {
        cluster: String,
        path: String,
        mechanism: &'static str,
    },
}

impl FromStr for ClusterTarget {
    type Err = ClusterError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ClusterError::Spec {
            spec: spec.to_string(),
            reason: reason.into(),
        };
        let (target, location) = spec.split_once('=').ok_or_else(|| err("missing '='"))?;
        let (env, cluster) = target
            .split_once('/')
            .ok_or_else(|| err("missing '/' between environment and cluster"))?;
        let environment = Name::new(env).map_err(|e| err(&e.to_string()))?;
        let cluster = Name::new(cluster).map_err(|e| err(&e.to_string()))?;
        let (path, context) = match location.split_once('#') {
            Some((p, c)) if !c.is_empty() => (p, Some(c.to_string())),
            Some((p, _)) => (p, None),
            None => (location, None),
        };
        if path.is_empty() {
            return Err(err("empty kubeconfig path"));
        }
        Ok(Self {
            environment,
            cluster,
            kubeconfig: PathBuf::from(path),
            context,
        })
    }
}

impl ClusterTarget {
    /// The target's identity.
    pub fn target(&self) -> Target {
        Target::new(self.environment.clone(), self.cluster.clone())
    }

    /// A client for this cluster. Kubeconfigs whose user runs an `exec` plugin or an
    /// `auth-provider` are refused unless `allow_exec` (they run code on this machine).
    pub async fn client(&self, allow_exec: bool) -> Result<kube::Client, ClusterError> {
        self.client_with(allow_exec, None).await
    }

    /// A client whose requests time out after `read_timeout` (none for clients that watch).
    pub async fn client_with(
        &self,
        allow_exec: bool,
        read_timeout: Option<std::time::Duration>,
    ) -> Result<kube::Client, ClusterError> {
        let path = self.kubeconfig.display().to_string();
        let fail = |reason: String| ClusterError::Kubeconfig {
            cluster: self.cluster.to_string(),
            path: path.clone(),
            reason,
        };
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| fail(e.to_string()))?;
        if !allow_exec {
            for named in &kubeconfig.auth_infos {
                if let Some(info) = &named.auth_info {
                    let mechanism = if info.exec.is_some() {
                        Some("exec")
                    } else if info.auth_provider.is_some() {
                        Some("auth-provider")
                    } else {
                        None
                    };
                    if let Some(mechanism) = mechanism {
                        return Err(ClusterError::ExecRefused {
                            cluster: self.cluster.to_string(),
                            path: path.clone(),
                            mechanism,
                        });
                    }
                }
            }
        }
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if read_timeout.is_some() {
            config.read_timeout = read_timeout;
            config.write_timeout = read_timeout;
        }
        kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
    }
}

/// The flags of every service that reaches clusters (applier, drift-watcher, remediator).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// A cluster of an environment: `ENV/NAME=KUBECONFIG[#CONTEXT]`. Repeat for every cluster;
    /// in the env var, separate them with `;`. Parsed (and refused with the reason) when the
    /// flags are read.
    #[arg(long = "cluster", env = "CONFIGSYNC_CLUSTERS", value_delimiter = ';')]
    pub clusters: Vec<ClusterTarget>,
    /// Accept kubeconfigs whose users authenticate with `exec` plugins or auth providers
    /// (they run programs on this machine).
    #[arg(long, env = "CONFIGSYNC_ALLOW_EXEC_AUTH")]
    pub allow_exec_auth: bool,
}

impl ClusterArgs {
    /// The configured clusters, by environment (a cluster named twice is refused).
    pub fn clusters(&self) -> Result<Clusters, ClusterError> {
        Clusters::from_targets(self.clusters.iter().cloned())
    }
}

/// Every environment's clusters.
#[derive(Debug, Clone, Default)]
pub struct Clusters {
    by_environment: BTreeMap<String, Vec<ClusterTarget>>,
}

impl Clusters {
    /// From `--cluster` values (each may hold several specs separated by `;`).
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self, ClusterError> {
        let targets = specs
            .iter()
            .flat_map(|s| s.as_ref().split(';'))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<ClusterTarget>, _>>()?;
        Self::from_targets(targets)
    }

    /// From parsed targets; a cluster listed twice for an environment is refused.
    pub fn from_targets(
        targets: impl IntoIterator<Item = ClusterTarget>,
    ) -> Result<Self, ClusterError> {
        let mut by_environment: BTreeMap<String, Vec<ClusterTarget>> = BTreeMap::new();
        for target in targets {
            let list = by_environment
                .entry(target.environment.to_string())
                .or_default();
            if list.iter().any(|t| t.cluster == target.cluster) {
                return Err(ClusterError::Spec {
                    spec: target.target().to_string(),
                    reason: "cluster listed twice for the environment".into(),
                });
            }
            list.push(target);
        }
        Ok(Self { by_environment })
    }

    /// The clusters of `environment` (none when it is not configured).
    pub fn of(&self, environment: &str) -> &[ClusterTarget] {
        self.by_environment
            .get(environment)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every configured target.
    pub fn all(&self) -> impl Iterator<Item = &ClusterTarget> {
        self.by_environment.values().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_group_by_environment() {
        let c = Clusters::from_specs(&[
            "dev/dev-1=/k/dev#dev;prod/eu-1=/k/prod",
            "prod/us-1=/k/prod#us",
        ])
        .unwrap();
        assert_eq!(c.of("dev")[0].context.as_deref(), Some("dev"));
        assert_eq!(c.of("prod").len(), 2);
        assert!(c.of("staging").is_empty());
        assert_eq!(c.all().count(), 3);
    }

    #[test]
    fn the_flag_is_parsed_into_targets_and_a_bad_one_refused_when_read() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            cluster: ClusterArgs,
        }
        use clap::Parser;
        let ok = Flags::try_parse_from(["x", "--cluster", "dev/a=/k#ctx;prod/b=/j"]).unwrap();
        assert_eq!(ok.cluster.clusters.len(), 2);
        assert_eq!(ok.cluster.clusters[0].context.as_deref(), Some("ctx"));
        assert_eq!(ok.cluster.clusters().unwrap().of("prod").len(), 1);
        let bad = Flags::try_parse_from(["x", "--cluster", "dev"])
            .err()
            .expect("refused at parse time")
            .to_string();
        assert!(bad.contains("expected ENV/NAME=KUBECONFIG"), "{bad}");
        let twice =
            Flags::try_parse_from(["x", "--cluster", "dev/a=/k", "--cluster", "dev/a=/j"]).unwrap();
        assert!(twice.cluster.clusters().is_err());
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        for bad in ["dev", "dev=x", "dev/a.b=/k", "dev/a=", "DEV/a=/k"] {
            assert!(Clusters::from_specs(&[bad]).is_err(), "{bad}");
        }
        assert!(
            Clusters::from_specs(&["dev/a=/k;dev/a=/j"]).is_err(),
            "duplicate"
        );
    }
}
