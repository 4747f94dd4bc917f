//! The subject scheme of the event log.
//!
//! ```text
//! configsync.evt.<environment>.<cluster>.<domain>.<action>.<version>
//! configsync.dlq.<consumer>
//! ```
//!
//! `_` stands for "none" where an event concerns no environment or cluster (a commit, an audit
//! checkpoint). Every target (environment + cluster) has its own subject space
//! `configsync.evt.<env>.<cluster>.>`, which keeps per-target ordering and lets a publisher use
//! `Nats-Expected-Last-Subject-Sequence` on a target's subjects. Filters:
//!
//! | what | filter |
//! |---|---|
//! | every event | `configsync.evt.>` |
//! | one type | `configsync.evt.*.*.apply.succeeded.v1` |
//! | one environment | `configsync.evt.prod.>` |
//! | one target | `configsync.evt.prod.eu-1.>` |
//! | one domain in one environment | `configsync.evt.prod.*.drift.>` |
//! | one domain everywhere | `configsync.evt.*.*.drift.>` ([`domain_filter`]) |
//! | events of no environment or cluster | `configsync.evt._._.>` ([`UNROUTED_EVENTS`]) |
//! | dead letters | `configsync.dlq.>` |
//! | everything | `configsync.>` ([`EVERYTHING`]) |
//!
//! Filters are built here only, so that the scheme lives in one place.

use crate::names::{InvalidName, Name};

/// The first token of every ConfigSync subject.
pub const ROOT: &str = "configsync";
/// Every subject the event stream stores.
pub const STREAM_SUBJECTS: [&str; 2] = ["configsync.dlq.>", "configsync.evt.>"];
/// Every event (not dead letters).
pub const ALL_EVENTS: &str = "configsync.evt.>";
/// Every dead-letter record.
pub const ALL_DEAD_LETTERS: &str = "configsync.dlq.>";
/// The token that stands for "no environment" or "no cluster".
pub const NONE: &str = "_";
/// Every subject of ConfigSync: events and dead letters.
pub const EVERYTHING: &str = "configsync.>";
/// Every event that concerns no environment or cluster (commits, source failures, rewrites).
pub const UNROUTED_EVENTS: &str = "configsync.evt._._.>";

/// The subject an event of `type_name` with the given routing is stored under.
pub fn for_event(
    type_name: &str,
    environment: Option<&str>,
    cluster: Option<&str>,
) -> Result<String, InvalidName> {
    let env = token(environment)?;
    let cluster = token(cluster)?;
    Ok(format!(
        "{ROOT}.evt.{env}.{cluster}.{}",
        type_suffix(type_name)
    ))
}

/// The subject of a dead-letter record written by `consumer`.
pub fn dead_letter(consumer: &str) -> Result<String, InvalidName> {
    Ok(format!("{ROOT}.dlq.{}", Name::new(consumer)?))
}

/// The filter that matches every event of one type.
pub fn type_filter(type_name: &str) -> String {
    format!("{ROOT}.evt.*.*.{}", type_suffix(type_name))
}

/// The filter that matches every event about one environment and its targets.
pub fn environment_filter(environment: &Name) -> String {
    format!("{ROOT}.evt.{environment}.>")
}

/// The filter that matches every event of one domain (`remediation`) about one target.
pub fn target_domain_filter(target: &crate::names::Target, domain: &str) -> String {
    format!(
        "{ROOT}.evt.{}.{}.{}.>",
        target.environment,
        target.cluster,
        type_suffix(domain)
    )
}

/// The filter that matches every event of one domain (`drift`: `drift.detected.v1`,
/// `drift.resolved.v1`, ...) in every environment and cluster.
pub fn domain_filter(domain: &str) -> String {
    format!("{ROOT}.evt.*.*.{}.>", type_suffix(domain))
}

/// `io.configsync.apply.succeeded.v1` → `apply.succeeded.v1`. Types from elsewhere keep their
/// dots as tokens; wildcard characters and whitespace are replaced so they stay one literal.
fn type_suffix(type_name: &str) -> String {
    let suffix = type_name
        .strip_prefix("io.configsync.")
        .unwrap_or(type_name);
    suffix
        .chars()
        .map(|c| {
            if c == '*' || c == '>' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn token(value: Option<&str>) -> Result<String, InvalidName> {
    match value {
        None => Ok(NONE.to_string()),
        Some(v) => Ok(Name::new(v)?.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_scheme() {
        assert_eq!(
            for_event(
                "io.configsync.apply.succeeded.v1",
                Some("prod"),
                Some("eu-1")
            )
            .unwrap(),
            "configsync.evt.prod.eu-1.apply.succeeded.v1"
        );
        assert_eq!(
            for_event("io.configsync.commit.detected.v1", None, None).unwrap(),
            "configsync.evt._._.commit.detected.v1"
        );
        assert_eq!(dead_letter("applier").unwrap(), "configsync.dlq.applier");
        assert_eq!(
            type_filter("io.configsync.drift.detected.v1"),
            "configsync.evt.*.*.drift.detected.v1"
        );
        assert_eq!(domain_filter("drift"), "configsync.evt.*.*.drift.>");
        assert_eq!(domain_filter("a*b"), "configsync.evt.*.*.a_b.>");
        let commit = for_event("io.configsync.commit.detected.v1", None, None).unwrap();
        assert_eq!(UNROUTED_EVENTS, format!("{ROOT}.evt.{NONE}.{NONE}.>"));
        assert!(commit.starts_with(UNROUTED_EVENTS.trim_end_matches('>')));
        assert_eq!(EVERYTHING, format!("{ROOT}.>"));
        assert_eq!(ALL_EVENTS, format!("{ROOT}.evt.>"));
        assert_eq!(ALL_DEAD_LETTERS, format!("{ROOT}.dlq.>"));
    }

    #[test]
    fn hostile_routing_cannot_escape_its_tokens() {
        assert!(for_event("io.configsync.x.y.v1", Some("a.b"), None).is_err());
        assert!(for_event("io.configsync.x.y.v1", Some(">"), None).is_err());
        assert_eq!(
            for_event("io.x.* >", None, None).unwrap(),
            "configsync.evt._._.io.x.___"
        );
    }
}
