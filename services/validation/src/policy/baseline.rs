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

/// Whether a policy file belongs to the baseline.
pub(super) fn is_baseline(file: &str) -> bool {
    file == COMBINED_FILE || MODULES.iter().any(|(name, _)| *name == file)
}
