//! `configsync audit search`: asks a running auditor's search API (`GET /v1/events`) and
//! prints the matching events, newest first. `configsync audit reindex`: has the auditor
//! rebuild its index from the log (`POST /v1/admin/reindex`, admin token). `configsync audit
//! tokens`: makes the API's tokens in a directory, as `configsync up` does.
//!
//! The API wants a bearer token: `--token` / `CONFIGSYNC_AUDIT_TOKEN` or `--token-file` against
//! a deployment; with `--state-dir`, the token `configsync up` keeps there (the read token for
//! searches, the admin token for a reindex: no command holds more than it needs).
//!
//! The HTTP exchange is a minimal HTTP/1.1 request over a TCP stream (the API is plain HTTP on
//! a local or cluster address), which spares the CLI an HTTP client stack.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use configsync_auditor::auth::{Scope, Token};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::events::Format;
use super::state_dir::{self, Endpoints};

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
    /// Have the auditor empty its index and rebuild it from the whole log (after a change of
    /// what is redacted, for one). Needs the admin token.
    Reindex(ReindexArgs),
    /// Make the auditor's read and admin tokens in a directory, as `configsync up` does in its
    /// state directory (kept if they exist; files `audit-read.token` and `audit-admin.token`,
    /// mode 0600). For deployments without `up`, such as docker-compose.
    Tokens(TokensArgs),
}

#[derive(clap::Args, Debug)]
pub struct TokensArgs {
    /// Where the token files are kept.
    #[arg(long, env = "CONFIGSYNC_AUDIT_TOKEN_DIR")]
    dir: PathBuf,
}

/// Where the audit API is and how to authenticate to it.
#[derive(clap::Args, Debug)]
pub struct AuditApi {
    /// The auditor's API, e.g. `http://127.0.0.1:8080` (default: from --state-dir, else the
    /// auditor's default address).
    #[arg(long, env = "CONFIGSYNC_AUDIT_URL")]
    audit_url: Option<String>,
    /// Find the auditor and its token through `configsync up --state-dir DIR`.
    #[arg(long, env = "CONFIGSYNC_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The API's bearer token. Prefer the environment variable or --token-file: a flag's
    /// value shows in the process list.
    #[arg(long, env = "CONFIGSYNC_AUDIT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the API's bearer token.
    #[arg(long, env = "CONFIGSYNC_AUDIT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// The query (tantivy syntax; terms are ANDed; default fields: text, subject, type).
    query: String,
    /// Most events to print.
    #[arg(long, env = "CONFIGSYNC_AUDIT_LIMIT", default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    api: AuditApi,
    /// Output format.
    #[arg(long, env = "CONFIGSYNC_AUDIT_FORMAT", value_enum, default_value_t = Format::Json)]
    format: Format,
}

#[derive(clap::Args, Debug)]
pub struct ReindexArgs {
    #[command(flatten)]
    api: AuditApi,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Search(args) => search(args).await,
        AuditCommand::VerifySignatures(args) => super::signatures::verify(args).await,
        AuditCommand::Reindex(args) => reindex(args).await,
        AuditCommand::Tokens(args) => {
            std::fs::create_dir_all(&args.dir)
                .with_context(|| format!("cannot create {}", args.dir.display()))?;
            let (read, admin) = state_dir::ensure_audit_tokens(&args.dir)?;
            // The files, never the tokens: this output ends up in logs.
            println!("read:  {}", read.display());
            println!("admin: {}", admin.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl AuditApi {
    /// `--audit-url`, else the `audit_url` of `--state-dir`, else the auditor's default address.
    fn url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.audit_url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        if let Some(dir) = &self.state_dir {
            return Endpoints::read(dir)?
                .audit_url
                .map(|u| u.trim_end_matches('/').to_string())
                .with_context(|| format!("{} names no auditor (audit_url)", dir.display()));
        }
        Ok(format!("http://{}", configsync_auditor::DEFAULT_HTTP_ADDR))
    }

    /// `--token`, else `--token-file`, else the token of `scope` that `configsync up` keeps
    /// in `--state-dir`; none if none is given (the auditor then answers 401).
    fn token(&self, scope: Scope) -> anyhow::Result<Option<Token>> {
        let parse = |text: &str, from: &str| {
            Token::parse(text)
                .map_err(|reason| anyhow::anyhow!("the audit token {from} is unusable: {reason}"))
        };
        if let Some(token) = &self.token {
            return parse(token, "of --token").map(Some);
        }
        let file = match (&self.token_file, &self.state_dir) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => state_dir::audit_token_file(dir, scope),
            (None, None) => return Ok(None),
        };
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read the audit token in {}", file.display()))?;
        parse(&text, &format!("in {}", file.display())).map(Some)
    }

    /// Sends `method path` with the token of `scope`; the status and the body as JSON (null
    /// when it is not JSON). Any status but `ok` is an error with the auditor's reason.
    async fn call(&self, method: &str, path: &str, scope: Scope, ok: u16) -> anyhow::Result<Value> {
        let base = self.url()?;
        let (host, port, prefix) = split_url(&base)?;
        let token = self.token(scope)?;
        let path = format!("{prefix}{path}");
        let exchange = super::http::request(
            method,
            &host,
            port,
            &path,
            token.as_ref().map(Token::expose),
        );
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                anyhow::anyhow!("the auditor at {base} did not answer in {REQUEST_TIMEOUT:?}")
            })?
            .with_context(|| format!("cannot reach the auditor at {base}"))?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != ok {
            let reason = json["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
            let hint = match (status, &token) {
                (401, None) => {
                    " (give --token, CONFIGSYNC_AUDIT_TOKEN, --token-file or the --state-dir of `configsync up`)"
                }
                _ => "",
            };
            bail!("the auditor at {base} answered {status}: {reason}{hint}");
        }
        Ok(json)
    }
}

async fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let path = format!(
        "/v1/events?q={}&limit={}",
        utf8_percent_encode(&args.query, NON_ALPHANUMERIC),
        args.limit
    );
    let json = args.api.call("GET", &path, Scope::Read, 200).await?;
    let base = args.api.url()?;
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

async fn reindex(args: ReindexArgs) -> anyhow::Result<ExitCode> {
    let json = args
        .api
        .call("POST", "/v1/admin/reindex", Scope::Admin, 202)
        .await?;
    let state = json["rebuilding"].as_str().unwrap_or("started");
    eprintln!(
        "the auditor at {} is rebuilding its index from the log ({state}); `/v1/status` shows its progress",
        args.api.url()?
    );
    Ok(ExitCode::SUCCESS)
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
