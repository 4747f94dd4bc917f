//! What every command that records a person's action shares: who acts, how they sign (an SSH
//! key through `ssh-keygen -Y sign`, which also uses ssh-agent, or an OpenPGP key through
//! `gpg`), reading the environment's state with the applier's own fold, and recording the
//! signed action in the log.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, SubsecRound, Utc};
use configsync_core::access::{HumanAction, NAMESPACE, Statement};
use configsync_core::event::Outgoing;
use configsync_core::event::{ActionSignature, SignatureFormat};
use configsync_core::fold::{EnvironmentState, LogState};
use configsync_core::log::replay::{Start, Until, replay_filtered};
use configsync_core::log::{EventLog, Fold};
use configsync_core::metrics::Metrics;
use configsync_core::names::Name;
use configsync_core::subject;

use configsync_core::nats_auth::OPERATOR;

use super::state_dir::Connection;

/// Output format of the commands that act or show state.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// Who is acting, how they sign, and how to reach the log.
#[derive(clap::Args, Debug)]
pub struct Acting {
    #[command(flatten)]
    pub connection: Connection,
    /// Who is acting: the principal (e-mail) the access policy knows your key by (default:
    /// `git config user.email`, else `$USER@<host>`).
    #[arg(long, env = "CONFIGSYNC_ACTOR")]
    pub actor: Option<String>,
    /// Sign with this SSH key: a private key file, or the `.pub` of a key held by ssh-agent
    /// (`ssh-keygen -Y sign -n configsync`). Needed where an access policy is in force.
    #[arg(long, env = "CONFIGSYNC_SIGNING_KEY")]
    pub key: Option<PathBuf>,
    /// Sign with this OpenPGP key instead (a key id, fingerprint or e-mail `gpg` knows).
    #[arg(long, env = "CONFIGSYNC_GPG_KEY", conflicts_with = "key")]
    pub gpg_key: Option<String>,
    /// How long the signed action may be acted on.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub expires_in: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl Acting {
    /// The person acting: `--actor`, else Git's user.email, else `$USER@host`.
    pub fn actor(&self) -> String {
        if let Some(a) = &self.actor {
            return a.clone();
        }
        let git = Command::new("git")
            .args(["config", "user.email"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|e| !e.is_empty());
        git.unwrap_or_else(|| {
            let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            format!("{user}@{host}")
        })
    }

    /// Signs `payload` (when a key is given) and records it; prints `summary` or the event.
    pub async fn record<P: HumanAction>(
        &self,
        log: &EventLog,
        payload: P,
        summary: String,
    ) -> anyhow::Result<ExitCode> {
        let signer = match (&self.key, &self.gpg_key) {
            (Some(key), _) => Some(Signer::Ssh(key.clone())),
            (None, Some(id)) => Some(Signer::Gpg(id.clone())),
            (None, None) => None,
        };
        let (event, payload) = sign_and_record(log, payload, signer, self.expires_in).await?;
        let actor = payload.claim().actor;
        match self.output {
            Output::Text => {
                let signed = match &payload.claim().signature {
                    Some(s) => format!("signed, valid until {}", fmt_time(&s.expires_at)),
                    None => "unsigned".into(),
                };
                println!("{summary} ({signed}; event {event})")
            }
            Output::Json => println!(
                "{}",
                serde_json::json!({"id": event, "type": P::TYPE, "actor": actor, "data": payload})
            ),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Signs `payload` with `signer` (if any) for `valid_for` from now, and records it in the log
/// (its id is new each time: deciding twice is two decisions). Returns the event id and the
/// payload as recorded.
pub async fn sign_and_record<P: HumanAction>(
    log: &EventLog,
    mut payload: P,
    signer: Option<Signer>,
    valid_for: Duration,
) -> anyhow::Result<(String, P)> {
    let issued_at = Utc::now().trunc_subsecs(0);
    let expires_at =
        issued_at + chrono::Duration::from_std(valid_for).context("the validity is too long")?;
    if let Some(signer) = signer {
        let statement = payload.claim().statement_at(issued_at, expires_at);
        let (format, signature) = tokio::task::spawn_blocking(move || signer.sign(&statement))
            .await
            .context("signing")??;
        payload.set_signature(ActionSignature {
            format,
            signature,
            issued_at,
            expires_at,
        });
    }
    let actor = payload.claim().actor;
    let event = Outgoing::builder(&payload)
        .actor(&actor)
        .cause(&actor)
        .cause(Utc::now().to_rfc3339())
        .build(&log.source)?;
    log.publisher(Duration::from_secs(30))
        .publish(&event)
        .await
        .context("recording the decision in the log")?;
    Ok((event.id().to_string(), payload))
}

fn fmt_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How a person signs.
pub enum Signer {
    /// An SSH private key file, or the `.pub` of a key held by ssh-agent.
    Ssh(PathBuf),
    /// A key id, fingerprint or e-mail `gpg` knows.
    Gpg(String),
}

impl Signer {
    /// Runs the signing tool on the canonical statement; returns the armored signature.
    fn sign(&self, statement: &Statement) -> anyhow::Result<(SignatureFormat, String)> {
        let (format, mut command) = match self {
            Signer::Ssh(key) => {
                if !key.exists() {
                    bail!("signing key {} does not exist", key.display());
                }
                let mut c = Command::new("ssh-keygen");
                c.args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"]).arg(key);
                (SignatureFormat::Ssh, c)
            }
            Signer::Gpg(id) => {
                let mut c = Command::new("gpg");
                c.args(["--batch", "--armor", "--detach-sign", "--local-user", id]);
                (SignatureFormat::Openpgp, c)
            }
        };
        let tool = match format {
            SignatureFormat::Ssh => "ssh-keygen",
            SignatureFormat::Openpgp => "gpg",
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {tool} to sign"))?;
        child
            .stdin
            .take()
            .context("signing tool stdin")?
            .write_all(statement.canonical().as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "{tool} could not sign: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let armored = String::from_utf8(out.stdout).context("signature is not text")?;
        Ok((format, armored))
    }
}

/// Folds the log (one environment's events, or every event) into `fold`, reading as the
/// operator; returns the log for recording decisions.
pub async fn fold_log<F: Fold>(
    connection: &Connection,
    environment: Option<&Name>,
    fold: &mut F,
) -> anyhow::Result<EventLog> {
    let client = connection.connect("configsync-cli", OPERATOR).await?;
    let log = EventLog::new(
        client,
        format!("configsync://cli/{}", std::process::id()),
        Metrics::new(),
    )?;
    let filter = match environment {
        Some(env) => subject::environment_filter(env),
        None => subject::ALL_EVENTS.to_string(),
    };
    replay_filtered(
        &log.js,
        log.stream(),
        &filter,
        Start::Beginning,
        Until::End,
        fold,
    )
    .await?;
    Ok(log)
}

/// The state of one environment and its targets, folded from its events with the applier's
/// fold: what a command refuses, the applier would refuse too.
pub async fn environment_state(
    connection: &Connection,
    environment: &Name,
) -> anyhow::Result<(EventLog, LogState)> {
    let mut state = LogState::default();
    let log = fold_log(connection, Some(environment), &mut state).await?;
    Ok((log, state))
}

/// The environment's state, or a clear error when nothing was ever validated for it.
pub fn known_environment<'a>(
    state: &'a LogState,
    environment: &Name,
) -> anyhow::Result<&'a EnvironmentState> {
    state
        .environment(environment.as_str())
        .with_context(|| format!("no revision was ever validated for environment {environment}"))
}

/// A full revision from a unique prefix of a validated one (at least 7 characters).
pub fn resolve_revision(env: &EnvironmentState, given: &str) -> anyhow::Result<String> {
    if env.validated.contains_key(given) {
        return Ok(given.to_string());
    }
    if given.len() < 7 {
        bail!("revision {given:?}: give at least 7 characters");
    }
    let matches: Vec<&String> = env
        .validated
        .keys()
        .filter(|r| r.starts_with(given))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("revision {given} was never validated for this environment"),
        many => bail!(
            "revision {given} is ambiguous: {}",
            many.iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
