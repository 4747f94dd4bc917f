//! `configsync`: the operator CLI (stream setup, event tail, replay, schemas).

mod commands;

use std::process::ExitCode;

use clap::Parser;
use configsync_core::telemetry::{self, LogFormat};

/// ConfigSync: GitOps for Kubernetes with an immutable, replayable event log.
#[derive(Parser, Debug)]
#[command(name = "configsync", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "CONFIGSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, "warn,configsync=info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
