//! Marks the tests that need the shared corpus, kubectl, gpg or ssh-keygen as ignored when absent (always set
//! under CI, where the tests then fail naming what is missing): issue 17.

fn main() {
    configsync_prereq::build::tool("has_kubectl", "kubectl");
    // People's keys in the approval tests.
    configsync_prereq::build::tool("has_gpg", "gpg");
    configsync_prereq::build::tool("has_ssh_keygen", "ssh-keygen");
    configsync_prereq::build::corpus(
        "has_corpus",
        &["kube-prometheus/manifests", "microservices-demo/kustomize"],
    );
}
