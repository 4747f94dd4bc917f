//! Drift ignore rules: fields that others legitimately own (an HPA's `/spec/replicas`, a
//! controller's annotations), neither reported as drift nor repaired. A rule is a JSON pointer
//! (RFC 6901) whose segments may be `*` (any one segment), matching the field and everything
//! under it, or `manager:NAME`, matching every field that field manager owns in the live
//! object. Deliberately no expression language: matching is linear in the rule and the path
//! (Argo CD's jq rules were a denial of service, CVE-2024-32476).
//!
//! Rules come from the environment (`--ignore-drift ENV=RULE`) and from each object's
//! `configsync.io/ignore-drift: RULE,RULE` annotation.

use serde_json::Value;

/// The annotation that lists an object's own rules, comma-separated.
pub const ANNOTATION_IGNORE_DRIFT: &str = "configsync.io/ignore-drift";

/// The longest rule accepted, and the most rules per object: limits on hostile input.
const MAX_RULE_LEN: usize = 512;
const MAX_RULES: usize = 64;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A pointer, by segments (already unescaped); `*` matches any one segment.
    Pointer(Vec<String>),
    /// Fields owned by this field manager.
    Manager(String),
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("empty ignore rule")]
    Empty,
    #[error("ignore rule longer than {MAX_RULE_LEN} characters")]
    TooLong,
    #[error("ignore rule {0:?} is neither a JSON pointer (starting with /) nor manager:NAME")]
    Malformed(String),
}

impl std::str::FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, RuleError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RuleError::Empty);
        }
        if text.len() > MAX_RULE_LEN {
            return Err(RuleError::TooLong);
        }
        if let Some(manager) = text.strip_prefix("manager:") {
            let manager = manager.trim();
            if manager.is_empty() {
                return Err(RuleError::Malformed(text.into()));
            }
            return Ok(Self::Manager(manager.into()));
        }
        if !text.starts_with('/') || text == "/" {
            return Err(RuleError::Malformed(text.into()));
        }
        Ok(Self::Pointer(
            text.split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
        ))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Manager(m) => write!(f, "manager:{m}"),
            Self::Pointer(segments) => {
                for s in segments {
                    write!(f, "/{}", s.replace('~', "~0").replace('/', "~1"))?;
                }
                Ok(())
            }
        }
    }
}

impl Rule {
    /// Whether the rule covers the field at `path` (its segments), owned by `owners`.
    fn covers(&self, path: &[String], owners: &[String]) -> bool {
        match self {
            Self::Manager(m) => owners.iter().any(|o| o == m),
            Self::Pointer(segments) => {
                segments.len() <= path.len()
                    && segments.iter().zip(path).all(|(s, p)| s == "*" || s == p)
            }
        }
    }
}

/// `ENV=RULE`: one rule of one environment, as the drift-watcher's `--ignore-drift` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRule {
    pub environment: String,
    pub rule: Rule,
}

impl std::str::FromStr for EnvironmentRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (environment, rule) = text
            .split_once('=')
            .filter(|(e, _)| !e.trim().is_empty())
            .ok_or_else(|| format!("{text:?}: expected ENV=/json/pointer or ENV=manager:NAME"))?;
        Ok(Self {
            environment: environment.trim().to_string(),
            rule: rule.parse().map_err(|e: RuleError| e.to_string())?,
        })
    }
}

impl EnvironmentRule {
    /// The rules of `environment` among `all`.
    pub fn of(all: &[Self], environment: &str) -> Vec<Rule> {
        all.iter()
            .filter(|r| r.environment == environment)
            .map(|r| r.rule.clone())
            .collect()
    }
}

/// The rules that apply to one object: its environment's and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// `environment`'s rules and those of the object's annotation (in `declared`, the object
    /// as Git has it). Malformed entries of the annotation are returned as errors and left
    /// out; the others still apply.
    pub fn for_object(environment: &[Rule], declared: &Value) -> (Self, Vec<RuleError>) {
        let mut rules = environment.to_vec();
        let mut errors = Vec::new();
        if let Some(text) = declared
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ANNOTATION_IGNORE_DRIFT))
            .and_then(Value::as_str)
        {
            for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
                if rules.len() >= environment.len() + MAX_RULES {
                    errors.push(RuleError::Malformed(format!(
                        "more than {MAX_RULES} rules; the rest are ignored"
                    )));
                    break;
                }
                match entry.parse() {
                    Ok(rule) => rules.push(rule),
                    Err(e) => errors.push(e),
                }
            }
        }
        (Self { rules }, errors)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule that covers the field at the JSON pointer `path`, owned by `owners`.
    pub fn matching(&self, path: &str, owners: &[String]) -> Option<&Rule> {
        if self.rules.is_empty() {
            return None;
        }
        let segments: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        self.rules.iter().find(|r| r.covers(&segments, owners))
    }
}

/// `object` without the fields at `paths` (JSON pointers): what a repair applies when those
/// fields are ignored, so that it neither resets them nor keeps owning them. A path that does
/// not exist is skipped.
pub fn without_fields(mut object: Value, paths: &[String]) -> Value {
    for path in paths {
        let Some((parent, last)) = path.rsplit_once('/') else {
            continue;
        };
        let last = last.replace("~1", "/").replace("~0", "~");
        let parent = if parent.is_empty() {
            Some(&mut object)
        } else {
            object.pointer_mut(parent)
        };
        // A list item stays in place (lists are applied whole); only fields inside it go.
        if let Some(Value::Object(map)) = parent {
            map.remove(&last);
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(env: &[&str], annotation: Option<&str>) -> (IgnoreRules, Vec<RuleError>) {
        let env: Vec<Rule> = env.iter().map(|r| r.parse().unwrap()).collect();
        let mut object = json!({"metadata": {"name": "web"}});
        if let Some(a) = annotation {
            object["metadata"]["annotations"] = json!({ANNOTATION_IGNORE_DRIFT: a});
        }
        IgnoreRules::for_object(&env, &object)
    }

    #[test]
    fn pointers_cover_the_field_and_what_is_under_it_and_stars_one_segment() {
        let (r, errors) = rules(
            &["/spec/replicas"],
            Some("/spec/template/spec/containers/*/image, /metadata/annotations/a~1b"),
        );
        assert!(errors.is_empty());
        assert!(r.matching("/spec/replicas", &[]).is_some());
        assert!(r.matching("/spec/replicasx", &[]).is_none());
        assert!(
            r.matching("/spec", &[]).is_none(),
            "a parent is not covered"
        );
        assert!(
            r.matching("/spec/template/spec/containers/0/image", &[])
                .is_some()
        );
        assert!(
            r.matching("/spec/template/spec/containers/0/name", &[])
                .is_none()
        );
        let rule = r.matching("/metadata/annotations/a~1b", &[]).unwrap();
        assert_eq!(rule.to_string(), "/metadata/annotations/a~1b");
    }

    #[test]
    fn managers_cover_the_fields_they_own() {
        let (r, _) = rules(&["manager:kube-controller-manager"], None);
        let owners = ["kube-controller-manager".to_string()];
        assert!(r.matching("/spec/replicas", &owners).is_some());
        assert!(
            r.matching("/spec/replicas", &["kubectl-edit".into()])
                .is_none()
        );
    }

    #[test]
    fn malformed_rules_are_reported_and_the_others_still_apply() {
        let (r, errors) = rules(&[], Some("spec/replicas,/data/a,manager:, ,/"));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(r.matching("/data/a", &[]).is_some());
        assert!("x".repeat(600).parse::<Rule>().is_err());
        let many = vec!["/a"; 100].join(",");
        let (r, errors) = rules(&[], Some(&many));
        assert_eq!(r.rules.len(), MAX_RULES);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn environment_rules_parse_and_bad_ones_say_why() {
        let all: Vec<EnvironmentRule> = ["prod=/spec/replicas", "prod=manager:hpa", "dev=/data/x"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(EnvironmentRule::of(&all, "prod").len(), 2);
        assert!(EnvironmentRule::of(&all, "qa").is_empty());
        for bad in ["prod", "=/a", "prod=spec", "prod=manager:"] {
            assert!(bad.parse::<EnvironmentRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ignored_fields_are_left_out_of_what_is_applied() {
        let object = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let out = without_fields(
            object,
            &[
                "/spec/replicas".into(),
                "/spec/template/spec/containers/0/image".into(),
                "/missing/field".into(),
                "/spec/template/spec/containers/0".into(),
            ],
        );
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}})
        );
    }
}
