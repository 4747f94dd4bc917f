//! `configsync demo`: scaffolds an example configuration repository, runs the whole stack on
//! it (local NATS, one kubesim cluster per environment, the six services), then makes a change,
//! two drifts, a removal (prune), a broken rollout (health, automatic rollback, pin) and its fix,
//! printing the timeline of events as they happen. Prod is gated: two people approve the first
//! revision there, each signing with an SSH key (made with ssh-keygen when it is installed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use configsync_core::event::{ApprovalGranted, EventData, Received};
use configsync_core::log::EventLog;
use configsync_core::log::{Entry, Reader, Start};
use configsync_core::metrics::Metrics;
use configsync_core::service::cancel_on_signal;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::acting::{Signer, sign_and_record};
use super::scaffold;
use super::stack::{Stack, StackOptions};

/// Marks a directory as made by the demo, so that a second run may replace it.
const MARKER: &str = ".configsync-demo";
const ENVIRONMENTS: [&str; 3] = ["dev", "staging", "prod"];

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where the example repository and the demo's state go (replaced if a previous demo made it).
    #[arg(long, default_value = "configsync-demo")]
    dir: PathBuf,
    /// Keep everything running after the demo, to explore with kubectl, `events tail` and
    /// `audit search`.
    #[arg(long)]
    keep_running: bool,
    /// How long each step may take before the demo gives up.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    step_timeout: Duration,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    prepare_dir(&args.dir)?;
    let dir = args.dir.canonicalize()?;
    let repo = dir.join("repo");
    let environments: Vec<String> = ENVIRONMENTS.iter().map(|e| e.to_string()).collect();
    let first = scaffold::create(&repo, &environments)?;
    println!(
        "1. example repository at {} (dev, staging, prod; apps web and api), commit {}",
        repo.display(),
        &first[..8]
    );

    let approvers = approvers(&dir)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let mut options = StackOptions {
        state_dir: dir.join("state"),
        repo: repo.display().to_string(),
        branch: "main".into(),
        poll_interval: Duration::from_secs(1),
        nats: None,
        clusters: Vec::new(),
        environments: environments.clone(),
        policies: vec![
            "dev=auto".into(),
            "staging=auto".into(),
            "prod=alert".into(),
        ],
        applier_flags: vec![
            "--auto-rollback".into(),
            "dev".into(),
            "--health-timeout".into(),
            "30s".into(),
        ],
        access: None,
    };
    match &approvers {
        Some(a) => options.access = Some(a.policy.clone()),
        None => println!(
            "   (ssh-keygen is not installed: prod is not gated in this run; install openssh-client to see approvals)"
        ),
    }
    let stack = Stack::start(&options, shutdown.clone()).await?;
    println!(
        "2. configsync is up: nats {}, audit {}, kubeconfig {}",
        stack.endpoints.nats_url,
        stack.endpoints.audit_url.as_deref().unwrap_or("-"),
        stack.endpoints.kubeconfig.as_deref().unwrap_or("-")
    );
    println!("   timeline (every event, as it is stored):");

    let outcome = script(&stack, &repo, &first, &args, approvers.as_ref(), &shutdown).await;
    match &outcome {
        Ok(()) if args.keep_running => {
            let k = stack.endpoints.kubeconfig.clone().unwrap_or_default();
            let state = dir.join("state").display().to_string();
            // The full path of this binary, so the commands work whether or not it is installed.
            let me = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "configsync".into());
            println!("\ndone. Explore, in another terminal:");
            println!("  kubectl --kubeconfig {k} --context dev -n shop get configmaps,deployments");
            println!(
                "  {me} events tail --state-dir {state} --from begin --no-follow --format human"
            );
            println!("  {me} audit search --state-dir {state} green --format human");
            println!("  {me} replay --state-dir {state} --target dev/local");
        }
        Ok(()) => println!(
            "\ndone. To explore afterwards (kubectl, events tail, audit search), run it with --keep-running."
        ),
        Err(e) => eprintln!("\ndemo failed: {e:#}"),
    }
    if args.keep_running && outcome.is_ok() {
        println!("still running; press Ctrl-C to stop");
        let failed = stack.wait().await;
        return Ok(if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let failed = stack.stop().await;
    Ok(if outcome.is_ok() && !failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The demo's steps, each waiting for the events that prove it.
async fn script(
    stack: &Stack,
    repo: &Path,
    first: &str,
    args: &DemoArgs,
    approvers: Option<&Approvers>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // As a person watching: the operator may read everything and write nothing but decisions.
    let client = stack
        .connect(configsync_core::nats_auth::OPERATOR, "configsync-demo")
        .await
        .context("cannot reach nats")?;
    let log = EventLog::new(client.clone(), "configsync://demo", Metrics::new())?;
    let js = async_nats::jetstream::new(client);
    let (tx, _) = broadcast::channel::<Received>(4096);
    let printer = {
        let tx = tx.clone();
        let mut reader = Reader::open(
            &js,
            "CONFIGSYNC_EVENTS",
            Start::Beginning,
            Some(configsync_core::subject::EVERYTHING),
        )
        .await?;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    next = reader.next() => next,
                };
                match next {
                    Some(Ok(Entry::Event(e))) => {
                        println!("   {}", super::timeline::line(&e));
                        let _ = tx.send(*e);
                    }
                    Some(Ok(Entry::Unreadable {
                        stream_sequence,
                        reason,
                        ..
                    })) => println!("   #{stream_sequence} unreadable: {reason}"),
                    Some(Err(e)) => println!("   (reader error: {e})"),
                    None => break,
                }
            }
        })
    };
    let mut events = tx.subscribe();
    let step = args.step_timeout;

    if let Some(approvers) = approvers {
        let required = wait_for_value(&mut events, step, "prod's approval gate", |e| {
            match &e.data {
                EventData::ApprovalRequired(a)
                    if a.environment == "prod" && a.revision == first =>
                {
                    Some(a.clone())
                }
                _ => None,
            }
        })
        .await?;
        println!(
            "3. prod is gated: {} approvals of sre needed ({}); alice and bob approve, each signing with an SSH key",
            required.required,
            required.approvers.join(", ")
        );
        for (who, key) in &approvers.keys {
            let approval = ApprovalGranted {
                environment: "prod".into(),
                revision: first.to_string(),
                approver: format!("{who}@example.com"),
                comment: Some("looks good".into()),
                bundle_digest: required.bundle_digest.clone(),
                signature: None,
            };
            sign_and_record(
                &log,
                approval,
                Some(Signer::Ssh(key.clone())),
                Duration::from_secs(3600),
            )
            .await?;
        }
    }
    let mut pending: Vec<&str> = ENVIRONMENTS.to_vec();
    wait_for(&mut events, step, "every environment applied", |e| {
        if let EventData::ApplySucceeded(a) = &e.data
            && a.revision == first
        {
            pending.retain(|env| *env != a.environment);
        }
        pending.is_empty()
    })
    .await?;
    println!("   every environment runs commit {}", &first[..8]);

    let second = scaffold::change(
        repo,
        "configs/dev/web/config.yaml",
        "color: blue",
        "color: green",
        "Make dev's web green",
    )?;
    println!("4. committed {} in dev: color blue → green", &second[..8]);
    wait_for(&mut events, step, "dev applied again", |e| matches!(&e.data, EventData::ApplySucceeded(a) if a.environment == "dev" && a.revision == second)).await?;

    let kubeconfig = stack
        .endpoints
        .kubeconfig
        .clone()
        .context("the demo runs local clusters")?;
    drift(&kubeconfig, "dev", "red").await?;
    println!(
        "5. someone changed dev's web-settings behind ConfigSync's back (color → red, field manager demo-operator)"
    );
    wait_for(
        &mut events,
        step,
        "dev drift detected",
        |e| matches!(&e.data, EventData::DriftDetected(d) if d.environment == "dev"),
    )
    .await?;
    wait_for(
        &mut events,
        step,
        "dev drift repaired",
        |e| matches!(&e.data, EventData::RemediationSucceeded(r) if r.environment == "dev"),
    )
    .await?;
    println!(
        "6. dev (policy auto) was repaired: color is {} again",
        live_color(&kubeconfig, "dev").await?
    );

    drift(&kubeconfig, "prod", "red").await?;
    println!("7. the same change in prod (policy alert)");
    wait_for(
        &mut events,
        step,
        "prod drift detected",
        |e| matches!(&e.data, EventData::DriftDetected(d) if d.environment == "prod"),
    )
    .await?;
    println!(
        "8. prod's drift is reported, not repaired: color stays {}",
        live_color(&kubeconfig, "prod").await?
    );

    let pruned = scaffold::remove(
        repo,
        "configs/dev/api/service.yaml",
        "Retire dev's api Service",
    )?;
    println!(
        "9. committed {}: dev's api Service removed from Git",
        &pruned[..8]
    );
    wait_for(&mut events, step, "the Service pruned", |e| {
        matches!(&e.data, EventData::ResourcePruned(p) if p.environment == "dev" && p.object.kind == "Service")
    })
    .await?;
    wait_for(&mut events, step, "dev healthy", |e| {
        matches!(&e.data, EventData::HealthReady(h) if h.environment == "dev" && h.revision == pruned)
    })
    .await?;
    println!(
        "   it was deleted from dev's cluster (managed by ConfigSync, so safe to prune), and dev is healthy"
    );

    let broken = scaffold::rewrite(
        repo,
        "configs/dev/web/deployment.yaml",
        &[
            (
                "  labels:\n    app: web\nspec:",
                "  labels:\n    app: web\n  annotations:\n    kubesim.configsync.io/never-ready: \"true\"\nspec:",
            ),
            ("image: nginx:1.27.3", "image: nginx:1.29.0-broken"),
        ],
        "Upgrade dev's web to a build that never becomes ready",
    )?;
    println!(
        "10. committed {}: dev's web Deployment never becomes ready",
        &broken[..8]
    );
    wait_for(&mut events, step, "dev degraded", |e| {
        matches!(&e.data, EventData::HealthDegraded(h) if h.environment == "dev" && h.revision == broken)
    })
    .await?;
    wait_for(&mut events, step, "dev rolled back and healthy", |e| {
        matches!(&e.data, EventData::HealthReady(h) if h.environment == "dev" && h.revision == pruned)
    })
    .await?;
    println!(
        "    health.degraded, so dev (auto-rollback) went back to {} by itself: healthy again, and pinned there",
        &pruned[..8]
    );

    let fixed = scaffold::rewrite(
        repo,
        "configs/dev/web/deployment.yaml",
        &[
            (
                "  annotations:\n    kubesim.configsync.io/never-ready: \"true\"\n",
                "",
            ),
            ("image: nginx:1.29.0-broken", "image: nginx:1.29.1"),
        ],
        "Fix dev's web build",
    )?;
    println!("11. committed {}: a fixed build", &fixed[..8]);
    wait_for(&mut events, step, "the fix healthy in dev", |e| {
        matches!(&e.data, EventData::HealthReady(h) if h.environment == "dev" && h.revision == fixed)
    })
    .await?;
    println!(
        "    the newer commit lifted the pin: dev runs {} and is healthy",
        &fixed[..8]
    );
    printer.abort();
    Ok(())
}

/// The people who approve prod in the demo: their keys and the access policy naming them.
struct Approvers {
    policy: PathBuf,
    keys: Vec<(&'static str, PathBuf)>,
}

/// Makes alice's and bob's SSH keys and an access policy that gates prod on both, when
/// ssh-keygen is installed.
fn approvers(dir: &Path) -> anyhow::Result<Option<Approvers>> {
    // Spawning it tells whether it is installed (its usage message goes nowhere).
    let installed = std::process::Command::new("ssh-keygen")
        .arg("-?")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !installed {
        return Ok(None);
    }
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir)?;
    let mut allowed = String::new();
    let mut keys = Vec::new();
    for who in ["alice", "bob"] {
        let key = keys_dir.join(who);
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("{who}@example.com"))
            .arg("-f")
            .arg(&key)
            .output()?;
        if !out.status.success() {
            bail!(
                "ssh-keygen: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let public = std::fs::read_to_string(key.with_extension("pub"))?;
        allowed.push_str(&format!("{who}@example.com {public}"));
        keys.push((who, key));
    }
    std::fs::write(keys_dir.join("allowed_signers"), allowed)?;
    let policy = dir.join("access.yaml");
    std::fs::write(
        &policy,
        "# The demo's access policy (docs/security.md): prod needs two approvals of sre.\nsigners:\n  ssh: keys/allowed_signers\ngroups:\n  sre: [alice@example.com, bob@example.com]\nenvironments:\n  prod:\n    approvals: {required: 2, from: [sre]}\n    rollback: [sre]\n",
    )?;
    Ok(Some(Approvers { policy, keys }))
}

/// Waits for the first event `pick` takes a value from.
async fn wait_for_value<T>(
    events: &mut broadcast::Receiver<Received>,
    timeout: Duration,
    what: &str,
    mut pick: impl FnMut(&Received) -> Option<T>,
) -> anyhow::Result<T> {
    let mut found = None;
    wait_for(events, timeout, what, |e| {
        found = pick(e);
        found.is_some()
    })
    .await?;
    found.with_context(|| format!("{what}: no value"))
}

async fn wait_for(
    events: &mut broadcast::Receiver<Received>,
    timeout: Duration,
    what: &str,
    mut matches: impl FnMut(&Received) -> bool,
) -> anyhow::Result<()> {
    let found = tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                // Failures are shown in the timeline; a step may still succeed on retry.
                Ok(e) if matches(&e) => return Ok(()),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => bail!("the event reader stopped"),
            }
        }
    })
    .await;
    match found {
        Ok(result) => result,
        Err(_) => bail!("timed out after {timeout:?} waiting for: {what}"),
    }
}

async fn configmaps(kubeconfig: &str, context: &str) -> anyhow::Result<Api<DynamicObject>> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let options = kube::config::KubeConfigOptions {
        context: Some(context.into()),
        ..Default::default()
    };
    let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &options).await?)?;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"));
    Ok(Api::namespaced_with(client, "shop", &ar))
}

/// Changes web-settings' color the way a person with kubectl would: another field manager.
async fn drift(kubeconfig: &str, context: &str, color: &str) -> anyhow::Result<()> {
    let api = configmaps(kubeconfig, context).await?;
    let params = PatchParams {
        field_manager: Some("demo-operator".into()),
        ..Default::default()
    };
    api.patch(
        "web-settings",
        &params,
        &Patch::Merge(serde_json::json!({"data": {"color": color}})),
    )
    .await?;
    Ok(())
}

async fn live_color(kubeconfig: &str, context: &str) -> anyhow::Result<String> {
    let api = configmaps(kubeconfig, context).await?;
    let cm = api.get("web-settings").await?;
    Ok(cm.data["data"]["color"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Creates `dir`, or empties one a previous demo made; refuses anything else.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by configsync demo; choose another --dir",
                dir.display()
            );
        }
        if !empty {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        "made by configsync demo; safe to delete\n",
    )?;
    Ok(())
}
