//! `configsync replay`: the state of every source, environment and target at any point of
//! the log, rebuilt with the same fold functions the services use.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use configsync_core::cluster::object_ref;
use configsync_core::fold::LogState;
use configsync_core::log::bundles::BundleStore;
use configsync_core::log::replay::{self, Start, Until};
use configsync_core::log::stream::StreamSpec;
use configsync_core::names::Target;
use configsync_core::nats_auth::OPERATOR;

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    connection: super::state_dir::Connection,
    /// Stop at this stream sequence or RFC 3339 time (default: the end of the log).
    #[arg(long)]
    until: Option<String>,
    /// Start from a MessagePack snapshot written by --snapshot-out, instead of the beginning.
    #[arg(long)]
    snapshot_in: Option<PathBuf>,
    /// Write the resulting state as a MessagePack snapshot.
    #[arg(long)]
    snapshot_out: Option<PathBuf>,
    /// Print only this target (`<environment>/<cluster>`), with its environment's pin and its
    /// inventory (the objects of its deployed bundle).
    #[arg(long)]
    target: Option<Target>,
}

fn parse_until(s: &str) -> anyhow::Result<Until> {
    if let Ok(seq) = s.parse::<u64>() {
        return Ok(Until::Sequence(seq));
    }
    let t = DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("--until {s:?} is neither a sequence nor an RFC 3339 time"))?;
    Ok(Until::Time(t.with_timezone(&Utc)))
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let until = args
        .until
        .as_deref()
        .map(parse_until)
        .transpose()?
        .unwrap_or(Until::End);
    let mut state = match &args.snapshot_in {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read snapshot {}", path.display()))?;
            LogState::from_snapshot(&bytes)
                .with_context(|| format!("{} is not a ConfigSync snapshot", path.display()))?
        }
        None => LogState::default(),
    };
    let start = if state.sequence == 0 {
        Start::Beginning
    } else {
        Start::Sequence(state.sequence + 1)
    };
    let spec = StreamSpec::from_definition(1)?;
    let client = args
        .connection
        .connect("configsync-replay", OPERATOR)
        .await?;
    let js = async_nats::jetstream::new(client);
    let stats = replay::replay(&js, spec.name(), start, until, &mut state).await?;
    eprintln!(
        "replayed {} events ({} unreadable) up to sequence {}",
        stats.events, stats.unreadable, state.sequence
    );
    if let Some(path) = &args.snapshot_out {
        std::fs::write(path, state.to_snapshot()?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let output = match &args.target {
        Some(t) => {
            let target = state
                .target(t)
                .with_context(|| format!("no events about target {t} up to this point"))?;
            let inventory = match &target.deployed_bundle {
                Some(digest) => BundleStore::open(&js)
                    .await?
                    .get_bundle(digest)
                    .await
                    .with_context(|| format!("reading the deployed bundle {digest}"))?
                    .objects
                    .iter()
                    .filter_map(object_ref)
                    .collect(),
                None => Vec::new(),
            };
            let pin = state
                .environment(t.environment.as_str())
                .and_then(|e| e.pin.clone());
            let mut shown = serde_json::to_value(target)?;
            shown["pin"] = serde_json::to_value(pin)?;
            shown["inventory"] = serde_json::to_value(inventory)?;
            serde_json::to_string_pretty(&shown)?
        }
        None => serde_json::to_string_pretty(&state)?,
    };
    println!("{output}");
    Ok(ExitCode::SUCCESS)
}
