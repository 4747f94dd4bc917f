//! The local stack that `configsync up` and `configsync demo` run in one process: a
//! nats-server child with a user per service (unless a NATS is given), the event stream and
//! bundle store, one kubesim cluster per environment (unless clusters are given), and the six
//! services running the same code as their binaries, configured through their own
//! command-line flags, each connecting as its own NATS user.
//! The audit API's read and admin tokens are made at the first start and kept in the state
//! directory (see [`super::state_dir::ensure_audit_tokens`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use configsync_core::config::NatsArgs;
use configsync_core::local_nats::LocalNats;
use configsync_core::log::bundles;
use configsync_core::log::stream::{self, StreamSpec};
use configsync_core::nats_auth::{self, ADMIN, Credentials};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::state_dir::{ENDPOINTS_FILE, Endpoints, ensure_audit_tokens, ensure_webhook_secret};

/// What to run.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub state_dir: PathBuf,
    /// The configuration repository: a path or a `file://` / `git://` URL.
    pub repo: String,
    pub branch: String,
    pub poll_interval: Duration,
    /// Use this NATS instead of starting one; the stack and every service connect with these
    /// flags (URL, credentials, TLS).
    pub nats: Option<NatsArgs>,
    /// `ENV/NAME=KUBECONFIG[#CONTEXT]`; empty: one kubesim cluster per environment.
    pub clusters: Vec<String>,
    /// Environments that get a kubesim cluster when no clusters are given.
    pub environments: Vec<String>,
    /// Remediation policies, `ENV=auto|alert|off`.
    pub policies: Vec<String>,
    /// More flags of the applier (`--auto-rollback dev`, `--health-timeout 1m`, ...).
    pub applier_flags: Vec<String>,
    /// The access policy, for the validator (what each environment may contain) and the
    /// applier (approvals, signed actions).
    pub access: Option<PathBuf>,
}

/// A service's ops endpoint, for endpoints.json.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceEndpoint {
    pub name: &'static str,
    pub ops: String,
}

type ServiceResult = (&'static str, Result<(), String>);

/// How to (re)start one service: its own flags, NATS connection and shutdown token.
struct Running {
    name: &'static str,
    args: Vec<String>,
    nats: NatsArgs,
    token: CancellationToken,
    task: tokio::task::JoinHandle<ServiceResult>,
}

/// Starts the service called `name` with `args` (its command line, program name first),
/// connecting with `nats`. The connection is set on the parsed configuration rather than
/// given as flags so that a password is never part of a command line shown in an error.
fn spawn_service(
    name: &str,
    args: &[String],
    nats: &NatsArgs,
    token: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<ServiceResult>> {
    macro_rules! spawn {
        ($krate:ident) => {{
            let mut config = $krate::Config::try_parse_from(args)
                .with_context(|| format!("{} flags {:?}", $krate::NAME, args))?;
            config.service.nats = nats.clone();
            Ok(tokio::spawn(async move {
                (
                    $krate::NAME,
                    $krate::run(config, token).await.map_err(|e| e.to_string()),
                )
            }))
        }};
    }
    match name {
        configsync_git_watcher::NAME => spawn!(configsync_git_watcher),
        configsync_validator::NAME => spawn!(configsync_validator),
        configsync_applier::NAME => spawn!(configsync_applier),
        configsync_drift_watcher::NAME => spawn!(configsync_drift_watcher),
        configsync_remediator::NAME => spawn!(configsync_remediator),
        configsync_auditor::NAME => spawn!(configsync_auditor),
        other => anyhow::bail!("no service named {other}"),
    }
}

/// The running stack.
pub struct Stack {
    pub endpoints: Endpoints,
    pub endpoints_file: PathBuf,
    pub services: Vec<ServiceEndpoint>,
    pub nats_log: Option<PathBuf>,
    pub shutdown: CancellationToken,
    running: Vec<Running>,
    sims: Vec<kubesim::KubeSim>,
    bus: Bus,
}

/// The NATS the stack runs on.
enum Bus {
    /// Its own nats-server, with a generated password per user.
    Local {
        server: LocalNats,
        credentials: Credentials,
    },
    /// A NATS it was given: every part connects the same way.
    External(NatsArgs),
}

/// A repository argument as a URL the services accept: paths become absolute `file://` URLs.
pub fn repo_url(repo: &str) -> anyhow::Result<String> {
    if repo.contains("://") {
        return Ok(repo.to_string());
    }
    // Made absolute but not checked: a path that is not a repository is the git-watcher's to
    // report (a source.failed event), while the rest of the stack keeps serving.
    let absolute = std::path::absolute(Path::new(repo))
        .with_context(|| format!("invalid repository path {repo}"))?;
    Ok(format!("file://{}", absolute.display()))
}

impl Stack {
    /// Starts everything and returns once every service reports ready.
    pub async fn start(
        options: &StackOptions,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let state_dir = &options.state_dir;
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let state_dir = state_dir.canonicalize()?;
        let endpoints_file = state_dir.join(ENDPOINTS_FILE);
        // A stale endpoints file would point tools at a dead instance.
        let _ = std::fs::remove_file(&endpoints_file);
        let repo = repo_url(&options.repo)?;
        let (read_token, admin_token) = ensure_audit_tokens(&state_dir)?;
        let webhook_secret = ensure_webhook_secret(&state_dir)?;

        let bus = match &options.nats {
            Some(nats) => Bus::External(nats.clone()),
            None => {
                let server_dir = state_dir.join("nats");
                let (credentials, config) = nats_auth::prepare(&state_dir, &server_dir)
                    .context("cannot prepare the nats-server's users")?;
                let server = LocalNats::start_with_config(&server_dir, Some(&config))
                    .await
                    .context("cannot start nats-server")?;
                Bus::Local {
                    server,
                    credentials,
                }
            }
        };
        let nats_url = match &bus {
            Bus::Local { server, .. } => server.url(),
            Bus::External(nats) => nats.nats_url.clone(),
        };
        let client = bus.nats_args(ADMIN)?.connect("configsync-up").await?;
        let js = async_nats::jetstream::new(client);
        stream::ensure(&js, &StreamSpec::from_definition(1)?)
            .await
            .context("cannot set up the event stream")?;
        bundles::ensure(&js, 1)
            .await
            .context("cannot set up the bundle store")?;

        let (clusters, sims, kubeconfig) = if options.clusters.is_empty() {
            let (specs, sims, path) = local_clusters(&state_dir, &options.environments).await?;
            (specs, sims, Some(path))
        } else {
            (options.clusters.clone(), Vec::new(), None)
        };

        let mut stack = Stack {
            endpoints: Endpoints {
                nats_url: nats_url.clone(),
                nats_credentials: match &bus {
                    Bus::Local { credentials, .. } => Some(credentials.path().to_path_buf()),
                    Bus::External(_) => None,
                },
                audit_url: None,
                webhook_url: None,
                webhook_secret: Some(webhook_secret.clone()),
                kubeconfig: kubeconfig.map(|p| p.display().to_string()),
                services: serde_json::Value::Null,
            },
            endpoints_file,
            services: Vec::new(),
            nats_log: match &bus {
                Bus::Local { server, .. } => Some(server.log_file()),
                Bus::External(_) => None,
            },
            shutdown,
            running: Vec::new(),
            sims,
            bus,
        };
        let common = |ops: SocketAddr| -> Vec<String> {
            ["--ops-addr", &ops.to_string(), "--instance", "up"]
                .into_iter()
                .map(String::from)
                .collect()
        };
        let cluster_flags: Vec<String> = clusters
            .iter()
            .flat_map(|c| ["--cluster".to_string(), c.clone()])
            .collect();
        let policy_flags: Vec<String> = options
            .policies
            .iter()
            .flat_map(|p| ["--policy".to_string(), p.clone()])
            .collect();
        let poll = humantime::format_duration(options.poll_interval).to_string();
        let audit_http = free_local_addr()?;
        let webhook = free_local_addr()?;

        macro_rules! start {
            ($krate:ident, $extra:expr) => {{
                let ops = free_local_addr()?;
                let mut args = vec![$krate::NAME.to_string()];
                args.extend(common(ops));
                args.extend($extra);
                let token = stack.shutdown.child_token();
                // Each service is its own NATS user, named like it.
                let nats = stack.bus.nats_args($krate::NAME)?;
                let task = spawn_service($krate::NAME, &args, &nats, token.clone())?;
                stack.running.push(Running {
                    name: $krate::NAME,
                    args,
                    nats,
                    token,
                    task,
                });
                stack.services.push(ServiceEndpoint {
                    name: $krate::NAME,
                    ops: format!("http://{ops}"),
                });
            }};
        }
        let dir = |name: &str| state_dir.join(name).display().to_string();
        let access_flags: Vec<String> = match &options.access {
            Some(path) => vec![
                "--access".into(),
                std::path::absolute(path)?.display().to_string(),
            ],
            None => Vec::new(),
        };
        start!(
            configsync_git_watcher,
            [
                "--repo".into(),
                repo.clone(),
                "--branch".into(),
                options.branch.clone(),
                "--poll-interval".into(),
                poll.clone(),
                "--work-dir".into(),
                dir("git-watcher"),
                // The repository of a local stack is usually on this machine.
                "--allow-private-hosts".into(),
                "--webhook-addr".into(),
                webhook.to_string(),
                "--webhook-secret-file".into(),
                webhook_secret.display().to_string(),
            ]
            .into_iter()
            .chain(access_flags.iter().cloned())
            .collect::<Vec<_>>()
        );
        start!(
            configsync_validator,
            [
                "--repo".into(),
                repo.clone(),
                "--branch".into(),
                options.branch.clone(),
                "--work-dir".into(),
                dir("validator"),
                "--allow-private-hosts".into(),
            ]
            .into_iter()
            .chain(access_flags.iter().cloned())
            .collect::<Vec<_>>()
        );
        start!(
            configsync_applier,
            cluster_flags
                .iter()
                .cloned()
                .chain(options.applier_flags.iter().cloned())
                .chain(access_flags.iter().cloned())
                .collect::<Vec<_>>()
        );
        start!(configsync_drift_watcher, cluster_flags.clone());
        start!(
            configsync_remediator,
            cluster_flags
                .iter()
                .cloned()
                .chain(policy_flags.iter().cloned())
                .collect::<Vec<_>>()
        );
        start!(
            configsync_auditor,
            [
                "--http-addr".into(),
                audit_http.to_string(),
                "--index-dir".into(),
                dir("auditor-index"),
                "--read-token-file".into(),
                read_token.display().to_string(),
                "--admin-token-file".into(),
                admin_token.display().to_string(),
            ]
        );
        stack.endpoints.audit_url = Some(format!("http://{audit_http}"));
        stack.endpoints.webhook_url = Some(format!(
            "http://{webhook}{}",
            configsync_git_watcher::webhook::PATH
        ));

        // The git-watcher is ready after its first successful poll, which a broken repository
        // never gives: it reports that itself, so it is not waited for.
        for s in stack
            .services
            .clone()
            .into_iter()
            .filter(|s| s.name != configsync_git_watcher::NAME)
        {
            wait_ready(&s.ops, &stack.shutdown)
                .await
                .with_context(|| format!("{} did not become ready", s.name))?;
        }
        stack.endpoints.services = serde_json::to_value(&stack.services)?;
        std::fs::write(
            &stack.endpoints_file,
            serde_json::to_vec_pretty(&stack.endpoints)?,
        )?;
        Ok(stack)
    }

    /// How `user` connects to this stack's NATS: `operator` to read the log and act as a
    /// person, `admin` to manage the stream, a service's name to be that service.
    pub fn nats_args(&self, user: &str) -> anyhow::Result<NatsArgs> {
        self.bus.nats_args(user)
    }

    /// Connects to this stack's NATS as `user` (see [`Stack::nats_args`]).
    pub async fn connect(
        &self,
        user: &str,
        client_name: &str,
    ) -> anyhow::Result<async_nats::Client> {
        Ok(self.nats_args(user)?.connect(client_name).await?)
    }

    /// Stops one service and starts it again with the same flags (as a crash and restart of
    /// that process would), waiting until it is ready again.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let index = self
            .running
            .iter()
            .position(|r| r.name == name)
            .with_context(|| format!("no service named {name}"))?;
        let running = &mut self.running[index];
        running.token.cancel();
        let (_, result) = (&mut running.task).await.context("service task panicked")?;
        result.map_err(|e| anyhow::anyhow!("{name} failed while stopping: {e}"))?;
        running.token = self.shutdown.child_token();
        running.task = spawn_service(name, &running.args, &running.nats, running.token.clone())?;
        if name != configsync_git_watcher::NAME {
            let ops = self
                .services
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.ops.clone())
                .unwrap_or_default();
            wait_ready(&ops, &self.shutdown).await?;
        }
        Ok(())
    }

    /// Runs until shutdown is requested or a service stops by itself (which stops the rest),
    /// then stops everything. Returns whether any service failed.
    pub async fn wait(mut self) -> bool {
        let mut failed = false;
        let tasks = self.running.iter_mut().map(|r| &mut r.task);
        tokio::select! {
            // A requested shutdown wins over services finishing because of it.
            biased;
            _ = self.shutdown.cancelled() => {}
            (done, index, _) = futures::future::select_all(tasks) => {
                report(done, &mut failed);
                failed = true;
                // Its task is finished: it must not be awaited again.
                self.running.remove(index);
                self.shutdown.cancel();
            }
        }
        self.stop_all(failed).await
    }

    /// Stops everything now; returns whether any service failed.
    pub async fn stop(mut self) -> bool {
        self.shutdown.cancel();
        self.stop_all(false).await
    }

    async fn stop_all(&mut self, mut failed: bool) -> bool {
        self.shutdown.cancel();
        for running in self.running.drain(..) {
            report(running.task.await, &mut failed);
        }
        for sim in self.sims.drain(..) {
            sim.shutdown().await;
        }
        if let Bus::Local { server, .. } = &mut self.bus {
            server.kill();
        }
        let _ = std::fs::remove_file(&self.endpoints_file);
        failed
    }
}

impl Bus {
    fn nats_args(&self, user: &str) -> anyhow::Result<NatsArgs> {
        Ok(match self {
            Bus::Local {
                server,
                credentials,
            } => credentials.nats_args(&server.url(), user)?,
            Bus::External(nats) => nats.clone(),
        })
    }
}

fn report(done: Result<ServiceResult, tokio::task::JoinError>, failed: &mut bool) {
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

/// One kubesim per environment, and a kubeconfig with one context per environment, named
/// after it. Returns the `--cluster` specs (cluster name `local`).
async fn local_clusters(
    state_dir: &Path,
    environments: &[String],
) -> anyhow::Result<(Vec<String>, Vec<kubesim::KubeSim>, PathBuf)> {
    let path = state_dir.join("kubeconfig");
    let mut sims = Vec::new();
    let (mut clusters, mut contexts, mut users, mut specs) =
        (String::new(), String::new(), String::new(), Vec::new());
    for env in environments {
        let sim = kubesim::KubeSim::start(kubesim::Config::default())
            .await
            .with_context(|| format!("cannot start kubesim for {env}"))?;
        clusters.push_str(&format!(
            "- name: {env}\n  cluster:\n    server: {}\n",
            sim.url()
        ));
        contexts.push_str(&format!(
            "- name: {env}\n  context:\n    cluster: {env}\n    user: {env}\n"
        ));
        users.push_str(&format!("- name: {env}\n  user: {{}}\n"));
        specs.push(format!("{env}/local={}#{env}", path.display()));
        sims.push(sim);
    }
    let first = environments.first().map(String::as_str).unwrap_or("dev");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}users:\n{users}current-context: {first}\n"
    );
    std::fs::write(&path, yaml).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((specs, sims, path))
}

/// A free loopback port for an ops endpoint (the services bind it right after).
fn free_local_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

async fn wait_ready(ops: &str, shutdown: &CancellationToken) -> anyhow::Result<()> {
    let addr: SocketAddr = ops.trim_start_matches("http://").parse()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if super::http::status(addr, "/readyz").await == Some(200) {
            return Ok(());
        }
        if shutdown.is_cancelled() || tokio::time::Instant::now() >= deadline {
            anyhow::bail!("not ready at {ops}/readyz");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
