//! Dependencies between apps: an app (`configs/<env>/<app>/`) declares the apps it needs with
//! an `App` document of ConfigSync's own, conventionally in `app.yaml`:
//!
//! ```yaml
//! apiVersion: configsync.io/v1
//! kind: App
//! metadata:
//!   name: api
//! needs: [db]
//! ```
//!
//! It is taken out of the manifests (it is never applied). A need of an app
//! that does not exist, or a cycle, is a finding: never a rollout that waits forever.

use std::collections::{BTreeMap, BTreeSet};

use configsync_core::event::{Finding, Severity};

use crate::manifests::Manifest;

/// The API version of ConfigSync's own documents.
pub const API_VERSION: &str = "configsync.io/v1";

/// The app a file belongs to: the directory right under the environment's, for
/// `configs/<env>/<app>/...` (files at the environment's top level belong to none).
pub fn app_of(file: &str) -> Option<&str> {
    let mut parts = file.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("configs"), Some(_env), Some(app), Some(_file)) => Some(app),
        _ => None,
    }
}

/// The apps of an environment and what each needs (every app with a manifest, needing
/// nothing unless it says so).
pub type AppNeeds = BTreeMap<String, Vec<String>>;

/// Takes the `App` documents out of `manifests` and checks them: returns each app's needs,
/// with findings for what cannot be honoured. Empty when no app declares anything, so that a
/// repository without `App` documents gives the same bundles as before.
pub fn extract(manifests: &mut Vec<Manifest>, findings: &mut Vec<Finding>) -> AppNeeds {
    let mut declared: Vec<Manifest> = Vec::new();
    manifests.retain(|m| {
        let ours = m.object["apiVersion"] == API_VERSION && m.object["kind"] == "App";
        if ours {
            declared.push(m.clone());
        }
        !ours
    });
    if declared.is_empty() {
        return AppNeeds::new();
    }
    let mut needs: AppNeeds = manifests
        .iter()
        .filter_map(|m| app_of(&m.file))
        .map(|app| (app.to_string(), Vec::new()))
        .collect();
    for doc in &declared {
        let Some(app) = app_of(&doc.file) else {
            findings.push(doc.finding(
                Severity::Error,
                "app.place",
                "an App document belongs in its app's directory, configs/<env>/<app>/",
            ));
            continue;
        };
        let listed = match &doc.object["needs"] {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Array(items) => {
                let names: Vec<Option<&str>> = items.iter().map(|v| v.as_str()).collect();
                if names.iter().any(Option::is_none) {
                    findings.push(doc.finding(
                        Severity::Error,
                        "app.needs",
                        "needs is a list of app names",
                    ));
                    continue;
                }
                names.into_iter().flatten().map(str::to_string).collect()
            }
            _ => {
                findings.push(doc.finding(
                    Severity::Error,
                    "app.needs",
                    "needs is a list of app names",
                ));
                continue;
            }
        };
        needs.entry(app.to_string()).or_default().extend(listed);
    }
    let known: BTreeSet<String> = needs.keys().cloned().collect();
    for doc in &declared {
        let Some(app) = app_of(&doc.file) else {
            continue;
        };
        for need in needs.get(app).into_iter().flatten() {
            if !known.contains(need) {
                findings.push(doc.finding(
                    Severity::Error,
                    "app.needs",
                    format!(
                        "app {app} needs {need}, which is not an app of this environment ({})",
                        known.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if let Some(cycle) = cycle_from(app, &needs) {
            findings.push(doc.finding(
                Severity::Error,
                "app.cycle",
                format!(
                    "apps need each other in a cycle: {}; none of them could ever be applied",
                    cycle.join(" → ")
                ),
            ));
        }
    }
    needs
}

/// A path of needs from `start` back to itself, if there is one.
fn cycle_from(start: &str, needs: &AppNeeds) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        needs: &AppNeeds,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in needs.get(at).into_iter().flatten() {
            path.push(next.clone());
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) && walk(next, start, needs, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(start, start, needs, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::load;

    fn outcome(files: &[(&str, &String)]) -> (AppNeeds, Vec<Finding>, usize) {
        let files: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect();
        let mut loaded = load(&files, Default::default());
        let needs = extract(&mut loaded.manifests, &mut loaded.findings);
        (needs, loaded.findings, loaded.manifests.len())
    }

    fn cm(name: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\n")
    }

    fn app(needs: &str) -> String {
        format!("apiVersion: configsync.io/v1\nkind: App\nmetadata:\n  name: x\nneeds: {needs}\n")
    }

    #[test]
    fn app_documents_are_taken_out_and_their_needs_kept() {
        let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n".to_string();
        let (needs, findings, manifests) = outcome(&[
            ("configs/dev/api/app.yaml", &app("[db]")),
            ("configs/dev/api/cm.yaml", &cm("api")),
            ("configs/dev/db/cm.yaml", &cm("db")),
            ("configs/dev/namespace.yaml", &namespace),
        ]);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(manifests, 3, "the App document is not a manifest");
        assert_eq!(needs["api"], ["db"]);
        assert!(needs["db"].is_empty());
    }

    #[test]
    fn without_app_documents_nothing_changes() {
        let (needs, findings, manifests) = outcome(&[("configs/dev/api/cm.yaml", &cm("api"))]);
        assert!(needs.is_empty() && findings.is_empty());
        assert_eq!(manifests, 1);
    }

    #[test]
    fn unknown_needs_cycles_and_misplaced_documents_are_findings() {
        let (_, findings, _) = outcome(&[
            ("configs/dev/a/app.yaml", &app("[b]")),
            ("configs/dev/a/cm.yaml", &cm("a")),
            ("configs/dev/b/app.yaml", &app("[a, ghost]")),
            ("configs/dev/b/cm.yaml", &cm("b")),
            ("configs/dev/app.yaml", &app("[a]")),
            ("configs/dev/c/app.yaml", &app("db")),
        ]);
        let rules: Vec<(&str, &str)> = findings
            .iter()
            .map(|f| (f.rule.as_str(), f.message.as_str()))
            .collect();
        assert!(
            rules
                .iter()
                .any(|(r, m)| *r == "app.needs" && m.contains("needs ghost")),
            "{rules:?}"
        );
        assert!(
            rules
                .iter()
                .any(|(r, m)| *r == "app.cycle" && m.contains("a → b → a")),
            "{rules:?}"
        );
        assert!(rules.iter().any(|(r, _)| *r == "app.place"), "{rules:?}");
        assert!(
            rules
                .iter()
                .any(|(r, m)| *r == "app.needs" && m.contains("list of app names")),
            "{rules:?}"
        );
    }
}
