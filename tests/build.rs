//! Marks the end-to-end tests that need helm or kubectl as ignored when it is absent (always
//! set under CI, where the tests then fail naming what is missing): issue 17.

fn main() {
    configsync_prereq::build::tool("has_helm", "helm");
    configsync_prereq::build::tool("has_kubectl", "kubectl");
}
