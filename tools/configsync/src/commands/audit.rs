//! `configsync audit search`: asks a running auditor's search API (`GET /v1/events`) and
//! prints the matching events, newest first.
//!
//! The HTTP exchange is a minimal HTTP/1.1 GET over a TCP stream (the API is plain HTTP on a
//! local or cluster address), which spares the CLI an HTTP client stack.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::events::Format;
use super::state_dir::Endpoints;

/// How long one request to the auditor may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Search the audit index: words (`rollback billing`), fields (`environment:prod AND
    /// type:drift.detected.v1`), phrases, ranges (`sequence:[10 TO 20]`).
    Search(SearchArgs),
    /// Re-check every person's signed action in the log against an access policy (exit 1 when
    /// any signature is bad).
    VerifySignatures(super::signatures::VerifyArgs),
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The query (tantivy syntax; terms are ANDed; default fields: text, subject, type).
    query: String,
    /// Most events to print.
    #[arg(long, env = "CONFIGSYNC_AUDIT_LIMIT", default_value_t = 50)]
    limit: usize,
    /// The auditor's search API, e.g. `http://127.0.0.1:8080` (default: from --state-dir,
    /// else the auditor's default address).
    #[arg(long, env = "CONFIGSYNC_AUDIT_URL")]
    audit_url: Option<String>,
    /// Find the auditor through the endpoints.json of `configsync up --state-dir DIR`.
    #[arg(long, env = "CONFIGSYNC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, env = "CONFIGSYNC_AUDIT_FORMAT", value_enum, default_value_t = Format::Json)]
    format: Format,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Search(args) => search(args).await,
        AuditCommand::VerifySignatures(args) => super::signatures::verify(args).await,
    }
}

async fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let base = audit_url(&args)?;
    let (host, port, prefix) = split_url(&base)?;
    let path = format!(
        "{prefix}/v1/events?q={}&limit={}",
        utf8_percent_encode(&args.query, NON_ALPHANUMERIC),
        args.limit
    );
    let (status, body) =
        tokio::time::timeout(REQUEST_TIMEOUT, super::http::get(&host, port, &path))
            .await
            .map_err(|_| {
                anyhow::anyhow!("the auditor at {base} did not answer in {REQUEST_TIMEOUT:?}")
            })?
            .with_context(|| format!("cannot reach the auditor at {base}"))?;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status != 200 {
        let reason = json["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        bail!("the auditor at {base} answered {status}: {reason}");
    }
    let hits = json["hits"]
        .as_array()
        .with_context(|| format!("the auditor at {base} sent no hits"))?;
    let mut out = std::io::stdout().lock();
    for hit in hits {
        let line = match args.format {
            Format::Json => hit.to_string(),
            Format::Human => human(hit),
        };
        if writeln!(out, "{line}").is_err() {
            // The reader of our output went away (e.g. `| head`).
            return Ok(ExitCode::SUCCESS);
        }
    }
    let total = json["total"].as_u64().unwrap_or(hits.len() as u64);
    if args.format == Format::Human {
        let _ = writeln!(out, "{} of {total} matching events", hits.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--audit-url`, else the `audit_url` of `--state-dir`, else the auditor's default address.
fn audit_url(args: &SearchArgs) -> anyhow::Result<String> {
    if let Some(url) = &args.audit_url {
        return Ok(url.trim_end_matches('/').to_string());
    }
    if let Some(dir) = &args.state_dir {
        return Endpoints::read(dir)?
            .audit_url
            .map(|u| u.trim_end_matches('/').to_string())
            .with_context(|| format!("{} names no auditor (audit_url)", dir.display()));
    }
    Ok(format!("http://{}", configsync_auditor::DEFAULT_HTTP_ADDR))
}

/// `http://host:port/prefix` → host, port, prefix (without a trailing slash).
fn split_url(base: &str) -> anyhow::Result<(String, u16, String)> {
    let url = url::Url::parse(base).with_context(|| format!("{base:?} is not a URL"))?;
    if url.scheme() != "http" {
        bail!("{base:?}: only http:// audit URLs are supported");
    }
    let host = url
        .host_str()
        .with_context(|| format!("{base:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    Ok((host, port, url.path().trim_end_matches('/').to_string()))
}

/// One readable line: position, time, type, routing, and what the event is about.
fn human(hit: &Value) -> String {
    let s = |v: &Value| v.as_str().map(str::to_string);
    let ty = s(&hit["type"]).unwrap_or_default();
    let mut line = format!(
        "#{} {} {}",
        hit["_stream"]["sequence"],
        s(&hit["time"]).unwrap_or_default(),
        ty.strip_prefix("io.configsync.").unwrap_or(&ty)
    );
    for (k, key) in [
        ("env", "environment"),
        ("cluster", "cluster"),
        ("rev", "revision"),
        ("actor", "actor"),
    ] {
        if let Some(v) = s(&hit[key]) {
            let v: String = if k == "rev" {
                v.chars().take(12).collect()
            } else {
                v
            };
            line.push_str(&format!(" {k}={v}"));
        }
    }
    let data = &hit["data"];
    if let Some(message) = data["message"].as_str() {
        line.push_str(&format!(" {:?}", message.lines().next().unwrap_or("")));
    } else if let (Some(kind), Some(name)) = (
        data["object"]["kind"].as_str(),
        data["object"]["name"].as_str(),
    ) {
        line.push_str(&format!(" {kind}/{name}"));
    } else if let Some(reason) = data["reason"].as_str() {
        line.push_str(&format!(" {:?}", reason));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_prefix() {
        assert_eq!(
            split_url("http://127.0.0.1:8080").unwrap(),
            ("127.0.0.1".into(), 8080, String::new())
        );
        assert_eq!(
            split_url("http://audit.local/api/").unwrap(),
            ("audit.local".into(), 80, "/api".into())
        );
        assert!(split_url("https://x").is_err());
    }
}
