//! `configsync`: the operator CLI (stream setup, event tail, replay, schemas).

use std::process::ExitCode;

use clap::Parser;
use configsync::commands;
use configsync_core::telemetry::{self, LogFormat};

// mimalloc: glibc malloc is the top cost of event handling in profiles (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    // The demo's story is on stdout; its services' logs (warnings included: the demo breaks
    // things on purpose) would drown it.
    let default_filter = match cli.command {
        commands::Command::Demo(_) => "error",
        _ => "warn,configsync=info",
    };
    telemetry::init(cli.log_format, default_filter);
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
