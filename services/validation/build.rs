//! Marks the tests that need kubectl, helm or the shared corpus as ignored when they are
//! absent (always set under CI, where the tests then fail naming what is missing): issue 17.

fn main() {
    configsync_prereq::build::tool("has_kubectl", "kubectl");
    configsync_prereq::build::tool("has_helm", "helm");
    configsync_prereq::build::corpus(
        "has_corpus",
        &[
            "kube-prometheus/manifests",
            "microservices-demo/release/kubernetes-manifests.yaml",
            "microservices-demo/kustomize",
            "microservices-demo/helm-chart",
        ],
    );
}
