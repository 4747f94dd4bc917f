//! The NATS permissions and the architecture document checked against the catalogue's table
//! of who emits what (`EventData::EMITTERS`): each user of `nats/permissions.conf` may publish
//! exactly the event subjects of the types it emits (and its own dead letters), and the
//! "emits" column of `docs/architecture.md` names exactly those types. Either file drifting
//! from the code fails here.

use std::collections::{BTreeMap, BTreeSet};

use super::{ANY_CONSUMER, EventData};
use crate::subject;

fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The quoted entries of each `PERMISSIONS_<USER> = { publish: { allow: [...] } }` block,
/// by user name (`PERMISSIONS_GIT_WATCHER` is `git-watcher`). Comments are skipped; a
/// `publish: ">"` (admin) gives `[">"]`.
fn publish_allow_lists(conf: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut user: Option<String> = None;
    let mut section = Vec::<String>::new();
    for line in conf.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("PERMISSIONS_")
            .and_then(|rest| rest.strip_suffix("= {"))
        {
            let name = name.trim().to_ascii_lowercase().replace('_', "-");
            out.insert(name.clone(), Vec::new());
            user = Some(name);
            section.clear();
            continue;
        }
        let Some(name) = &user else { continue };
        if line.starts_with('"') {
            if section == ["publish", "allow"] {
                out.get_mut(name)
                    .unwrap()
                    .push(line.trim_matches('"').to_string());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            let (key, value) = (key.trim(), value.trim());
            if let Some(quoted) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                if key == "publish" {
                    out.get_mut(name).unwrap().push(quoted.to_string());
                }
                continue;
            }
            section.push(key.to_string());
            continue;
        }
        if line == "]" || line == "}" {
            section.pop();
        }
    }
    out
}

/// The event types each emitter publishes, from the catalogue.
fn emitted() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (ty, emitter) in EventData::EMITTERS {
        by.entry(*emitter).or_default().insert(*ty);
    }
    by
}

#[test]
fn every_type_has_an_emitter_and_every_service_a_user() {
    for ty in EventData::TYPES {
        assert!(
            EventData::EMITTERS.iter().any(|(t, _)| t == ty),
            "{ty} has no emitter"
        );
    }
    let by = emitted();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        [
            ANY_CONSUMER,
            "applier",
            "auditor",
            "drift-watcher",
            "git-watcher",
            "operator",
            "remediator",
            "validator"
        ]
    );
}

#[test]
fn each_user_publishes_exactly_the_events_it_emits() {
    let lists = publish_allow_lists(&repo_file("nats/permissions.conf"));
    assert_eq!(
        lists.get("admin").map(Vec::as_slice),
        Some(&[">".to_string()][..])
    );
    let by = emitted();
    let users: BTreeSet<&str> = lists
        .keys()
        .map(String::as_str)
        .filter(|u| *u != "admin")
        .collect();
    let emitters: BTreeSet<&str> = by.keys().copied().filter(|e| *e != ANY_CONSUMER).collect();
    assert_eq!(users, emitters, "a NATS user per emitter, and no other");
    for user in users {
        let allowed: BTreeSet<String> = lists[user]
            .iter()
            .filter(|s| s.starts_with(&format!("{}.", subject::ROOT)))
            .cloned()
            .collect();
        let mut expected: BTreeSet<String> =
            by[user].iter().copied().map(subject::type_filter).collect();
        // Services write dead letters under their own consumer name; a person does not.
        if user != "operator" {
            expected.insert(subject::dead_letter(user).unwrap());
        }
        assert_eq!(
            allowed, expected,
            "nats/permissions.conf: the event subjects {user} may publish"
        );
    }
}

#[test]
fn the_architecture_table_names_what_each_service_emits() {
    let doc = repo_file("docs/architecture.md");
    let by = emitted();
    let short = |ty: &str| {
        let name = ty.strip_prefix("io.configsync.").unwrap_or(ty);
        name.rsplit_once(".v").map_or(name, |(n, _)| n).to_string()
    };
    let mut rows = 0;
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | service | consumes | emits |
        let [_, service, _, emits, _] = cells[..] else {
            continue;
        };
        let Some(types) = by.get(service) else {
            continue;
        };
        rows += 1;
        let named: BTreeSet<String> = emits
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        let expected: BTreeSet<String> = types.iter().copied().map(short).collect();
        assert_eq!(
            named, expected,
            "docs/architecture.md: what {service} emits"
        );
    }
    assert_eq!(rows, 7, "a row per service, and one for the operator");
}

#[test]
fn the_parser_reads_nested_lists_and_skips_comments() {
    let conf = "PERMISSIONS_A_B = {\n  publish: {\n    allow: [\n      # c\n      \"x.y\"\n      \"z\"\n    ]\n    deny: [\n      \"no\"\n    ]\n  }\n  subscribe: {\n    allow: [\n      \"s\"\n    ]\n  }\n}\nPERMISSIONS_ADMIN = {\n  publish: \">\"\n  subscribe: \">\"\n}\n";
    let lists = publish_allow_lists(conf);
    assert_eq!(lists["a-b"], ["x.y", "z"]);
    assert_eq!(lists["admin"], [">"]);
}
