//! `reference.hpa-target`: a HorizontalPodAutoscaler scales a workload (kind and name) in its
//! own namespace.

use configsync_core::event::Finding;

use super::{Index, at, group, missing, text};
use crate::manifests::Manifest;

pub(super) fn check(m: &Manifest, index: &Index, out: &mut Vec<Finding>) {
    if m.reference.kind != "HorizontalPodAutoscaler"
        || group(&m.reference.api_version) != "autoscaling"
    {
        return;
    }
    let Some(target) = at(&m.object, &["spec", "scaleTargetRef"]) else {
        return;
    };
    let (Some(kind), Some(name)) = (text(target.get("kind")), text(target.get("name"))) else {
        return;
    };
    // apiVersion is optional in scaleTargetRef; without it any group's kind matches.
    let target_group = text(target.get("apiVersion")).map(group);
    if !index.exists(target_group, kind, index.namespace_of(m), name) {
        out.push(missing(
            m,
            "reference.hpa-target",
            ".spec.scaleTargetRef.name".into(),
            kind,
            name,
        ));
    }
}
