//! Discovery documents: `/version`, `/api`, `/apis` and the per group/version resource lists.

use crate::registry::{Resource, version_priority};
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// Group name to its versions, most preferred first.
fn groups(resources: &[Resource]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        let versions = out.entry(r.group.clone()).or_default();
        if !versions.contains(&r.version) {
            versions.push(r.version.clone());
        }
    }
    for versions in out.values_mut() {
        versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
    }
    out
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": vs, "preferredVersion": preferred})
}

pub fn group_list(resources: &[Resource]) -> Value {
    let groups: Vec<Value> = groups(resources).iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(resources: &[Resource], name: &str) -> Option<Value> {
    let all = groups(resources);
    let versions = all.get(name)?;
    let mut doc = group_doc(name, versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The APIResourceList of one group/version, or None when nothing is served there.
pub fn resource_list(resources: &[Resource], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = resources.iter().filter(|r| r.group == group && r.version == version).collect();
    if served.is_empty() {
        return None;
    }
    let entries: Vec<Value> = served.iter().flat_map(|r| r.discovery_entries()).collect();
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;

    #[test]
    fn groups_and_lists() {
        let r = builtins();
        let list = group_list(&r);
        let names: Vec<&str> = list["groups"].as_array().into_iter().flatten().filter_map(|g| g["name"].as_str()).collect();
        assert!(names.contains(&"apps"));
        assert!(!names.contains(&""));
        let core = resource_list(&r, "", "v1").expect("core served");
        assert!(core["resources"].as_array().is_some_and(|a| a.iter().any(|x| x["name"] == "configmaps")));
        assert!(resource_list(&r, "apps", "v9").is_none());
        assert_eq!(group(&r, "apps").expect("apps")["preferredVersion"]["version"], "v1");
    }
}
