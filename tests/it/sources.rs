//! What a commit affects is what rendering and deployment depend on: a branch reset back to an
//! earlier commit restores every environment, and a change to a Kustomize base outside
//! `configs/` re-applies the environments that use it.

use configsync_core::event::EventData;

use crate::support::{Pipeline, configmap};

fn color(cm: &str) -> [&str; 5] {
    ["get", "configmap", cm, "-o", "jsonpath={.data.color}"]
}

#[tokio::test]
async fn a_reset_back_to_a_good_commit_restores_every_environment() {
    let p = Pipeline::start(&[
        (
            "configs/dev/web/config.yaml",
            &configmap("settings", "blue"),
        ),
        (
            "configs/prod/web/config.yaml",
            &configmap("settings", "blue"),
        ),
    ])
    .await;
    let good = p.repo.git(&["rev-parse", "HEAD"]);
    p.eventually_live("dev", &color("settings"), "blue").await;
    p.eventually_live("prod", &color("settings"), "blue").await;

    // A bad commit touching both environments, applied everywhere...
    p.repo
        .write("configs/dev/web/config.yaml", &configmap("settings", "bad"));
    p.repo.write(
        "configs/prod/web/config.yaml",
        &configmap("settings", "bad"),
    );
    p.repo.commit("A bad change");
    p.eventually_live("dev", &color("settings"), "bad").await;
    p.eventually_live("prod", &color("settings"), "bad").await;

    // ...then the branch is reset to the good commit (a force-push back). Its own changes
    // (against its parent) touch nothing, and its first announcement is minutes old or less:
    // still, both environments must return to it.
    p.repo.git(&["reset", "-q", "--hard", &good]);
    p.event(
        "the rewrite recorded",
        |e| matches!(&e.data, EventData::SourceRewritten(r) if r.new_sha == good),
    )
    .await;
    p.eventually_live("dev", &color("settings"), "blue").await;
    p.eventually_live("prod", &color("settings"), "blue").await;
    let announced = p
        .all(|e| matches!(&e.data, EventData::CommitDetected(c) if c.sha == good))
        .await;
    assert_eq!(
        announced.len(),
        2,
        "announced at first and again after the reset"
    );
    assert!(matches!(&announced[1].data, EventData::CommitDetected(c) if c.whole_tree));
    p.stop().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH (it renders Kustomize here): run tools/install-kubectl.sh or tools/test.sh"
)]
async fn a_change_to_a_kustomize_base_outside_configs_is_deployed() {
    configsync_prereq::require_tool("kubectl");
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../bases/web\n";
    let p = Pipeline::start(&[
        (
            "bases/web/kustomization.yaml",
            "resources:\n- config.yaml\n",
        ),
        ("bases/web/config.yaml", &configmap("settings", "blue")),
        ("configs/dev/kustomization.yaml", kustomization),
        ("configs/prod/web/config.yaml", &configmap("other", "blue")),
    ])
    .await;
    p.eventually_live("dev", &color("settings"), "blue").await;

    p.repo
        .write("bases/web/config.yaml", &configmap("settings", "green"));
    let changed = p.repo.commit("Base: green");
    p.eventually_live("dev", &color("settings"), "green").await;
    let applied = p
        .event("prod validated again too (its rendering may read the base)", |e| {
            matches!(&e.data, EventData::ValidationPassed(v) if v.environment == "prod" && v.revision == changed)
        })
        .await;
    assert_eq!(applied.revision(), Some(changed.as_str()));
    p.stop().await;
}
