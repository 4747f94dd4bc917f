//! `configsync audit verify-signatures`: re-checks every person's action in the log against an
//! access policy, as of when it was recorded. The signatures travel in the events, so any past
//! decision can be checked again, years later, without trusting whoever stored it.

use std::process::ExitCode;

use configsync_core::access::{AccessPolicy, Claim};
use configsync_core::event::Received;
use configsync_core::log::Fold;
use configsync_core::names::Name;
use serde::Serialize;

use super::acting::{Output, fold_log};
use super::state_dir::Connection;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    connection: Connection,
    /// The access policy whose keys and rules the actions are checked against.
    #[arg(long, env = "CONFIGSYNC_ACCESS")]
    access: std::path::PathBuf,
    /// Only this environment.
    #[arg(long)]
    env: Option<Name>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// One action's verdict.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Checked {
    sequence: u64,
    event_id: String,
    recorded_at: String,
    action: String,
    environment: String,
    revision: String,
    actor: String,
    /// good, bad or unsigned.
    signature: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    /// Why the signature is bad, or why the signer was not allowed to act then.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// Every person's action in the log, with its verdict.
struct Verify<'a> {
    policy: &'a AccessPolicy,
    checked: Vec<Checked>,
}

impl Fold for Verify<'_> {
    fn apply(&mut self, event: &Received) {
        let Some(claim) = Claim::of(&event.data) else {
            return;
        };
        let (signature, signer, problem) = match &claim.signature {
            None => ("unsigned", None, None),
            Some(sig) => match self.policy.verify_signature(&claim.statement(sig), sig) {
                Err(e) => ("bad", None, Some(e.to_string())),
                // A good signature; whether the signer could act then is the policy's call.
                Ok(v) => (
                    "good",
                    Some(format!("{} ({})", v.principal, v.key)),
                    self.policy
                        .verify(&claim, event.stored_at)
                        .err()
                        .map(|e| e.to_string()),
                ),
            },
        };
        self.checked.push(Checked {
            sequence: event.stream_sequence,
            event_id: event.id().to_string(),
            recorded_at: event.stored_at.to_rfc3339(),
            action: claim.action.to_string(),
            environment: claim.environment,
            revision: claim.revision,
            actor: claim.actor,
            signature,
            signer,
            problem,
        });
    }
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let policy = AccessPolicy::load(&args.access)?;
    let mut fold = Verify {
        policy: &policy,
        checked: Vec::new(),
    };
    fold_log(&args.connection, args.env.as_ref(), &mut fold).await?;
    let bad = fold.checked.iter().filter(|c| c.signature == "bad").count();
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&fold.checked)?),
        Output::Text => {
            for c in &fold.checked {
                println!(
                    "#{} {} {} {} {} by {}: {}{}{}",
                    c.sequence,
                    c.recorded_at,
                    c.action,
                    c.environment,
                    c.revision,
                    c.actor,
                    c.signature,
                    c.signer
                        .as_ref()
                        .map(|s| format!(", signed by {s}"))
                        .unwrap_or_default(),
                    c.problem
                        .as_ref()
                        .map(|p| format!(" -- {p}"))
                        .unwrap_or_default()
                );
            }
            println!(
                "{} action(s): {} good, {bad} bad, {} unsigned",
                fold.checked.len(),
                fold.checked
                    .iter()
                    .filter(|c| c.signature == "good")
                    .count(),
                fold.checked
                    .iter()
                    .filter(|c| c.signature == "unsigned")
                    .count()
            );
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
