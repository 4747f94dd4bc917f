//! One revision rolled out to one target: a server-side dry run of every object (nothing is
//! written if the API refuses any), then level by level (Namespaces, CRDs until established,
//! RBAC, config, Services, workloads, the rest; `depends-on` edges) only the objects whose
//! dry-run result differs from the live object, then prune behind the guard, then health.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use configsync_core::cluster::health::needs_status;
use configsync_core::cluster::{
    ApplyError, ClusterApplier, ClusterTarget, Parts, declared_match, mark, may_prune, object_ref,
    would_change,
};
use configsync_core::event::{
    ApplyCounts, ApplyFailed, ApplyStarted, ApplySucceeded, ObjectAction, ObjectRef, ObjectResult,
    PruneCompleted, PruneHeld, ResourcePruned,
};
use configsync_core::fold::TargetState;
use configsync_core::log::HandlerError;
use configsync_core::log::bundles::BundleApp;
use configsync_core::order::{kind_rank, levels};
use futures::StreamExt;
use serde_json::Value;

use crate::declared::{Key, Summary};
use crate::handler::{Applier, Cause};

/// Why a revision is being rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RolloutKind {
    /// The newest validated revision.
    Forward,
    /// The revision the environment is pinned to.
    Rollback,
}

pub(crate) struct Rollout<'a> {
    pub applier: &'a Applier,
    pub target: &'a ClusterTarget,
    pub revision: String,
    pub bundle_digest: String,
    /// The target's state before this rollout.
    pub state: TargetState,
    pub cause: Cause<'a>,
    pub kind: RolloutKind,
}

/// Why a rollout stopped early.
enum Stop {
    /// The cluster could not be reached: the event is retried.
    Unreachable(String),
    /// The API refused objects: reported, not retried until a new revision.
    Refused {
        reason: String,
        results: Vec<ObjectResult>,
    },
    /// A newer decision for the environment arrived while apps waited for the apps they
    /// need: the rollout stops without a verdict and a reconcile after that decision resumes.
    GaveWay,
}

/// How many requests' futures exist at once (`concurrency` of them run): futures are built
/// before they are streamed, since a stream of closures over borrowed data makes the handler's
/// future lose `Send` (rust-lang/rust#102211), and 10,000 of them at once would hold tens of
/// megabytes. Results stay in bundle order (`buffered`).
const CHUNK: usize = 256;

/// How many kinds are listed at once when looking for unchanged objects: two overlap the
/// cluster's work with the applier's; more only holds more pages in memory.
const LISTS_AT_ONCE: usize = 2;

/// How long a CRD may take to become Established before the rollout fails.
const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);

impl Rollout<'_> {
    fn env(&self) -> &str {
        self.target.environment.as_str()
    }

    fn cluster(&self) -> &str {
        self.target.cluster.as_str()
    }

    pub async fn run(self) -> Result<(), HandlerError> {
        // The previous revision's health watch is moot, and would hold its reads meanwhile.
        self.applier.health.cancel(&self.target.target());
        let bundle = self.applier.bundles.get_bundle(&self.bundle_digest).await?;
        // Summarised before the objects are marked; kept for the prune, the health watch
        // and the next rollout of this target.
        let summary = Arc::new(Summary::of(&bundle.objects));
        self.applier
            .summaries
            .keep(&self.bundle_digest, summary.clone());
        let stages = bundle.stages();
        let apps = bundle.apps;
        let objects: Vec<Value> = bundle
            .objects
            .into_iter()
            .map(|mut o| {
                mark(&mut o, self.env(), &self.revision);
                o
            })
            .collect();
        let started = ApplyStarted {
            environment: self.env().into(),
            cluster: self.cluster().into(),
            revision: self.revision.clone(),
            bundle_digest: self.bundle_digest.clone(),
            objects: objects.len() as u32,
        };
        self.applier.emit(&started, self.cause, &[]).await?;
        let clock = Instant::now();
        let cluster = match self.applier.appliers.get(self.target).await {
            Ok(c) => c,
            Err(e) => {
                // A broken kubeconfig will not fix itself: report it, do not retry forever.
                tracing::error!(environment = self.env(), cluster = self.cluster(), error = %e, "cannot build a client for the cluster");
                return self.failed(e.to_string(), false, vec![]).await;
            }
        };
        match self
            .apply(&cluster, &objects, &summary, &stages, &apps)
            .await
        {
            Ok(mut results) => {
                let (pruned, held) = match self.prune(&cluster, &summary).await {
                    Ok(p) => p,
                    Err(Stop::Unreachable(reason)) => return self.unreachable(reason).await,
                    Err(Stop::Refused { reason, results }) => {
                        return self.failed(reason, false, results).await;
                    }
                    Err(Stop::GaveWay) => return Ok(()),
                };
                let mut counts = ApplyCounts {
                    pruned,
                    ..Default::default()
                };
                for r in &results {
                    match r.action {
                        ObjectAction::Created => counts.created += 1,
                        ObjectAction::Configured => counts.configured += 1,
                        _ => counts.unchanged += 1,
                    }
                }
                results.retain(|r| r.action != ObjectAction::Unchanged);
                let truncated = results.len() > ApplySucceeded::MAX_RESULTS;
                results.truncate(ApplySucceeded::MAX_RESULTS);
                let ok = ApplySucceeded {
                    environment: self.env().into(),
                    cluster: self.cluster().into(),
                    revision: self.revision.clone(),
                    bundle_digest: self.bundle_digest.clone(),
                    results,
                    duration_ms: clock.elapsed().as_millis() as u64,
                    counts,
                    results_truncated: truncated,
                };
                tracing::info!(environment = self.env(), cluster = self.cluster(), revision = %self.revision, created = counts.created, configured = counts.configured, unchanged = counts.unchanged, pruned = counts.pruned, "applied");
                self.applier.emit(&ok, self.cause, &[]).await?;
                if let Some(held) = held {
                    self.applier.emit(&held, self.cause, &[]).await?;
                }
                self.applier.health.watch(
                    self.target,
                    &self.revision,
                    &self.bundle_digest,
                    self.cause,
                    self.kind,
                );
                Ok(())
            }
            Err(Stop::Unreachable(reason)) => self.unreachable(reason).await,
            Err(Stop::Refused { reason, results }) => self.failed(reason, false, results).await,
            Err(Stop::GaveWay) => Ok(()),
        }
    }

    async fn unreachable(&self, reason: String) -> Result<(), HandlerError> {
        tracing::warn!(environment = self.env(), cluster = self.cluster(), %reason, "cluster unreachable; the change waits");
        self.failed(
            format!("cluster unreachable, will retry: {reason}"),
            true,
            vec![],
        )
        .await?;
        Err(HandlerError::Transient(format!(
            "{}: {reason}",
            self.target.target()
        )))
    }

    async fn failed(
        &self,
        reason: String,
        transient: bool,
        mut results: Vec<ObjectResult>,
    ) -> Result<(), HandlerError> {
        results.truncate(ApplySucceeded::MAX_RESULTS);
        let failed = ApplyFailed {
            environment: self.env().into(),
            cluster: self.cluster().into(),
            revision: self.revision.clone(),
            bundle_digest: self.bundle_digest.clone(),
            reason,
            transient,
            results,
        };
        self.applier
            .emit(
                &failed,
                self.cause,
                &[if transient { "transient" } else { "final" }],
            )
            .await
    }

    /// Dry run of everything, then the writes, level by level; where apps depend on others,
    /// stage by stage (`stages`, one per object), each once the one before is healthy.
    async fn apply(
        &self,
        cluster: &Arc<ClusterApplier>,
        objects: &[Value],
        summary: &Summary,
        stages: &[u32],
        apps: &BTreeMap<String, BundleApp>,
    ) -> Result<Vec<ObjectResult>, Stop> {
        let order = levels(objects).map_err(|e| Stop::Refused {
            reason: format!("no apply order: {e}"),
            results: vec![],
        })?;
        let creates_namespace: HashSet<&str> = objects
            .iter()
            .filter(|o| o["kind"] == "Namespace")
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        let defines_kind: HashSet<(&str, &str)> = objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .filter_map(|o| {
                Some((
                    o["spec"]["group"].as_str()?,
                    o["spec"]["names"]["kind"].as_str()?,
                ))
            })
            .collect();
        // A dry run cannot succeed for an object whose namespace or CRD this same revision
        // creates: such objects are dry-run again right before their level is written.
        let deferrable = |o: &Value, e: &ApplyError| -> bool {
            let ApplyError::Refused { code: 404, .. } = e else {
                return false;
            };
            let in_new_namespace = o["metadata"]["namespace"]
                .as_str()
                .is_some_and(|ns| creates_namespace.contains(ns));
            let group = o["apiVersion"]
                .as_str()
                .and_then(|v| v.split_once('/'))
                .map(|(g, _)| g)
                .unwrap_or_default();
            let of_new_kind = o["kind"]
                .as_str()
                .is_some_and(|k| defines_kind.contains(&(group, k)));
            in_new_namespace || of_new_kind
        };

        let concurrency = self.applier.settings.concurrency.max(1);
        let mut plans: Vec<Option<Plan>> = self.settled(cluster, objects, summary).await?;
        let unplanned: Vec<usize> = (0..objects.len()).filter(|i| plans[*i].is_none()).collect();
        let mut planned: Vec<(usize, Result<Plan, ApplyError>)> = Vec::new();
        for chunk in unplanned.chunks(CHUNK) {
            let planning: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let cluster = cluster.clone();
                    let object = &objects[i];
                    async move { (i, plan(&cluster, object).await) }
                })
                .collect();
            planned.extend(
                futures::stream::iter(planning)
                    .buffered(concurrency)
                    .collect::<Vec<_>>()
                    .await,
            );
        }
        let mut refused = Vec::new();
        for (i, plan) in planned {
            match plan {
                Ok(p) => plans[i] = Some(p),
                Err(e) if e.is_transient() => return Err(Stop::Unreachable(e.to_string())),
                Err(e) if deferrable(&objects[i], &e) => {}
                Err(e) => refused.push(result(&objects[i], ObjectAction::Failed, Some(&e))),
            }
        }
        if !refused.is_empty() {
            return Err(Stop::Refused {
                reason: format!(
                    "the dry run refused {} of {} objects, nothing was written: {}",
                    refused.len(),
                    objects.len(),
                    refusals(&refused)
                ),
                results: refused,
            });
        }

        let mut results = Vec::with_capacity(objects.len());
        let last_stage = stages.iter().copied().max().unwrap_or(0);
        for stage in 0..=last_stage {
            for level in &order {
                let level: Vec<usize> = level
                    .iter()
                    .copied()
                    .filter(|&i| stages.get(i).copied().unwrap_or(0) == stage)
                    .collect();
                if level.is_empty() {
                    continue;
                }
                let mut written: Vec<Result<ObjectResult, ApplyError>> = Vec::new();
                // What is known unchanged needs no request (at 10,000 objects, building a
                // future each would cost more than the rest of an unchanged rollout).
                let (unchanged, level): (Vec<usize>, Vec<usize>) = level
                    .into_iter()
                    .partition(|&i| plans[i].as_ref().is_some_and(|p| !p.changes));
                results.extend(
                    unchanged
                        .iter()
                        .map(|&i| result(&objects[i], ObjectAction::Unchanged, None)),
                );
                for chunk in level.chunks(CHUNK) {
                    let writing: Vec<_> = chunk
                        .iter()
                        .map(|&i| {
                            let cluster = cluster.clone();
                            let known = plans[i].clone();
                            let object = &objects[i];
                            async move { write(&cluster, object, known).await }
                        })
                        .collect();
                    written.extend(
                        futures::stream::iter(writing)
                            .buffered(concurrency)
                            .collect::<Vec<_>>()
                            .await,
                    );
                }
                let mut failed = Vec::new();
                for w in written {
                    match w {
                        Ok(r) => results.push(r),
                        Err(e) if e.is_transient() => return Err(Stop::Unreachable(e.to_string())),
                        Err(e) => failed.push(e),
                    }
                }
                if !failed.is_empty() {
                    // Only deferred objects can fail here (their namespace or CRD came with the
                    // revision); what came before is written, what comes after is not.
                    let reason = failed
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(Stop::Refused {
                        reason: format!(
                            "{} objects refused after their namespace or definition was created; later levels not applied: {reason}",
                            failed.len()
                        ),
                        results,
                    });
                }
                for &i in &level {
                    if objects[i]["kind"] == "CustomResourceDefinition" {
                        wait_established(cluster, &objects[i]).await?;
                    }
                }
            }
            if stage < last_stage {
                self.upstream_ready(cluster, objects, stages, apps, stage, &results)
                    .await?;
            }
        }
        Ok(results)
    }

    /// Waits until the objects of `stage` are healthy: the apps of later stages need them.
    /// If they do not become healthy in the health timeout, the later apps are not applied and
    /// the apply fails saying which app waits for which.
    async fn upstream_ready(
        &self,
        cluster: &Arc<ClusterApplier>,
        objects: &[Value],
        stages: &[u32],
        apps: &BTreeMap<String, BundleApp>,
        stage: u32,
        results: &[ObjectResult],
    ) -> Result<(), Stop> {
        let pending: Vec<ObjectRef> = objects
            .iter()
            .enumerate()
            .filter(|(i, o)| stages.get(*i).copied().unwrap_or(0) == stage && needs_status(o))
            .filter_map(|(_, o)| object_ref(o))
            .collect();
        let deadline = Instant::now() + self.applier.settings.health_timeout;
        let give_way = self.applier.give_way_signal(self.env()).await;
        let waited = tokio::select! {
            waited = crate::health::wait_ready(cluster, pending, deadline) => waited,
            () = give_way.cancelled() => {
                tracing::info!(environment = self.env(), cluster = self.cluster(), revision = %self.revision, "a newer decision arrived while apps waited; this rollout gives way");
                return Err(Stop::GaveWay);
            }
        };
        let Err(unhealthy) = waited else {
            return Ok(());
        };
        let stage_of = |app: &BundleApp| {
            app.objects
                .first()
                .and_then(|&i| stages.get(i as usize).copied())
                .unwrap_or(0)
        };
        let held: Vec<String> = apps
            .iter()
            .filter(|(_, a)| stage_of(a) > stage)
            .map(|(name, a)| format!("{name} (needs {})", a.needs.join(", ")))
            .collect();
        let why: Vec<String> = unhealthy
            .iter()
            .take(3)
            .map(|u| format!("{} {}: {}", u.object.kind, u.object.name, u.reason))
            .collect();
        tracing::warn!(environment = self.env(), cluster = self.cluster(), revision = %self.revision, held = ?held, "apps held: what they need is not healthy");
        Err(Stop::Refused {
            reason: format!(
                "apps held, not applied: {}; what they need is not healthy on {} ({})",
                held.join(", "),
                self.revision,
                why.join("; ")
            ),
            results: results.to_vec(),
        })
    }

    /// The objects that need neither a dry run nor a write: declared exactly as in the
    /// deployed revision (so ConfigSync already owns exactly these fields) and, in the live
    /// object, still at those values. Read with one list per kind, so re-applying an unchanged
    /// revision of 10,000 objects costs a handful of requests. Everything else is planned
    /// with a dry run.
    async fn settled(
        &self,
        cluster: &Arc<ClusterApplier>,
        objects: &[Value],
        summary: &Summary,
    ) -> Result<Vec<Option<Plan>>, Stop> {
        let mut plans = vec![None; objects.len()];
        let Some(deployed) = &self.state.deployed_bundle else {
            return Ok(plans);
        };
        let before = match self.applier.summaries.get(deployed).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(bundle = %deployed, error = %e, "cannot read the deployed bundle; every object is dry-run");
                return Ok(plans);
            }
        };
        let before: HashMap<Key, &[u8; 32]> = before
            .objects
            .iter()
            .map(|d| (Key::of(&d.reference), &d.digest))
            .collect();
        // The objects declared as before, by the key the live object has (its effective
        // namespace: `default` when none is named).
        let mut same: HashMap<Key, usize> = HashMap::new();
        let mut kinds: HashMap<(&str, &str), bool> = HashMap::new();
        for declared in &summary.objects {
            let key = Key::of(&declared.reference);
            if before.get(&key) != Some(&&declared.digest) {
                continue;
            }
            let reference = &declared.reference;
            let kind = (reference.api_version.as_str(), reference.kind.as_str());
            let namespaced = match kinds.get(&kind) {
                Some(&n) => n,
                None => match cluster.api_for(reference).await {
                    Ok((_, namespace)) => *kinds.entry(kind).or_insert(namespace.is_some()),
                    // A kind not served yet (its CRD comes with this revision): dry-run it.
                    Err(_) => continue,
                },
            };
            let namespace = namespaced.then(|| {
                reference
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into())
            });
            same.insert(Key { namespace, ..key }, declared.index);
        }
        drop(before);
        // One list per kind, two kinds at once (the cluster serialises one page while the
        // applier parses another); each live object is compared as it comes and dropped.
        let same = &same;
        let lists: Vec<_> = kinds
            .into_keys()
            .map(|(api_version, kind)| {
                let cluster = cluster.clone();
                async move {
                    let mut matched = Vec::new();
                    let listed = cluster
                        .for_each_managed(api_version, kind, Parts::Declared, |live| {
                            if let Some(&i) = Key::of_value(&live).and_then(|k| same.get(&k))
                                && declared_match(&objects[i], &live)
                            {
                                matched.push(i);
                            }
                        })
                        .await;
                    listed.map(|()| matched)
                }
            })
            .collect();
        let listed: Vec<_> = futures::stream::iter(lists)
            .buffer_unordered(LISTS_AT_ONCE)
            .collect()
            .await;
        for matched in listed {
            match matched {
                Ok(matched) => {
                    for i in matched {
                        plans[i] = Some(Plan {
                            exists: true,
                            changes: false,
                        });
                    }
                }
                Err(e) if e.is_transient() => return Err(Stop::Unreachable(e.to_string())),
                // Refused (say, a kind whose CRD this revision changes): dry-run them.
                Err(_) => {}
            }
        }
        tracing::debug!(
            environment = self.env(),
            cluster = self.cluster(),
            settled = plans.iter().filter(|p| p.is_some()).count(),
            objects = objects.len(),
            "objects unchanged since the deployed revision"
        );
        Ok(plans)
    }

    /// Deletes the objects the target's earlier bundles had and this one has not, behind the
    /// guard. Returns how many were deleted, and the hold to record when the guard stopped it.
    async fn prune(
        &self,
        cluster: &Arc<ClusterApplier>,
        summary: &Summary,
    ) -> Result<(u32, Option<PruneHeld>), Stop> {
        let keep: HashSet<Key> = summary
            .objects
            .iter()
            .map(|d| Key::of(&d.reference))
            .collect();
        let (candidates, inventory, bundles) = self.leftovers(&keep).await?;
        if candidates.is_empty() {
            return Ok((0, None));
        }
        let share = candidates.len() as f64 / inventory.max(1) as f64;
        let all = candidates.len() >= inventory;
        if all || share > self.applier.settings.prune_max_share {
            let reason = if all {
                format!(
                    "the revision would delete all {inventory} objects of the target; approve with `configsync prune approve`"
                )
            } else {
                format!(
                    "the revision would delete {} of {inventory} objects ({:.0}%, more than the allowed {:.0}%); approve with `configsync prune approve`",
                    candidates.len(),
                    share * 100.0,
                    self.applier.settings.prune_max_share * 100.0
                )
            };
            tracing::warn!(environment = self.env(), cluster = self.cluster(), revision = %self.revision, %reason, "prune held");
            return Ok((
                0,
                Some(PruneHeld {
                    environment: self.env().into(),
                    cluster: self.cluster().into(),
                    revision: self.revision.clone(),
                    would_delete: candidates.len() as u32,
                    inventory: inventory as u32,
                    objects: candidates.iter().take(100).cloned().collect(),
                    held_bundles: bundles,
                    reason,
                }),
            ));
        }
        self.delete(cluster, candidates).await.map(|n| (n, None))
    }

    /// Deletes what a hold kept, after a person approved it.
    /// Deletes what the prune guard held back, once `approved_by` allowed it, and records
    /// `prune.completed`.
    pub async fn prune_held(self, approved_by: &str) -> Result<(), HandlerError> {
        let cluster = match self.applier.appliers.get(self.target).await {
            Ok(c) => c,
            Err(e) => return Err(HandlerError::Terminal(e.to_string())),
        };
        let summary = self.applier.summaries.get(&self.bundle_digest).await?;
        let keep: HashSet<Key> = summary
            .objects
            .iter()
            .map(|d| Key::of(&d.reference))
            .collect();
        let result = match self.leftovers(&keep).await {
            Ok((candidates, _, _)) => self.delete(&cluster, candidates).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(n) => {
                tracing::info!(environment = self.env(), cluster = self.cluster(), revision = %self.revision, pruned = n, "approved prune done");
                let completed = PruneCompleted {
                    environment: self.env().to_string(),
                    cluster: self.cluster().to_string(),
                    revision: self.revision.clone(),
                    deleted: n,
                    approved_by: approved_by.to_string(),
                };
                self.applier
                    .emit_as(
                        &completed,
                        self.cause,
                        &["prune-completed"],
                        Some(approved_by),
                    )
                    .await
            }
            Err(Stop::Unreachable(reason)) => Err(HandlerError::Transient(reason)),
            Err(Stop::Refused { reason, .. }) => Err(HandlerError::Terminal(reason)),
            Err(Stop::GaveWay) => Ok(()),
        }
    }

    /// The objects of the target's inventory bundles that `keep` does not have, how many
    /// objects the inventory held, and the bundles read.
    async fn leftovers(
        &self,
        keep: &HashSet<Key>,
    ) -> Result<(Vec<ObjectRef>, usize, Vec<String>), Stop> {
        let mut bundles: BTreeSet<String> = self.state.inventory_bundles.clone();
        bundles.extend(self.state.deployed_bundle.iter().cloned());
        bundles.remove(&self.bundle_digest);
        let mut inventory = HashSet::new();
        let mut candidates = Vec::new();
        for digest in &bundles {
            let earlier = self
                .applier
                .summaries
                .get(digest)
                .await
                .map_err(|e| Stop::Unreachable(format!("reading bundle {digest}: {e}")))?;
            for declared in &earlier.objects {
                let key = Key::of(&declared.reference);
                if !keep.contains(&key) && !inventory.contains(&key) {
                    candidates.push(declared.reference.clone());
                }
                inventory.insert(key);
            }
        }
        // The last level first: workloads before the config they use, namespaces last.
        candidates.sort_by_key(|r| std::cmp::Reverse(kind_rank(&r.kind)));
        Ok((candidates, inventory.len(), bundles.into_iter().collect()))
    }

    async fn delete(
        &self,
        cluster: &Arc<ClusterApplier>,
        candidates: Vec<ObjectRef>,
    ) -> Result<u32, Stop> {
        let mut pruned = 0;
        for reference in candidates {
            let live = match cluster.get(&reference).await {
                Ok(Some(live)) => serde_json::to_value(live).unwrap_or_default(),
                Ok(None) => continue,
                Err(e) if e.is_transient() => return Err(Stop::Unreachable(e.to_string())),
                Err(e) => {
                    tracing::warn!(kind = %reference.kind, name = %reference.name, error = %e, "cannot read an object to prune; kept");
                    continue;
                }
            };
            if let Err(why) = may_prune(&live, self.env()) {
                tracing::info!(environment = self.env(), cluster = self.cluster(), kind = %reference.kind, name = %reference.name, why, "not pruned");
                continue;
            }
            match cluster.delete(&reference).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => return Err(Stop::Unreachable(e.to_string())),
                Err(e) => {
                    tracing::warn!(kind = %reference.kind, name = %reference.name, error = %e, "delete refused; kept");
                    continue;
                }
            }
            pruned += 1;
            let event = ResourcePruned {
                environment: self.env().into(),
                cluster: self.cluster().into(),
                revision: self.revision.clone(),
                object: reference.clone(),
            };
            let id = key_text(&reference);
            self.applier
                .emit(&event, self.cause, &["prune", &id])
                .await
                .map_err(|e| Stop::Unreachable(e.to_string()))?;
        }
        Ok(pruned)
    }
}

/// What the dry run found for one object.
#[derive(Clone)]
struct Plan {
    /// Whether the object exists now.
    exists: bool,
    /// Whether applying changes it.
    changes: bool,
}

/// The live object and the dry-run result, compared.
async fn plan(cluster: &ClusterApplier, object: &Value) -> Result<Plan, ApplyError> {
    let reference = object_ref(object)
        .ok_or_else(|| ApplyError::Invalid("missing apiVersion, kind or name".into()))?;
    let live = cluster.get(&reference).await?;
    let after = cluster.patch(object, true).await?;
    Ok(match live {
        None => Plan {
            exists: false,
            changes: true,
        },
        Some(live) => {
            let live = serde_json::to_value(live).unwrap_or_default();
            let after = serde_json::to_value(after).unwrap_or_default();
            Plan {
                exists: true,
                changes: would_change(&live, &after),
            }
        }
    })
}

/// Writes one object if its plan says it changes (planning it now if its dry run had to wait
/// for its namespace or CRD).
async fn write(
    cluster: &ClusterApplier,
    object: &Value,
    known: Option<Plan>,
) -> Result<ObjectResult, ApplyError> {
    let plan = match known {
        Some(p) => p,
        None => plan(cluster, object).await?,
    };
    if !plan.changes {
        return Ok(result(object, ObjectAction::Unchanged, None));
    }
    cluster.patch(object, false).await?;
    let action = if plan.exists {
        ObjectAction::Configured
    } else {
        ObjectAction::Created
    };
    Ok(result(object, action, None))
}

async fn wait_established(cluster: &ClusterApplier, crd: &Value) -> Result<(), Stop> {
    let Some(reference) = object_ref(crd) else {
        return Ok(());
    };
    let deadline = Instant::now() + ESTABLISHED_TIMEOUT;
    loop {
        match cluster.get(&reference).await {
            Ok(Some(live)) => {
                let live = serde_json::to_value(live).unwrap_or_default();
                if configsync_core::cluster::health::assess(&live).is_ready() {
                    return Ok(());
                }
            }
            Ok(None) => {}
            Err(e) if e.is_transient() => return Err(Stop::Unreachable(e.to_string())),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            return Err(Stop::Refused {
                reason: format!(
                    "CustomResourceDefinition {} did not become Established within {}s",
                    reference.name,
                    ESTABLISHED_TIMEOUT.as_secs()
                ),
                results: vec![],
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn result(object: &Value, action: ObjectAction, error: Option<&ApplyError>) -> ObjectResult {
    ObjectResult {
        object: object_ref(object).unwrap_or_else(|| ObjectRef {
            api_version: String::new(),
            kind: String::new(),
            namespace: None,
            name: String::new(),
        }),
        action,
        message: error.map(ToString::to_string),
    }
}

fn refusals(results: &[ObjectResult]) -> String {
    let mut parts: Vec<String> = results
        .iter()
        .take(10)
        .map(|r| {
            format!(
                "{} {}: {}",
                r.object.kind,
                key_text(&r.object),
                r.message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if results.len() > 10 {
        parts.push(format!("and {} more", results.len() - 10));
    }
    parts.join("; ")
}

fn key_text(r: &ObjectRef) -> String {
    match &r.namespace {
        Some(ns) => format!("{ns}/{}", r.name),
        None => r.name.clone(),
    }
}
