//! Watching one target: a kube-runtime watcher per kind of desired object (managed objects
//! only), each event and a periodic resync compared with the desired state, drifts reported.

use std::time::Duration;

use configsync_core::cluster::{
    ANNOTATION_REVISION, ClusterApplier, ClusterTarget, FIELD_MANAGER, MANAGED_BY_LABEL,
};
use configsync_core::event::{DriftKind, IgnoredField, ObjectRef};
use configsync_core::ignore::{IgnoreRules, Rule};
use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::Latest;
use crate::attribution;
use crate::compare::{self, pointer};
use crate::desired::Desired;
use crate::report::{Observation, Reporter};

type KindKey = (String, String);
type WatchItem = (
    KindKey,
    Result<watcher::Event<DynamicObject>, watcher::Error>,
);
type Events = BoxStream<'static, WatchItem>;

/// The longest an apply in flight pauses drift reports.
const APPLY_PAUSE_LIMIT: Duration = Duration::from_secs(600);

/// One target's watch loop.
pub struct TargetWatch {
    pub target: ClusterTarget,
    pub allow_exec_auth: bool,
    pub resync: Duration,
    /// The latest applied bundle, replaced when the log says the target changed.
    pub desired: watch::Receiver<Latest>,
    /// True while the applier applies to the target (from the log): nothing is reported then,
    /// and everything is compared again when it is done.
    pub applying: watch::Receiver<Option<std::time::Instant>>,
    pub reporter: Reporter,
    /// The environment's ignore rules (each object's annotation adds its own).
    pub ignore_rules: Vec<Rule>,
    /// Told once, after the first full comparison.
    pub synced: mpsc::Sender<()>,
}

impl TargetWatch {
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (env, cluster) = (
            self.target.environment.to_string(),
            self.target.cluster.to_string(),
        );
        let applier = loop {
            match self.target.client(self.allow_exec_auth).await {
                Ok(client) => break ClusterApplier::new(client),
                Err(e) => {
                    tracing::error!(environment = %env, cluster = %cluster, error = %e, "cannot build a client for the cluster; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(self.resync) => {}
                    }
                }
            }
        };
        let mut synced = Some(self.synced.clone());
        loop {
            let latest = self.desired.borrow_and_update().clone();
            let desired = match &latest {
                Latest::Unknown => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        changed = self.desired.changed() => if changed.is_err() { return },
                    }
                    continue;
                }
                Latest::NotApplied => Desired::default(),
                Latest::Applied(bundle) => match Desired::resolve(&applier, bundle).await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(environment = %env, cluster = %cluster, error = %e, "cannot resolve the desired objects; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(self.resync) => {}
                            _ = self.desired.changed() => {}
                        }
                        continue;
                    }
                },
            };
            // Drifts of objects that left the configuration are closed (not when nothing was
            // ever applied: then there is no revision to close them under).
            if let Latest::Applied(_) = latest
                && let Err(e) = self
                    .reporter
                    .forget_undesired(&|r| desired.objects.contains_key(r), &desired.revision)
                    .await
            {
                tracing::warn!(environment = %env, cluster = %cluster, error = %e, "cannot report drifts of objects no longer desired");
            }
            let mut events = watchers(&applier, &desired, &env, &cluster).await;
            tracing::info!(environment = %env, cluster = %cluster, revision = %desired.revision, objects = desired.objects.len(), "watching the desired objects");
            self.check_all(&applier, &desired, None).await;
            if let Some(tx) = synced.take() {
                let _ = tx.send(()).await;
            }
            let mut resync =
                tokio::time::interval_at(tokio::time::Instant::now() + self.resync, self.resync);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Biased: a new desired state is taken before anything is compared against
                // the old one (an apply's outcome changes both it and `applying`).
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    changed = self.desired.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        break;
                    }
                    _ = resync.tick() => self.check_all(&applier, &desired, None).await,
                    changed = self.applying.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if self.applying.borrow_and_update().is_none() {
                            if self.desired.has_changed().unwrap_or(false) {
                                break;
                            }
                            self.check_all(&applier, &desired, None).await;
                        }
                    }
                    Some((kind, event)) = events.next() => match event {
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                            let reference = reference_of(&kind, &o);
                            let live = serde_json::to_value(&o).unwrap_or(Value::Null);
                            self.check(&desired, &reference, Some(&live)).await;
                        }
                        Ok(watcher::Event::Delete(o)) => {
                            let reference = reference_of(&kind, &o);
                            self.check_gone(&applier, &desired, &reference, o.metadata.resource_version.clone()).await;
                        }
                        // After a (re)list, objects deleted meanwhile are simply absent: compare
                        // every object of the kind.
                        Ok(watcher::Event::InitDone) => self.check_all(&applier, &desired, Some(&kind)).await,
                        Ok(watcher::Event::Init) => {}
                        Err(e) => tracing::warn!(environment = %env, cluster = %cluster, kind = %kind.1, error = %e, "watch interrupted; it resumes with backoff"),
                    },
                }
            }
        }
    }

    /// Compares every desired object (of one kind, or all) with the live one, fetched now.
    async fn check_all(
        &mut self,
        applier: &ClusterApplier,
        desired: &Desired,
        only: Option<&KindKey>,
    ) {
        let of_kind = |r: &&ObjectRef| {
            only.is_none_or(|(api_version, kind)| &r.api_version == api_version && &r.kind == kind)
        };
        for reference in desired.objects.keys().filter(of_kind) {
            match applier.get(reference).await {
                Ok(Some(o)) => {
                    let live = serde_json::to_value(&o).unwrap_or(Value::Null);
                    self.check(desired, reference, Some(&live)).await;
                }
                Ok(None) => self.check_deleted(desired, reference, None).await,
                Err(e) => {
                    tracing::warn!(environment = %self.target.environment, cluster = %self.target.cluster, kind = %reference.kind, name = %reference.name, error = %e, "cannot read the live object");
                }
            }
        }
    }

    /// A watch said the object is gone; it may only have left the label selector (someone
    /// removed the managed-by label), so it is read again before a deletion is reported.
    async fn check_gone(
        &mut self,
        applier: &ClusterApplier,
        desired: &Desired,
        reference: &ObjectRef,
        resource_version: Option<String>,
    ) {
        if !desired.objects.contains_key(reference) {
            return;
        }
        match applier.get(reference).await {
            Ok(Some(o)) => {
                let live = serde_json::to_value(&o).unwrap_or(Value::Null);
                self.check(desired, reference, Some(&live)).await;
            }
            Ok(None) => {
                self.check_deleted(desired, reference, resource_version)
                    .await
            }
            Err(e) => {
                tracing::warn!(environment = %self.target.environment, cluster = %self.target.cluster, kind = %reference.kind, name = %reference.name, error = %e, "cannot confirm a deletion; the resync will");
            }
        }
    }

    async fn check(&mut self, desired: &Desired, reference: &ObjectRef, live: Option<&Value>) {
        let (Some(object), Some(live)) = (desired.objects.get(reference), live) else {
            return;
        };
        if self.apply_in_flight() {
            tracing::debug!(kind = %reference.kind, name = %reference.name, "an apply is in flight; compared when it is done");
            return;
        }
        let Some(observation) = observe(
            reference,
            object,
            live,
            &desired.revision,
            &self.ignore_rules,
        ) else {
            tracing::debug!(kind = %reference.kind, name = %reference.name, "object carries another revision applied by configsync; waiting for its apply to finish");
            return;
        };
        self.report(reference, &desired.revision, observation).await;
    }

    async fn check_deleted(
        &mut self,
        desired: &Desired,
        reference: &ObjectRef,
        resource_version: Option<String>,
    ) {
        if !desired.objects.contains_key(reference) {
            return;
        }
        if self.apply_in_flight() {
            // Most likely a prune of the apply in flight; compared again when it is done.
            tracing::debug!(kind = %reference.kind, name = %reference.name, "deleted during an apply; compared when it is done");
            return;
        }
        let observation = Observation::Drifted {
            kind: DriftKind::Deleted,
            fields: vec![],
            changed_by: None,
            resource_version,
            ignored: vec![],
        };
        self.report(reference, &desired.revision, observation).await;
    }

    /// Whether an apply to the target is in flight: started, with no outcome yet, and not for
    /// longer than [`APPLY_PAUSE_LIMIT`] (an applier that died mid-apply must not silence drift
    /// for ever; the periodic resync then compares again).
    fn apply_in_flight(&self) -> bool {
        self.applying
            .borrow()
            .is_some_and(|since| since.elapsed() < APPLY_PAUSE_LIMIT)
    }

    async fn report(&mut self, reference: &ObjectRef, revision: &str, observation: Observation) {
        if let Err(e) = self
            .reporter
            .observe(reference, revision, observation)
            .await
        {
            // Not recorded as reported: the next event or resync tries again.
            tracing::warn!(environment = %self.target.environment, cluster = %self.target.cluster, kind = %reference.kind, name = %reference.name, error = %e, "cannot write the drift event");
        }
    }
}

/// What the live object says about its desired counterpart, or `None` while ConfigSync itself
/// is applying another revision to it.
///
/// The revision annotation names the revision that last *changed* the object (the applier
/// leaves unchanged objects alone), so it is not compared (`desired` carries none). An apply
/// in flight shows as differences that `configsync` itself wrote under another revision's
/// annotation; anything someone else changed, or removed, is drift.
///
/// Fields an ignore rule covers (the environment's `rules` and the object's annotation) are
/// not drift: listed as ignored when something else drifted, in sync when nothing else did.
pub fn observe(
    reference: &ObjectRef,
    desired: &Value,
    live: &Value,
    revision: &str,
    rules: &[Rule],
) -> Option<Observation> {
    let mut fields = compare::diff(desired, live);
    let mut ignored = Vec::new();
    if !fields.is_empty() {
        let (rules, errors) = IgnoreRules::for_object(rules, desired);
        for e in errors {
            tracing::debug!(kind = %reference.kind, name = %reference.name, error = %e, "ignore rule of the object left out");
        }
        if !rules.is_empty() {
            fields.retain(|f| {
                let owners = attribution::owners(live, &f.path);
                let Some(rule) = rules.matching(&f.path, &owners) else {
                    return true;
                };
                ignored.push(IgnoredField {
                    path: f.path.clone(),
                    rule: rule.to_string(),
                });
                false
            });
        }
    }
    if fields.is_empty() {
        return Some(Observation::InSync);
    }
    let live_revision = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ANNOTATION_REVISION))
        .and_then(Value::as_str);
    if live_revision.is_some_and(|r| r != revision) {
        let ours = |path: &str| {
            attribution::owners(live, path)
                .iter()
                .any(|m| m == FIELD_MANAGER)
        };
        let annotation = pointer(&["metadata", "annotations", ANNOTATION_REVISION]);
        if ours(&annotation) && fields.iter().all(|f| ours(&f.path)) {
            return None;
        }
    }
    let paths: Vec<String> = fields.iter().map(|f| f.path.clone()).collect();
    let changed_by = attribution::changed_by(live, &paths);
    // Before anything leaves this function: a Secret's values, and credentials of other
    // kinds (a ConfigMap's `password`, a container's `DB_PASSWORD`), never reach an event.
    configsync_core::redact::mask_drift(reference, &mut fields);
    let resource_version = live
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    Some(Observation::Drifted {
        kind: DriftKind::Modified,
        fields,
        changed_by,
        resource_version,
        ignored,
    })
}

fn reference_of(kind: &KindKey, o: &DynamicObject) -> ObjectRef {
    ObjectRef {
        api_version: kind.0.clone(),
        kind: kind.1.clone(),
        namespace: o.metadata.namespace.clone(),
        name: o.metadata.name.clone().unwrap_or_default(),
    }
}

/// One watcher per kind of the desired objects, over managed objects only, merged. A kind the
/// cluster cannot describe is left to the periodic resync.
async fn watchers(applier: &ClusterApplier, desired: &Desired, env: &str, cluster: &str) -> Events {
    let selector = format!("{}={}", MANAGED_BY_LABEL.0, MANAGED_BY_LABEL.1);
    let mut streams = Vec::new();
    for (api_version, kind) in desired.kinds() {
        let (group, version) = api_version
            .split_once('/')
            .unwrap_or(("", api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let resource = match kube::discovery::pinned_kind(applier.client(), &gvk).await {
            Ok((resource, _)) => resource,
            Err(e) => {
                tracing::warn!(environment = env, cluster, kind = %kind, error = %e, "cannot discover the kind; relying on resync");
                continue;
            }
        };
        let api: Api<DynamicObject> = Api::all_with(applier.client().clone(), &resource);
        let key: KindKey = (api_version.clone(), kind.clone());
        let stream = watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .map(move |event| (key.clone(), event));
        streams.push(stream.boxed());
    }
    futures::stream::select_all(streams).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use configsync_core::redact::REDACTED;
    use serde_json::json;

    fn reference(kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some("default".into()),
            name: "a".into(),
        }
    }

    fn object(kind: &str, revision: &str, value: &str, revision_owner: &str) -> Value {
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "a", "namespace": "default", "resourceVersion": "9",
            "annotations": {ANNOTATION_REVISION: revision},
            "managedFields": [
                {"manager": revision_owner, "time": "2026-11-26T06:00:00Z", "fieldsV1": {"f:metadata": {"f:annotations": {"f:configsync.io/revision": {}}}}},
                {"manager": "kubectl-edit", "time": "2026-11-26T06:01:00Z", "fieldsV1": {"f:data": {"f:key": {}}}}
            ]}, "data": {"key": value}})
    }

    /// The desired object as `Desired::resolve` keeps it: without the revision annotation.
    fn desired(value: &str) -> Value {
        let mut o = object("ConfigMap", "r1", value, "configsync");
        o["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(ANNOTATION_REVISION);
        o
    }

    fn owned_by_configsync(mut live: Value) -> Value {
        live["metadata"]["managedFields"] = json!([{"manager": "configsync", "time": "2026-11-26T06:00:00Z",
            "fieldsV1": {"f:metadata": {"f:annotations": {"f:configsync.io/revision": {}}}, "f:data": {"f:key": {}}}}]);
        live
    }

    #[test]
    fn another_revision_applied_by_configsync_is_an_apply_in_flight_not_drift() {
        let live = owned_by_configsync(object("ConfigMap", "r2", "two", "configsync"));
        assert_eq!(
            observe(&reference("ConfigMap"), &desired("one"), &live, "r1", &[]),
            None
        );
    }

    #[test]
    fn an_object_last_changed_by_an_older_revision_is_in_sync_and_its_drift_is_seen() {
        // Unchanged since r0: the applier did not rewrite it for r1.
        let live = owned_by_configsync(object("ConfigMap", "r0", "one", "configsync"));
        assert_eq!(
            observe(&reference("ConfigMap"), &desired("one"), &live, "r1", &[]),
            Some(Observation::InSync)
        );
        // Someone else changed it since: drift, whatever its revision annotation says.
        let live = object("ConfigMap", "r0", "two", "configsync");
        let Some(Observation::Drifted {
            fields,
            changed_by,
            resource_version,
            ..
        }) = observe(&reference("ConfigMap"), &desired("one"), &live, "r1", &[])
        else {
            panic!("expected drift")
        };
        assert_eq!(fields[0].path, "/data/key");
        assert_eq!(changed_by.as_deref(), Some("kubectl-edit"));
        assert_eq!(resource_version.as_deref(), Some("9"));
    }

    #[test]
    fn secret_drift_is_attributed_and_redacted() {
        let desired = object("Secret", "r1", "c2VjcmV0", "configsync");
        let live = object("Secret", "r1", "b3RoZXI=", "configsync");
        let Some(Observation::Drifted {
            fields, changed_by, ..
        }) = observe(&reference("Secret"), &desired, &live, "r1", &[])
        else {
            panic!("expected drift")
        };
        assert_eq!(changed_by.as_deref(), Some("kubectl-edit"));
        assert_eq!(fields[0].desired, Some(json!(REDACTED)));
        assert_eq!(fields[0].live, Some(json!(REDACTED)));
        assert_eq!(
            observe(&reference("Secret"), &desired, &desired, "r1", &[]),
            Some(Observation::InSync)
        );
    }

    #[test]
    fn fields_an_ignore_rule_covers_are_not_drift_and_are_listed_beside_real_drift() {
        let live = object("ConfigMap", "r1", "two", "configsync");
        let by_manager: Vec<Rule> = vec!["manager:kubectl-edit".parse().unwrap()];
        assert_eq!(
            observe(
                &reference("ConfigMap"),
                &desired("one"),
                &live,
                "r1",
                &by_manager
            ),
            Some(Observation::InSync),
            "kubectl-edit owns /data/key"
        );
        let mut annotated = desired("one");
        annotated["metadata"]["annotations"]["configsync.io/ignore-drift"] = json!("/data/key");
        annotated["data"]["other"] = json!("x");
        let mut live = live;
        live["metadata"]["annotations"]["configsync.io/ignore-drift"] = json!("/data/key");
        let Some(Observation::Drifted {
            fields, ignored, ..
        }) = observe(&reference("ConfigMap"), &annotated, &live, "r1", &[])
        else {
            panic!("/data/other is drift")
        };
        assert_eq!(fields.len(), 1);
        assert_eq!(fields[0].path, "/data/other");
        assert_eq!(ignored.len(), 1);
        assert_eq!(
            (ignored[0].path.as_str(), ignored[0].rule.as_str()),
            ("/data/key", "/data/key")
        );
    }

    #[test]
    fn credential_drift_of_a_configmap_is_masked_and_the_rest_shown() {
        let mut desired = desired("blue");
        desired["data"]["api_token"] = json!("t-desired");
        let mut live = object("ConfigMap", "r1", "red", "configsync");
        live["data"]["api_token"] = json!("t-live");
        let Some(Observation::Drifted { fields, .. }) =
            observe(&reference("ConfigMap"), &desired, &live, "r1", &[])
        else {
            panic!("expected drift")
        };
        let shown: Vec<_> = fields
            .iter()
            .map(|f| (f.path.as_str(), f.desired.clone(), f.live.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "/data/api_token",
                    Some(json!(REDACTED)),
                    Some(json!(REDACTED))
                ),
                ("/data/key", Some(json!("blue")), Some(json!("red"))),
            ]
        );
    }
}
