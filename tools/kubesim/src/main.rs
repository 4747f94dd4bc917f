//! The `kubesim` binary: serves until SIGTERM or SIGINT, writing its kubeconfig once ready.

use clap::Parser;
use kubesim::{Config, Faults};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "kubesim",
    about = "A Kubernetes API server for tests, demos and benchmarks"
)]
struct Args {
    /// Address to serve on; port 0 picks a free port.
    #[arg(long, env = "KUBESIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig once ready to serve.
    #[arg(long, env = "KUBESIM_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// Name of the kubeconfig's context, cluster and user.
    #[arg(long, env = "KUBESIM_CONTEXT", default_value = "kubesim")]
    context: String,
    /// How long workloads take to roll out.
    #[arg(long, env = "KUBESIM_ROLLOUT_DELAY", default_value = "200ms", value_parser = humantime::parse_duration)]
    rollout_delay: Duration,
    /// Watch events kept for resumption; older resourceVersions get 410 Gone.
    #[arg(long, env = "KUBESIM_WATCH_HISTORY", default_value_t = 50_000)]
    watch_history: usize,
    /// Interval between watch bookmarks.
    #[arg(long, env = "KUBESIM_BOOKMARK_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    bookmark_interval: Duration,
    /// Fault: latency added to every request.
    #[arg(long, env = "KUBESIM_LATENCY", default_value = "0s", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Fault: fraction of writes (0.0 to 1.0) that fail with 500.
    #[arg(long, env = "KUBESIM_WRITE_ERROR_RATE", default_value_t = 0.0)]
    write_error_rate: f64,
    /// Serve HTTPS with a self-signed certificate, written into the kubeconfig as its CA.
    #[arg(long, env = "KUBESIM_TLS")]
    tls: bool,
    /// Fault: close every watch connection after this long.
    #[arg(long, env = "KUBESIM_DROP_WATCH_AFTER", value_parser = humantime::parse_duration)]
    drop_watch_after: Option<Duration>,
    /// Authorize requests with the ClusterRoles, Roles and bindings of these YAML files (the
    /// bearer token is the user name); repeatable. Without any, everything is allowed.
    #[arg(long = "rbac", env = "KUBESIM_RBAC", value_delimiter = ',')]
    rbac: Vec<std::path::PathBuf>,
    /// Under --rbac, users allowed everything (as `system:masters` is); repeatable.
    #[arg(
        long = "rbac-superuser",
        env = "KUBESIM_RBAC_SUPERUSERS",
        value_delimiter = ','
    )]
    rbac_superusers: Vec<String>,
}

/// The roles of `files`, if any.
fn rbac(
    files: &[std::path::PathBuf],
    superusers: &[String],
) -> anyhow::Result<Option<std::sync::Arc<kubesim::rbac::Rbac>>> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for file in files {
        let one = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        text.push_str("\n---\n");
        text.push_str(&one);
    }
    let mut rbac = kubesim::rbac::Rbac::from_yaml(&text)?;
    for user in superusers {
        rbac = rbac.superuser(user);
    }
    Ok(Some(std::sync::Arc::new(rbac)))
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.write_error_rate) {
        anyhow::bail!("--write-error-rate must be between 0 and 1");
    }
    let config = Config {
        rollout_delay: args.rollout_delay,
        watch_history: args.watch_history,
        bookmark_interval: args.bookmark_interval,
        faults: Faults {
            latency: args.latency,
            write_error_rate: args.write_error_rate,
            drop_watch_after: args.drop_watch_after,
        },
        tls: args.tls,
        rbac: rbac(&args.rbac, &args.rbac_superusers)?,
    };
    let sim = kubesim::KubeSim::start_on(args.listen, config).await?;
    // The listener is bound and being served: connections made from now on are answered.
    if let Some(path) = &args.kubeconfig_out {
        sim.write_kubeconfig(path, &args.context)?;
        tracing::info!(path = %path.display(), context = %args.context, "kubeconfig written");
    }
    tracing::info!(url = %sim.url(), "kubesim ready");
    stop_signal().await;
    tracing::info!("stopping");
    sim.shutdown().await;
    Ok(())
}
