//! `configsync nats init`: creates or updates the event stream, refusing an incompatible one.

use std::process::ExitCode;

use anyhow::Context;
use configsync_core::log::bundles;
use configsync_core::log::stream::{self, Ensured, StreamSpec};
use configsync_core::nats_auth::ADMIN;

use super::state_dir::Connection;

#[derive(clap::Subcommand, Debug)]
pub enum NatsCommand {
    /// Create or update the event stream from nats/stream.json.
    Init(InitArgs),
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// `--nats-url` (as admin, with --nats-user/--nats-password when the server has users),
    /// or `--state-dir` of a running `configsync up` (as its admin).
    #[command(flatten)]
    connection: Connection,
    /// Stream replicas: 1 on a laptop, 3 on a production NATS cluster.
    #[arg(long, env = "CONFIGSYNC_STREAM_REPLICAS", default_value_t = 1)]
    replicas: usize,
}

pub async fn run(command: NatsCommand) -> anyhow::Result<ExitCode> {
    match command {
        NatsCommand::Init(args) => init(args).await,
    }
}

async fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let spec = StreamSpec::from_definition(args.replicas)?;
    let client = args.connection.connect("configsync-cli", ADMIN).await?;
    let js = async_nats::jetstream::new(client);
    let outcome = stream::ensure(&js, &spec)
        .await
        .with_context(|| format!("cannot set up stream {}", spec.name()))?;
    bundles::ensure(&js, args.replicas)
        .await
        .context("cannot set up the bundle store")?;
    let verb = match outcome {
        Ensured::Created => "created",
        Ensured::Updated => "updated",
        Ensured::Unchanged => "already up to date:",
    };
    println!(
        "stream {} {verb} subjects {:?}, {} replica(s), file storage, deny delete/purge, duplicate window {:?}, max message {} bytes",
        spec.name(),
        spec.config.subjects,
        spec.config.num_replicas,
        spec.duplicate_window(),
        spec.max_message_size()
    );
    println!("object store {} ready", bundles::BUCKET);
    Ok(ExitCode::SUCCESS)
}
