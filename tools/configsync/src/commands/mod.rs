//! The CLI's subcommands; each module holds one.

mod events;
mod nats;
mod replay;
mod schemas;
mod state_dir;
mod up;

use std::process::ExitCode;

/// Every subcommand.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
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
    /// Generate or check the event JSON Schemas in schemas/.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
}

/// Runs one subcommand; the exit code is its verdict.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up(c) => up::run(c).await,
        Command::Nats(c) => nats::run(c).await,
        Command::Events(c) => events::run(c).await,
        Command::Replay(c) => replay::run(c).await,
        Command::Schemas(c) => schemas::run(c),
    }
}
