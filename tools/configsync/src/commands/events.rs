//! `configsync events tail`: prints events from the log, then follows it.

use std::io::Write;
use std::process::ExitCode;

use configsync_core::log::replay::{self, Entry, Reader, Start};
use configsync_core::log::stream::StreamSpec;
use configsync_core::nats_auth::OPERATOR;
use configsync_core::subject;

#[derive(clap::Subcommand, Debug)]
pub enum EventsCommand {
    /// Print events (one JSON line each by default), then follow new ones.
    Tail(TailArgs),
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One CloudEvents structured-mode JSON object per line, with `_stream` position.
    Json,
    /// One readable line per event.
    Human,
}

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    connection: super::state_dir::Connection,
    /// A NATS subject filter, e.g. `configsync.evt.prod.>` (overrides --env/--cluster/--type).
    #[arg(long)]
    filter: Option<String>,
    /// Only events about this environment.
    #[arg(long)]
    env: Option<String>,
    /// Only events about this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only events of this type, e.g. `apply.succeeded.v1` or `io.configsync.apply.succeeded.v1`.
    #[arg(long = "type")]
    type_name: Option<String>,
    /// Where to start: `begin`, `new`, a stream sequence or an RFC 3339 time
    /// (default: the last 10 events).
    #[arg(long)]
    from: Option<Start>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Stop after this many events.
    #[arg(long)]
    limit: Option<u64>,
    /// Stop once the events stored before the command started are printed.
    #[arg(long)]
    no_follow: bool,
}

impl TailArgs {
    fn subject_filter(&self) -> String {
        if let Some(f) = &self.filter {
            return f.clone();
        }
        if self.env.is_none() && self.cluster.is_none() && self.type_name.is_none() {
            return subject::ALL_EVENTS.to_string();
        }
        let ty = self
            .type_name
            .as_deref()
            .map(|t| t.strip_prefix("io.configsync.").unwrap_or(t).to_string());
        format!(
            "{}.evt.{}.{}.{}",
            subject::ROOT,
            self.env.as_deref().unwrap_or("*"),
            self.cluster.as_deref().unwrap_or("*"),
            ty.unwrap_or_else(|| ">".into())
        )
    }
}

pub async fn run(command: EventsCommand) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::Tail(args) => tail(args).await,
    }
}

async fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    let spec = StreamSpec::from_definition(1)?;
    let client = args.connection.connect("configsync-tail", OPERATOR).await?;
    let js = async_nats::jetstream::new(client);
    let last = replay::last_sequence(&js, spec.name()).await?;
    let start = args.from.unwrap_or(if last > 10 {
        Start::Sequence(last - 9)
    } else {
        Start::Beginning
    });
    if args.no_follow
        && (last == 0
            || matches!(start, Start::New | Start::Sequence(_) if start_after(start, last)))
    {
        return Ok(ExitCode::SUCCESS);
    }
    let filter = args.subject_filter();
    let mut reader = Reader::open(&js, spec.name(), start, Some(&filter)).await?;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        let next = if args.no_follow {
            // A filter may match nothing near the end: stop when the reader goes idle.
            match tokio::time::timeout(std::time::Duration::from_secs(2), reader.next()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                next = reader.next() => next,
                _ = tokio::signal::ctrl_c() => break,
            }
        };
        let Some(entry) = next else { break };
        let entry = entry?;
        let seq = entry.stream_sequence();
        let line = match &entry {
            Entry::Event(e) => match args.format {
                Format::Json => e.to_json_line().to_string(),
                Format::Human => super::timeline::line(e),
            },
            Entry::Unreadable { stream_sequence, subject, reason } => match args.format {
                Format::Json => serde_json::json!({"_unreadable": {"sequence": stream_sequence, "subject": subject, "reason": reason}}).to_string(),
                Format::Human => format!("#{stream_sequence} UNREADABLE {subject}: {reason}"),
            },
        };
        let mut out = stdout.lock();
        if writeln!(out, "{line}").is_err() {
            // The reader of our output went away (e.g. `| head`): stop quietly.
            break;
        }
        let _ = out.flush();
        printed += 1;
        if args.limit.is_some_and(|l| printed >= l) || (args.no_follow && seq >= last) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn start_after(start: Start, last: u64) -> bool {
    match start {
        Start::New => true,
        Start::Sequence(s) => s > last,
        _ => false,
    }
}
