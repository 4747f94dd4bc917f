//! `configsync schemas write|check`: the JSON Schemas of every event type.

use std::path::PathBuf;
use std::process::ExitCode;

use configsync_core::schema;

#[derive(clap::Subcommand, Debug)]
pub enum SchemasCommand {
    /// Write schemas/ from the Rust event types.
    Write {
        /// Output directory.
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
    /// Exit 1 when schemas/ differs from what the Rust types generate.
    Check {
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
    },
}

pub fn run(command: SchemasCommand) -> anyhow::Result<ExitCode> {
    match command {
        SchemasCommand::Write { dir } => {
            let n = schema::write(&dir)?;
            println!("wrote {n} files to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        SchemasCommand::Check { dir } => {
            let stale = schema::stale(&dir);
            if stale.is_empty() {
                println!("{} is up to date", dir.display());
                Ok(ExitCode::SUCCESS)
            } else {
                for s in &stale {
                    println!("stale: {s}");
                }
                println!("run `configsync schemas write --dir {}`", dir.display());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
