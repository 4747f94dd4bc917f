//! Marks the tests that need the shared corpus or kubectl as ignored when absent (always set
//! under CI, where the tests then fail naming what is missing): issue 17.

fn main() {
    configsync_prereq::build::tool("has_kubectl", "kubectl");
    configsync_prereq::build::corpus(
        "has_corpus",
        &["kube-prometheus/manifests", "microservices-demo/kustomize"],
    );
}
