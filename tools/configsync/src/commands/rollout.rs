//! The rollout commands a person runs: `rollback`, `unpin`, `prune approve` (each recorded in
//! the log with the actor and, where a key is given, signed, for the applier to act on) and `diff`
//! (what applying a revision would change in a cluster, from a server-side dry run, with Secret
//! values and credentials masked as `configsync_core::redact` does). Each reads the environment's state
//! with the same fold the applier uses, so what it refuses the applier would refuse too.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use configsync_core::cluster::{
    ClusterApplier, comparable, mark, may_prune, object_ref, would_change,
};
use configsync_core::event::{ObjectRef, PruneApproved, RollbackRequested, UnpinRequested};
use configsync_core::log::bundles::BundleStore;
use configsync_core::names::{Name, Target};
use configsync_core::redact;
use serde::Serialize;
use serde_json::Value;

use super::acting::{Acting, Output, environment_state, known_environment, resolve_revision};
use super::state_dir::{Connection, Endpoints};

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    acting: Acting,
    /// The environment to roll back.
    #[arg(long)]
    env: Name,
    /// Only this cluster of the environment (default: every cluster).
    #[arg(long)]
    cluster: Option<Name>,
    /// The revision to return to (default: the last revision that was healthy on the target).
    #[arg(long = "to")]
    to: Option<String>,
    /// Why, recorded in the log.
    #[arg(long, default_value = "rolled back by hand")]
    reason: String,
}

#[derive(clap::Args, Debug)]
pub struct UnpinArgs {
    #[command(flatten)]
    acting: Acting,
    /// The environment whose pin is lifted: it then runs its newest validated revision.
    #[arg(long)]
    env: Name,
    /// Why, recorded in the log.
    #[arg(long, default_value = "unpinned by hand")]
    reason: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum PruneCommand {
    /// Allow the deletions the prune guard holds back on a target.
    Approve(PruneApproveArgs),
}

#[derive(clap::Args, Debug)]
pub struct PruneApproveArgs {
    #[command(flatten)]
    acting: Acting,
    #[arg(long)]
    env: Name,
    #[arg(long)]
    cluster: Name,
    /// The held revision (default: the one held now).
    #[arg(long)]
    revision: Option<String>,
    /// Why these deletions are wanted, recorded in the log.
    #[arg(long)]
    reason: String,
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    env: Name,
    /// The cluster (default: the environment's only or first cluster in the kubeconfig).
    #[arg(long)]
    cluster: Option<Name>,
    /// A validated revision (default: the one the environment should run now).
    #[arg(long, conflicts_with = "path")]
    revision: Option<String>,
    /// A local checkout instead: `configs/<env>/` rendered and checked as `configsync
    /// validate` does.
    #[arg(long)]
    path: Option<PathBuf>,
    /// The kubeconfig (default: the one of `configsync up --state-dir`, else $KUBECONFIG).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: one named after the environment, else the current).
    #[arg(long)]
    context: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let (log, state) = environment_state(&args.acting.connection, &args.env).await?;
    let env = known_environment(&state, &args.env)?;
    let targets: Vec<(&Target, &configsync_core::fold::TargetState)> = state
        .targets
        .iter()
        .filter(|(t, _)| t.environment == args.env)
        .filter(|(t, _)| args.cluster.as_ref().is_none_or(|c| &t.cluster == c))
        .collect();
    if let Some(cluster) = &args.cluster
        && targets.is_empty()
    {
        bail!(
            "environment {} has no cluster {cluster} in the log",
            args.env
        );
    }
    let to = match &args.to {
        Some(to) => to.clone(),
        None => {
            let healthy: HashSet<&str> = targets
                .iter()
                .filter_map(|(_, t)| t.rollback_candidate().map(|h| h.revision.as_str()))
                .collect();
            match healthy.len() {
                0 => bail!(
                    "no revision was ever healthy on {}; name one with --to",
                    args.env
                ),
                1 => healthy.into_iter().next().unwrap_or_default().to_string(),
                _ => bail!(
                    "the clusters of {} were last healthy on different revisions ({}); name one with --to or pick a --cluster",
                    args.env,
                    healthy.into_iter().collect::<Vec<_>>().join(", ")
                ),
            }
        }
    };
    let to = resolve_revision(env, &to)
        .with_context(|| format!("environment {}: nothing was changed", args.env))?;
    let actor = args.acting.actor();
    let request = RollbackRequested {
        environment: args.env.to_string(),
        to_revision: to.clone(),
        reason: args.reason.clone(),
        requested_by: actor.clone(),
        cluster: args.cluster.as_ref().map(ToString::to_string),
        signature: None,
    };
    let summary = format!(
        "rollback of {} to {to} requested by {actor}; the environment stays pinned there until a newer commit or `configsync unpin --env {}`",
        args.env, args.env
    );
    args.acting.record(&log, request, summary).await
}

pub async fn unpin(args: UnpinArgs) -> anyhow::Result<ExitCode> {
    let (log, state) = environment_state(&args.acting.connection, &args.env).await?;
    let env = known_environment(&state, &args.env)?;
    let Some(pin) = &env.pin else {
        bail!("environment {} is not pinned", args.env);
    };
    let actor = args.acting.actor();
    let request = UnpinRequested {
        environment: args.env.to_string(),
        revision: pin.revision.clone(),
        reason: args.reason.clone(),
        requested_by: actor.clone(),
        signature: None,
    };
    let summary = format!(
        "lifting the pin of {} to {} requested by {actor}; it returns to its newest validated revision",
        args.env, pin.revision
    );
    args.acting.record(&log, request, summary).await
}

pub async fn prune(command: PruneCommand) -> anyhow::Result<ExitCode> {
    let PruneCommand::Approve(args) = command;
    let (log, state) = environment_state(&args.acting.connection, &args.env).await?;
    let target = Target::new(args.env.clone(), args.cluster.clone());
    let Some(hold) = state.target(&target).and_then(|t| t.prune_held.as_ref()) else {
        bail!("nothing is held for {target}: no prune waits for approval");
    };
    if let Some(revision) = &args.revision
        && revision != &hold.revision
    {
        bail!(
            "the prune held on {target} is for revision {}, not {revision}",
            hold.revision
        );
    }
    let actor = args.acting.actor();
    let approval = PruneApproved {
        environment: args.env.to_string(),
        cluster: args.cluster.to_string(),
        revision: hold.revision.clone(),
        reason: args.reason.clone(),
        approved_by: actor.clone(),
        signature: None,
    };
    let summary = format!(
        "{} deletions of revision {} on {target} approved by {actor}",
        hold.would_delete, hold.revision
    );
    args.acting.record(&log, approval, summary).await
}

/// What applying would do to one object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Create,
    Change,
    Unchanged,
    Prune,
}

#[derive(Debug, Serialize)]
struct ObjectDiff {
    object: ObjectRef,
    change: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
}

pub async fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let (log, state) = environment_state(&args.connection, &args.env).await?;
    let (revision, objects) = match &args.path {
        Some(root) => (
            "working tree".to_string(),
            checkout_objects(root, &args.env)?,
        ),
        None => {
            let env = known_environment(&state, &args.env)?;
            let (revision, validated) = match &args.revision {
                Some(r) => (
                    r.as_str(),
                    env.validated.get(r).with_context(|| {
                        format!("revision {r} was never validated for {}", args.env)
                    })?,
                ),
                None => env
                    .wanted()
                    .context("the environment has no revision to run")?,
            };
            let bundle = BundleStore::open(&log.js)
                .await?
                .get_bundle(&validated.bundle_digest)
                .await
                .with_context(|| format!("reading bundle {}", validated.bundle_digest))?;
            (revision.to_string(), bundle.objects)
        }
    };
    let (client, cluster) = connect_cluster(&args).await?;
    let applier = ClusterApplier::new(client);
    let mut diffs = Vec::new();
    let mut keep = HashSet::new();
    for mut object in objects {
        mark(&mut object, args.env.as_str(), &revision);
        let Some(reference) = object_ref(&object) else {
            continue;
        };
        keep.insert((
            reference.kind.clone(),
            reference.namespace.clone(),
            reference.name.clone(),
        ));
        let live = applier
            .get(&reference)
            .await
            .with_context(|| format!("reading {} {}", reference.kind, reference.name))?;
        let after = applier.patch(&object, true).await.with_context(|| {
            format!(
                "the dry run of {} {} was refused",
                reference.kind, reference.name
            )
        })?;
        let after = serde_json::to_value(after)?;
        // Compared whole, shown masked (Secret values, credentials of other kinds): a diff is
        // pasted into pull requests and chat.
        let (change, diff) = match live {
            None => {
                let mut after = declared(&after, &object);
                redact::mask(&mut after);
                (Verdict::Create, Some(unified("", &yaml(&after))))
            }
            Some(live) => {
                let live = serde_json::to_value(live)?;
                if would_change(&live, &after) {
                    let mut before = declared(&live, &object);
                    let mut after = declared(&after, &object);
                    redact::mask_pair(&mut before, &mut after);
                    (
                        Verdict::Change,
                        Some(unified(&yaml(&before), &yaml(&after))),
                    )
                } else {
                    (Verdict::Unchanged, None)
                }
            }
        };
        diffs.push(ObjectDiff {
            object: reference,
            change,
            diff,
        });
    }
    // What the target's deployed bundles hold and this revision does not: pruned if ours.
    if let Some(target_state) = state.target(&Target::new(args.env.clone(), cluster.clone())) {
        let store = BundleStore::open(&log.js).await?;
        for digest in &target_state.inventory_bundles {
            for old in store.get_bundle(digest).await?.objects {
                let Some(reference) = object_ref(&old) else {
                    continue;
                };
                let key = (
                    reference.kind.clone(),
                    reference.namespace.clone(),
                    reference.name.clone(),
                );
                if keep.contains(&key) {
                    continue;
                }
                keep.insert(key);
                if let Some(live) = applier.get(&reference).await?
                    && may_prune(&serde_json::to_value(live)?, args.env.as_str()).is_ok()
                {
                    diffs.push(ObjectDiff {
                        object: reference,
                        change: Verdict::Prune,
                        diff: None,
                    });
                }
            }
        }
    }
    let changes = diffs
        .iter()
        .filter(|d| !matches!(d.change, Verdict::Unchanged))
        .count();
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "environment": args.env, "cluster": cluster, "revision": revision,
                "changes": changes, "objects": diffs}))?
        ),
        Output::Text => {
            for d in &diffs {
                let name = match &d.object.namespace {
                    Some(ns) => format!("{} {ns}/{}", d.object.kind, d.object.name),
                    None => format!("{} {}", d.object.kind, d.object.name),
                };
                let verb = match d.change {
                    Verdict::Create => "created",
                    Verdict::Change => "changed",
                    Verdict::Unchanged => "unchanged",
                    Verdict::Prune => "would be pruned",
                };
                println!("{name}: {verb}");
                if let Some(diff) = &d.diff {
                    print!("{diff}");
                }
            }
            eprintln!(
                "{changes} of {} objects would change on {}/{cluster} (revision {revision})",
                diffs.len(),
                args.env
            );
        }
    }
    Ok(if changes == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A client for the diff's cluster, and the cluster's name.
async fn connect_cluster(args: &DiffArgs) -> anyhow::Result<(kube::Client, Name)> {
    let path = match (&args.kubeconfig, &args.connection.state_dir) {
        (Some(p), _) => p.clone(),
        (None, Some(dir)) => Endpoints::read(dir)?
            .kubeconfig
            .map(PathBuf::from)
            .context("the running configsync up has no kubeconfig")?,
        (None, None) => bail!("no kubeconfig: give --kubeconfig, KUBECONFIG or --state-dir"),
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let context = args.context.clone().or_else(|| {
        kubeconfig
            .contexts
            .iter()
            .any(|c| c.name == args.env.as_str())
            .then(|| args.env.to_string())
    });
    // `configsync up` names its one cluster per environment `local`.
    let cluster = match &args.cluster {
        Some(c) => c.clone(),
        None => Name::new("local")?,
    };
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?;
    Ok((kube::Client::try_from(config)?, cluster))
}

/// The objects of `configs/<env>/` in a checkout, rendered and checked as `configsync
/// validate` does (policies as warnings: a diff shows, it does not judge).
fn checkout_objects(root: &std::path::Path, env: &Name) -> anyhow::Result<Vec<Value>> {
    use configsync_validation::engine::{self, Checker, Options};
    let options = Options {
        policy_mode: configsync_validation::policy::PolicyMode::Warn,
        ..Default::default()
    };
    let checker = Checker::new(options, &[])?;
    let dir = PathBuf::from(format!("configs/{env}"));
    let outcome = engine::validate_checkout(&checker, root, &[dir], &[], Some(env.as_str()));
    if outcome.has_errors() {
        bail!(
            "configs/{env} in {} does not validate ({} findings); run `configsync validate --env {env}`",
            root.display(),
            outcome.findings.len()
        );
    }
    Ok(outcome.manifests.into_iter().map(|m| m.object).collect())
}

/// `object` cut down to the fields `declared` names (lists item by item): what a person wrote,
/// without what the server adds.
fn declared(object: &Value, declared: &Value) -> Value {
    fn project(value: &Value, declared: &Value) -> Value {
        match (value, declared) {
            (Value::Object(v), Value::Object(d)) => Value::Object(
                d.keys()
                    .filter_map(|k| v.get(k).map(|x| (k.clone(), project(x, &d[k]))))
                    .collect(),
            ),
            (Value::Array(v), Value::Array(d)) if !d.is_empty() => Value::Array(
                v.iter()
                    .enumerate()
                    .map(|(i, x)| project(x, d.get(i).unwrap_or(&d[d.len() - 1])))
                    .collect(),
            ),
            _ => value.clone(),
        }
    }
    project(&comparable(object), declared)
}

fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

fn unified(before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header("live", "after apply")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_declared_view_leaves_out_server_defaults_and_bookkeeping() {
        let wanted = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}]}});
        let live = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "resourceVersion": "5", "uid": "x", "managedFields": []},
            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}}});
        let yaml = yaml(&declared(&live, &wanted));
        assert!(yaml.contains("port: 80"), "{yaml}");
        for noise in ["protocol", "clusterIP", "resourceVersion", "status", "uid"] {
            assert!(!yaml.contains(noise), "{noise} in {yaml}");
        }
        let diff = unified("a: 1\n", "a: 2\n");
        assert!(diff.contains("-a: 1") && diff.contains("+a: 2"), "{diff}");
    }
}
