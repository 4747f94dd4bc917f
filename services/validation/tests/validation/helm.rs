//! Helm charts rendered by a real Helm (Helm's Go SDK; `tools/install-helm-shim.sh` provides a
//! `helm template` over it where no Helm binary is installed) through the validation engine:
//! the shared corpus's chart, per-environment value files, and a template error.

use std::path::{Path, PathBuf};

use configsync_core::event::{Finding, Severity};
use configsync_validation::engine::{self, Checker, Options, Outcome};

fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, text).unwrap();
}

fn validate(root: &Path, path: &str, env: Option<&str>) -> Outcome {
    let checker = Checker::new(Options::default(), &[]).unwrap();
    engine::validate_checkout(&checker, root, &[PathBuf::from(path)], &[], env)
}

fn errors(outcome: &Outcome) -> Vec<&Finding> {
    outcome
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

const CHART: &str = "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.27.3\"\n";

/// A chart whose ConfigMap shows its values, with defaults and a prod override.
fn web_chart(root: &Path) {
    write(root, "charts/web/Chart.yaml", CHART);
    write(
        root,
        "charts/web/values.yaml",
        "color: blue\nlimits:\n  size: small\n  zone: a\n",
    );
    write(
        root,
        "charts/web/values-prod.yaml",
        "color: red\nlimits:\n  size: large\n",
    );
    write(
        root,
        "charts/web/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\n  \
         labels:\n    app.kubernetes.io/name: {{ .Chart.Name }}\n    \
         app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}\n\
         data:\n  color: {{ .Values.color | quote }}\n  size: {{ .Values.limits.size | quote }}\n  \
         zone: {{ .Values.limits.zone | quote }}\n",
    );
    // A partial and notes, which `helm template` does not print as manifests.
    write(
        root,
        "charts/web/templates/_helpers.tpl",
        "{{- define \"web.name\" -}}{{ .Chart.Name }}{{- end -}}\n",
    );
    write(
        root,
        "charts/web/templates/NOTES.txt",
        "Installed {{ include \"web.name\" . }}.\n",
    );
}

/// The ConfigMap's data of a run that rendered exactly one ConfigMap.
fn configmap_data(outcome: &Outcome) -> serde_json::Value {
    assert!(errors(outcome).is_empty(), "{:#?}", outcome.findings);
    let maps: Vec<_> = outcome
        .manifests
        .iter()
        .filter(|m| m.object["kind"] == "ConfigMap")
        .collect();
    assert_eq!(maps.len(), 1, "{:#?}", outcome.manifests);
    assert_eq!(
        outcome.manifests.len(),
        1,
        "notes and partials are no manifests"
    );
    assert_eq!(maps[0].object["metadata"]["name"], "web-settings");
    assert_eq!(
        maps[0].object["metadata"]["labels"]["app.kubernetes.io/version"],
        "1.27.3"
    );
    maps[0].object["data"].clone()
}

#[test]
#[cfg_attr(
    not(all(has_helm, has_corpus)),
    ignore = "needs helm on PATH and ../shared/corpus: run tools/test.sh"
)]
fn the_corpus_chart_renders_and_validates_through_real_helm() {
    configsync_prereq::require_tool("helm");
    let corpus = configsync_prereq::require_corpus("microservices-demo/helm-chart");
    let outcome = validate(&corpus, "microservices-demo/helm-chart", None);
    assert!(errors(&outcome).is_empty(), "{:#?}", errors(&outcome));
    let count = |kind: &str| {
        outcome
            .manifests
            .iter()
            .filter(|m| m.object["kind"] == kind)
            .count()
    };
    assert_eq!(
        (
            count("Deployment"),
            count("Service"),
            count("ServiceAccount")
        ),
        (12, 12, 12)
    );
    assert_eq!(outcome.manifests.len(), 36);
    // Every object is reported on the chart, and the templates really ran: the images carry
    // the chart's appVersion, which no static file of the chart holds next to them.
    assert!(
        outcome
            .manifests
            .iter()
            .all(|m| m.file == "microservices-demo/helm-chart/Chart.yaml")
    );
    let frontend = outcome
        .manifests
        .iter()
        .find(|m| m.object["kind"] == "Deployment" && m.object["metadata"]["name"] == "frontend")
        .expect("the frontend Deployment");
    let image = frontend.object["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(image.ends_with("/frontend:v0.10.6"), "{image}");
    // The checks ran on the rendered objects: the baseline warns about their seccomp profiles.
    assert!(
        outcome
            .findings
            .iter()
            .any(|f| f.rule == "baseline.seccomp-profile")
    );
}

#[test]
#[cfg_attr(
    not(has_helm),
    ignore = "helm is not on PATH: run tools/install-helm-shim.sh or tools/test.sh"
)]
fn a_chart_renders_with_the_values_of_its_environment() {
    configsync_prereq::require_tool("helm");
    let repo = tempfile::tempdir().unwrap();
    web_chart(repo.path());
    // prod: values-prod.yaml over values.yaml, maps merged key by key.
    let prod = configmap_data(&validate(repo.path(), "charts", Some("prod")));
    assert_eq!(
        prod,
        serde_json::json!({"color": "red", "size": "large", "zone": "a"})
    );
    // dev has no value file of its own: the chart's defaults.
    let dev = configmap_data(&validate(repo.path(), "charts", Some("dev")));
    assert_eq!(
        dev,
        serde_json::json!({"color": "blue", "size": "small", "zone": "a"})
    );
}

#[test]
#[cfg_attr(
    not(has_helm),
    ignore = "helm is not on PATH: run tools/install-helm-shim.sh or tools/test.sh"
)]
fn a_template_error_is_a_finding_naming_the_template_and_line() {
    configsync_prereq::require_tool("helm");
    let repo = tempfile::tempdir().unwrap();
    write(repo.path(), "charts/web/Chart.yaml", CHART);
    write(
        repo.path(),
        "charts/web/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n\
         data:\n  tag: {{ required \"set tag in values.yaml\" .Values.tag }}\n",
    );
    let outcome = validate(repo.path(), "charts", Some("prod"));
    assert!(outcome.manifests.is_empty(), "{:#?}", outcome.manifests);
    let errors = errors(&outcome);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let finding = errors[0];
    assert_eq!(finding.rule, "render.failed");
    assert_eq!(finding.file.as_deref(), Some("charts/web/Chart.yaml"));
    assert!(
        finding.message.contains("set tag in values.yaml")
            && finding.message.contains("templates/configmap.yaml:6"),
        "{}",
        finding.message
    );
    assert!(
        !finding.message.contains("configsync-render-"),
        "the scratch copy's path is not shown: {}",
        finding.message
    );
}
