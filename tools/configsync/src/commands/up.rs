//! `configsync up`: everything on one machine in one process — a nats-server child (unless
//! `--nats-url`), the event stream, and the six services running the same code as their
//! binaries. Writes `<state-dir>/endpoints.json` once ready; Ctrl-C or SIGTERM stops it all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use configsync_core::config::{NatsArgs, ServiceArgs};
use configsync_core::local_nats::LocalNats;
use configsync_core::log::stream::{self, StreamSpec};
use configsync_core::service::cancel_on_signal;
use configsync_core::telemetry::LogFormat;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::state_dir::{ENDPOINTS_FILE, Endpoints};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Where the local NATS store, logs and endpoints.json live (kept between runs, so the
    /// event log survives a restart).
    #[arg(long, env = "CONFIGSYNC_STATE_DIR", default_value = ".configsync")]
    state_dir: PathBuf,
    /// Use this NATS instead of starting one.
    #[arg(long, env = "CONFIGSYNC_NATS_URL")]
    nats_url: Option<String>,
}

/// A service's ops endpoint, for endpoints.json.
#[derive(Debug, Serialize)]
struct ServiceEndpoint {
    name: &'static str,
    ops: String,
}

pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    let state_dir = args.state_dir.canonicalize()?;
    // A stale endpoints file would point tools at a dead instance.
    let _ = std::fs::remove_file(state_dir.join(ENDPOINTS_FILE));

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let local = match &args.nats_url {
        Some(_) => None,
        None => {
            eprintln!(
                "starting nats-server (store: {})",
                state_dir.join("nats/store").display()
            );
            Some(
                LocalNats::start(&state_dir.join("nats"))
                    .await
                    .context("cannot start nats-server")?,
            )
        }
    };
    let nats_url = args
        .nats_url
        .clone()
        .unwrap_or_else(|| local.as_ref().map(LocalNats::url).unwrap_or_default());

    let nats = NatsArgs::for_url(nats_url.clone());
    let client = nats.connect("configsync-up").await?;
    let js = async_nats::jetstream::new(client);
    let spec = StreamSpec::from_definition(1)?;
    stream::ensure(&js, &spec)
        .await
        .context("cannot set up the event stream")?;

    let mut tasks = tokio::task::JoinSet::new();
    let mut services = Vec::new();
    macro_rules! start {
        ($krate:ident) => {{
            let ops = free_local_addr()?;
            let config = $krate::Config {
                service: service_args(&nats, ops),
            };
            let token = shutdown.clone();
            tasks.spawn(async move {
                (
                    $krate::NAME,
                    $krate::run(config, token).await.map_err(|e| e.to_string()),
                )
            });
            services.push(ServiceEndpoint {
                name: $krate::NAME,
                ops: format!("http://{ops}"),
            });
        }};
    }
    start!(configsync_git_watcher);
    start!(configsync_validator);
    start!(configsync_applier);
    start!(configsync_drift_watcher);
    start!(configsync_remediator);
    start!(configsync_auditor);

    for s in &services {
        wait_ready(&s.ops, &shutdown)
            .await
            .with_context(|| format!("{} did not become ready", s.name))?;
    }
    let endpoints = Endpoints {
        nats_url: nats_url.clone(),
        audit_url: None,
        kubeconfig: None,
        services: serde_json::to_value(&services)?,
    };
    let path = state_dir.join(ENDPOINTS_FILE);
    std::fs::write(&path, serde_json::to_vec_pretty(&endpoints)?)?;

    println!("configsync is up");
    println!("  nats:       {nats_url}");
    if let Some(local) = &local {
        println!("  nats log:   {}", local.log_file().display());
    }
    for s in &services {
        println!("  {:<14}{}/metrics", s.name, s.ops);
    }
    println!("  endpoints:  {}", path.display());
    println!(
        "watch events: configsync events tail --state-dir {} --format human",
        state_dir.display()
    );
    println!("press Ctrl-C to stop");

    let mut failed = false;
    tokio::select! {
        _ = shutdown.cancelled() => {}
        Some(done) = tasks.join_next() => {
            // A service stopping on its own is a failure of the whole: stop the rest.
            report(done, &mut failed);
            failed = true;
            shutdown.cancel();
        }
    }
    eprintln!("stopping");
    while let Some(done) = tasks.join_next().await {
        report(done, &mut failed);
    }
    drop(local);
    let _ = std::fs::remove_file(&path);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn report(
    done: Result<(&'static str, Result<(), String>), tokio::task::JoinError>,
    failed: &mut bool,
) {
    match done {
        Ok((_, Ok(()))) => {}
        Ok((name, Err(e))) => {
            eprintln!("error: {name} failed: {e}");
            *failed = true;
        }
        Err(e) => {
            eprintln!("error: a service panicked: {e}");
            *failed = true;
        }
    }
}

fn service_args(nats: &NatsArgs, ops: SocketAddr) -> ServiceArgs {
    ServiceArgs {
        nats: nats.clone(),
        ops_addr: Some(ops),
        instance: Some("up".into()),
        log_format: LogFormat::Human,
    }
}

/// A free loopback port for an ops endpoint (the services bind it right after).
fn free_local_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

async fn wait_ready(ops: &str, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let addr: SocketAddr = ops.trim_start_matches("http://").parse()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if super::state_dir::http_status(addr, "/readyz").await == Some(200) {
            return Ok(());
        }
        if shutdown.is_cancelled() || tokio::time::Instant::now() >= deadline {
            anyhow::bail!("not ready at {ops}/readyz");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
