//! The CLI's subcommands; each module holds one.

mod acting;
mod approvals;
mod audit;
mod demo;
mod events;
pub mod http;
mod nats;
mod replay;
mod rollout;
pub mod scaffold;
mod schemas;
mod signatures;
pub mod stack;
pub mod state_dir;
pub mod timeline;
mod up;
mod validate;

use std::process::ExitCode;

/// Every subcommand.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Scaffold an example repository, run everything on it, make a change and a drift, and
    /// print the timeline of events.
    Demo(demo::DemoArgs),
    /// Run everything locally in one process: nats-server, the event stream, the six services.
    Up(up::UpArgs),
    /// Set up NATS for ConfigSync.
    #[command(subcommand)]
    Nats(nats::NatsCommand),
    /// Read the event log.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Rebuild the state of every source, environment and target from the log, at any
    /// sequence or time.
    Replay(replay::ReplayArgs),
    /// Return an environment to an earlier validated revision (default: the last healthy
    /// one) and pin it there until a newer commit or `unpin`.
    Rollback(rollout::RollbackArgs),
    /// Lift an environment's pin: it returns to its newest validated revision.
    Unpin(rollout::UnpinArgs),
    /// Approve a revision waiting at an environment's approval gate (signed with --key or
    /// --gpg-key where an access policy is in force).
    Approve(approvals::ApproveArgs),
    /// Reject a revision waiting at an environment's approval gate: it is not deployed.
    Reject(approvals::RejectArgs),
    /// List what waits for approvals, for whom, and what was already given.
    Approvals(approvals::ApprovalsArgs),
    /// Decide on deletions the prune guard holds back.
    #[command(subcommand)]
    Prune(rollout::PruneCommand),
    /// Show what applying a revision would change in a cluster (a server-side dry run). Exit
    /// 0: no changes, 1: changes, 2: error.
    Diff(rollout::DiffArgs),
    /// Search the audit index of a running auditor, rebuild it, make its API tokens.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Validate manifests in a checkout (pre-merge), as the validator service does.
    Validate(validate::ValidateArgs),
    /// Generate or check the event JSON Schemas in schemas/.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
}

/// Runs one subcommand; the exit code is its verdict.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo(c) => demo::run(c).await,
        Command::Up(c) => up::run(c).await,
        Command::Nats(c) => nats::run(c).await,
        Command::Events(c) => events::run(c).await,
        Command::Replay(c) => replay::run(c).await,
        Command::Rollback(c) => rollout::rollback(c).await,
        Command::Unpin(c) => rollout::unpin(c).await,
        Command::Prune(c) => rollout::prune(c).await,
        Command::Approve(c) => approvals::approve(c).await,
        Command::Reject(c) => approvals::reject(c).await,
        Command::Approvals(c) => approvals::list(c).await,
        Command::Diff(c) => rollout::diff(c).await,
        Command::Audit(c) => audit::run(c).await,
        Command::Schemas(c) => schemas::run(c),
        Command::Validate(c) => validate::run(c),
    }
}
