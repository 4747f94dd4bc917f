//! The built-in policy library, embedded in the binary: Pod Security Standards (baseline as
//! errors, restricted as warnings), resource requests and limits, pinned image tags and name
//! labels. Packages are `configsync.baseline.*`; every result carries a stable rule id
//! (`baseline.privileged`, ...) and the JSON path of the offending field.

/// (virtual file name, Rego source) of each baseline module. Findings on the baseline name
/// these files, so they read like the user's policy files.
pub(super) const MODULES: &[(&str, &str)] = &[
    ("baseline/lib.rego", include_str!("baseline/lib.rego")),
    (
        "baseline/pod_security.rego",
        include_str!("baseline/pod_security.rego"),
    ),
    (
        "baseline/restricted.rego",
        include_str!("baseline/restricted.rego"),
    ),
    (
        "baseline/resources.rego",
        include_str!("baseline/resources.rego"),
    ),
    ("baseline/images.rego", include_str!("baseline/images.rego")),
    ("baseline/labels.rego", include_str!("baseline/labels.rego")),
];

/// The baseline's set rules, (package, rule). They are evaluated together, as one query
/// (see [`combined_module`]): helpers such as the container list are then computed once
/// per object instead of once per package, which triples the throughput.
pub(super) const RULES: &[(&str, &str)] = &[
    ("configsync.baseline.pod_security", "deny"),
    ("configsync.baseline.restricted", "warn"),
    ("configsync.baseline.resources", "warn"),
    ("configsync.baseline.images", "deny"),
    ("configsync.baseline.labels", "warn"),
];

/// File name of the combined module.
pub(super) const COMBINED_FILE: &str = "baseline/all.rego";

/// The rule of the combined module: an array with the value of each of [`RULES`].
pub(super) const COMBINED_QUERY: &str = "data.configsync.baseline.all.results";

/// The module that evaluates all of [`RULES`] at once.
pub(super) fn combined_module() -> String {
    let rules: Vec<String> = RULES
        .iter()
        .map(|(package, rule)| format!("\tdata.{package}.{rule},\n"))
        .collect();
    format!(
        "package configsync.baseline.all\n\nimport rego.v1\n\nresults := [\n{}]\n",
        rules.concat()
    )
}

/// The kinds any baseline rule can fire on: `workload_kinds` of `baseline/lib.rego` (a test
/// keeps the two equal). Other objects skip the baseline without entering the interpreter,
/// which is most of the cost of a run (Services, ConfigMaps, RBAC, ... are most objects).
pub(super) const KINDS: &[&str] = &[
    "CronJob",
    "DaemonSet",
    "Deployment",
    "Job",
    "Pod",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
];

/// Whether the baseline has anything to say about an object of `kind`.
pub(super) fn applies_to(kind: &str) -> bool {
    KINDS.contains(&kind)
}

/// Whether a policy file belongs to the baseline.
pub(super) fn is_baseline(file: &str) -> bool {
    file == COMBINED_FILE || MODULES.iter().any(|(name, _)| *name == file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_filter_matches_the_rego_workload_kinds() {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(MODULES[0].0.into(), MODULES[0].1.into())
            .unwrap();
        let kinds = engine
            .eval_rule("data.configsync.baseline.lib.workload_kinds".into())
            .unwrap();
        let mut from_rego: Vec<String> = kinds
            .as_set()
            .unwrap()
            .iter()
            .map(|k| k.as_string().unwrap().to_string())
            .collect();
        from_rego.sort();
        assert_eq!(from_rego, KINDS, "baseline/lib.rego and KINDS must agree");
    }
}
