//! Validated names for environments, clusters and consumers: each becomes one NATS subject token.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A name that is safe as a single NATS subject token and as a Kubernetes label value:
/// lowercase ASCII letters, digits, `-` and `_`, starting with a letter or digit, at most
/// 63 characters. `_` alone is reserved for "none" in subjects, so a name may not be `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Why a string is not a valid [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {name:?}: {reason}")]
pub struct InvalidName {
    /// The rejected input (names carry no secrets).
    pub name: String,
    /// What rule it broke.
    pub reason: &'static str,
}

impl Name {
    /// The longest name accepted (a Kubernetes label value's limit).
    pub const MAX_LEN: usize = 63;

    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.len() > Self::MAX_LEN {
            Some("must be at most 63 characters")
        } else if !name.as_bytes()[0].is_ascii_lowercase() && !name.as_bytes()[0].is_ascii_digit() {
            Some("must start with a lowercase letter or a digit")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            Some("may only contain lowercase letters, digits, '-' and '_'")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidName { name, reason }),
            None => Ok(Self(name)),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Name {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Name> for String {
    fn from(value: Name) -> Self {
        value.0
    }
}

impl std::str::FromStr for Name {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A target: one cluster of one environment, the unit ConfigSync applies to, watches and
/// orders work on. Written `<environment>/<cluster>` (its `Display`, `FromStr` and serde
/// form), so it can key maps in snapshots and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Target {
    pub environment: Name,
    pub cluster: Name,
}

impl Target {
    /// The target of two already-validated names.
    pub fn new(environment: Name, cluster: Name) -> Self {
        Self {
            environment,
            cluster,
        }
    }

    /// Validates both names.
    pub fn parse(environment: &str, cluster: &str) -> Result<Self, InvalidName> {
        Ok(Self::new(Name::new(environment)?, Name::new(cluster)?))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.environment, self.cluster)
    }
}

impl std::str::FromStr for Target {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (environment, cluster) = s.split_once('/').ok_or_else(|| InvalidName {
            name: s.to_string(),
            reason: "a target is written <environment>/<cluster>",
        })?;
        Self::parse(environment, cluster)
    }
}

impl TryFrom<String> for Target {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Target> for String {
    fn from(value: Target) -> Self {
        value.to_string()
    }
}

/// A followed source: one branch of one repository (its URL with any credentials redacted),
/// optionally only a sub-directory of it. Written `<repository>#<branch>` or
/// `<repository>#<branch>:<path>` (its `Display`, `FromStr` and serde form), the key of
/// [`LogState::sources`](crate::fold::LogState::sources) in snapshots and JSON. Git refuses
/// `:` in branch names, so the path is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceId {
    pub repository: String,
    pub branch: String,
    /// The sub-directory followed; `None` for the whole repository.
    pub path: Option<String>,
}

/// Why a string is not a [`SourceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid source {0:?}: a source is written <repository>#<branch>[:<path>]")]
pub struct InvalidSourceId(pub String);

impl SourceId {
    pub fn new(repository: impl Into<String>, branch: impl Into<String>) -> Self {
        Self {
            repository: repository.into(),
            branch: branch.into(),
            path: None,
        }
    }

    /// The same branch, only `path` of it (`None`: the whole repository).
    pub fn with_path(mut self, path: Option<String>) -> Self {
        self.path = path;
        self
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.repository, self.branch)?;
        match &self.path {
            Some(path) => write!(f, ":{path}"),
            None => Ok(()),
        }
    }
}

impl std::str::FromStr for SourceId {
    type Err = InvalidSourceId;
    /// Splits at the last `#`: Git refuses no `#` in a branch name, but a URL's fragment
    /// comes last too, and this is how every written key was made.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((repository, rest)) = s.rsplit_once('#') else {
            return Err(InvalidSourceId(s.to_string()));
        };
        let (branch, path) = match rest.split_once(':') {
            Some((branch, path)) => (branch, Some(path)),
            None => (rest, None),
        };
        if repository.is_empty() || branch.is_empty() || path.is_some_and(str::is_empty) {
            return Err(InvalidSourceId(s.to_string()));
        }
        Ok(Self::new(repository, branch).with_path(path.map(str::to_string)))
    }
}

impl TryFrom<String> for SourceId {
    type Error = InvalidSourceId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<SourceId> for String {
    fn from(value: SourceId) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn sources_keep_their_written_form() {
        let s = SourceId::new("https://example.com/configs.git", "main");
        assert_eq!(s.to_string(), "https://example.com/configs.git#main");
        assert_eq!(s.to_string().parse::<SourceId>().unwrap(), s);
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            "\"https://example.com/configs.git#main\""
        );
        let sub = SourceId::new("file:///r", "main").with_path(Some("teams/a".into()));
        assert_eq!(sub.to_string(), "file:///r#main:teams/a");
        assert_eq!(sub.to_string().parse::<SourceId>().unwrap(), sub);
        for bad in ["no-branch", "#main", "repo#", "repo#main:"] {
            assert!(bad.parse::<SourceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_round_trip_through_text_and_refuse_bad_names() {
        let t: Target = "prod/eu-1".parse().unwrap();
        assert_eq!(t.environment.as_str(), "prod");
        assert_eq!(t.to_string(), "prod/eu-1");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"prod/eu-1\"");
        for bad in ["prod", "prod/EU", "a/b/c", "/x"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
    use super::*;

    #[test]
    fn accepts_typical_names() {
        for ok in ["dev", "prod", "eu-west-1", "c_2", "0a"] {
            assert_eq!(Name::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_subject_metacharacters_and_reserved() {
        for bad in [
            "",
            "_",
            "-x",
            "a.b",
            "a*",
            ">",
            "A",
            "a b",
            "ü",
            &"a".repeat(64),
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
