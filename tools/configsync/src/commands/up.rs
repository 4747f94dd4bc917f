//! `configsync up`: everything on one machine in one process (see [`super::stack`]). Writes
//! `<state-dir>/endpoints.json` and `<state-dir>/kubeconfig` once ready (and keeps the NATS
//! users' passwords in `<state-dir>/nats-credentials.json` and the audit API's tokens in
//! `<state-dir>/audit-{read,admin}.token`); Ctrl-C or SIGTERM stops it all.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use configsync_core::config::{NatsArgs, NatsAuth};
use configsync_core::service::cancel_on_signal;
use tokio_util::sync::CancellationToken;

use super::stack::{Stack, StackOptions};

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// The configuration repository: a path or a file:// or git:// URL.
    #[arg(long, env = "CONFIGSYNC_REPO")]
    pub repo: String,
    /// The tracked branch.
    #[arg(long, env = "CONFIGSYNC_BRANCH", default_value = "main")]
    pub branch: String,
    /// Where the local NATS store, the clusters' kubeconfig, the audit index, the audit API's
    /// tokens and endpoints.json live (kept between runs, so the event log survives a restart).
    #[arg(long, env = "CONFIGSYNC_STATE_DIR", default_value = ".configsync")]
    pub state_dir: PathBuf,
    /// Use this NATS instead of starting one (with its own users: then --nats-user and
    /// --nats-password, the same for every service, and the TLS flags say how to connect).
    /// Without it, `up` runs a nats-server with a user per service and random passwords.
    #[arg(long, env = "CONFIGSYNC_NATS_URL")]
    pub nats_url: Option<String>,
    /// How to connect to --nats-url; not used without it.
    #[command(flatten)]
    pub nats_auth: NatsAuth,
    /// A cluster of an environment, `ENV/NAME=KUBECONFIG[#CONTEXT]` (repeatable). Without any,
    /// each environment gets a local kubesim cluster.
    #[arg(long = "cluster", env = "CONFIGSYNC_CLUSTERS", value_delimiter = ';')]
    pub clusters: Vec<String>,
    /// Environments that get a local kubesim cluster when no --cluster is given.
    #[arg(long = "environment", default_values_t = ["dev".to_string(), "staging".to_string(), "prod".to_string()])]
    pub environments: Vec<String>,
    /// Drift policy per environment, `ENV=auto|alert|off` (repeatable).
    #[arg(long = "policy", env = "CONFIGSYNC_POLICIES", value_delimiter = ';', default_values_t = ["dev=auto".to_string(), "staging=auto".to_string(), "prod=alert".to_string()])]
    pub policies: Vec<String>,
    /// How often the repository is polled (at least 1s; the webhook receiver makes pushes
    /// live sooner).
    #[arg(long, default_value = "2s", value_parser = configsync_core::config::poll_interval)]
    pub poll_interval: Duration,
    /// Environments rolled back to their last healthy revision when a new one degrades
    /// (repeatable).
    #[arg(
        long = "auto-rollback",
        env = "CONFIGSYNC_AUTO_ROLLBACK",
        value_delimiter = ','
    )]
    pub auto_rollback: Vec<String>,
    /// The access policy (YAML; docs/security.md): approvals per environment and who may
    /// approve, reject, roll back, unpin and allow held prunes, with their keys. Without one,
    /// nothing needs approval and people's actions are accepted unsigned.
    #[arg(long, env = "CONFIGSYNC_ACCESS")]
    pub access: Option<PathBuf>,
    /// How long a revision's objects may take to become healthy.
    #[arg(long, env = "CONFIGSYNC_HEALTH_TIMEOUT", default_value = "5m")]
    pub health_timeout: String,
}

impl UpArgs {
    pub fn options(&self) -> StackOptions {
        StackOptions {
            state_dir: self.state_dir.clone(),
            repo: self.repo.clone(),
            branch: self.branch.clone(),
            poll_interval: self.poll_interval,
            nats: self.nats_url.as_ref().map(|url| NatsArgs {
                auth: self.nats_auth.clone(),
                ..NatsArgs::for_url(url.clone())
            }),
            clusters: self.clusters.clone(),
            environments: self.environments.clone(),
            policies: self.policies.clone(),
            applier_flags: self
                .auto_rollback
                .iter()
                .flat_map(|e| ["--auto-rollback".to_string(), e.clone()])
                .chain(["--health-timeout".to_string(), self.health_timeout.clone()])
                .collect(),
            access: self.access.clone(),
        }
    }
}

pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    eprintln!("starting configsync (state: {})", args.state_dir.display());
    let stack = Stack::start(&args.options(), shutdown).await?;
    print_where(&stack);
    println!("press Ctrl-C to stop");
    let failed = stack.wait().await;
    eprintln!("stopped");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints where everything is.
pub fn print_where(stack: &Stack) {
    let e = &stack.endpoints;
    println!("configsync is up");
    println!("  nats:        {}", e.nats_url);
    if let Some(credentials) = &e.nats_credentials {
        println!(
            "  nats users:  {}   (admin, operator and one per service)",
            credentials.display()
        );
    }
    if let Some(log) = &stack.nats_log {
        println!("  nats log:    {}", log.display());
    }
    if let Some(k) = &e.kubeconfig {
        println!("  kubeconfig:  {k}   (kubectl --kubeconfig {k} --context dev get all -A)");
    }
    let dir = stack
        .endpoints_file
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if let Some(a) = &e.audit_url {
        println!(
            "  audit:       {a}/v1/events?q=...   (configsync audit search --state-dir {dir} QUERY)"
        );
        println!("  audit token: {dir}/audit-read.token (read), {dir}/audit-admin.token (admin)");
    }
    if let (Some(url), Some(secret)) = (&e.webhook_url, &e.webhook_secret) {
        println!("  webhook:     {url}   (secret: {})", secret.display());
    }
    for s in &stack.services {
        println!("  {:<13}{}/metrics", s.name, s.ops);
    }
    println!("  endpoints:   {}", stack.endpoints_file.display());
    println!("watch events:  configsync events tail --state-dir {dir} --format human");
}
