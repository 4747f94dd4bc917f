//! `configsync approve`, `reject` and `approvals`: people's signed decisions on revisions that
//! wait at an environment's approval gate, and what waits for whom.

use std::process::ExitCode;

use anyhow::Context;
use configsync_core::access::{AccessPolicy, assess};
use configsync_core::event::{ApprovalGranted, ApprovalRejected};
use configsync_core::fold::{EnvironmentState, LogState};
use configsync_core::names::Name;
use serde::Serialize;

use super::acting::{
    Acting, Output, environment_state, fold_log, known_environment, resolve_revision,
};
use super::state_dir::Connection;

#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    #[command(flatten)]
    acting: Acting,
    #[arg(long)]
    env: Name,
    /// The revision (default: the one waiting for approvals in the environment).
    #[arg(long)]
    revision: Option<String>,
    /// A note recorded with the approval.
    #[arg(long)]
    comment: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RejectArgs {
    #[command(flatten)]
    acting: Acting,
    #[arg(long)]
    env: Name,
    /// The revision (default: the one waiting for approvals in the environment).
    #[arg(long)]
    revision: Option<String>,
    /// Why, recorded in the log.
    #[arg(long)]
    reason: String,
}

#[derive(clap::Args, Debug)]
pub struct ApprovalsArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only this environment.
    #[arg(long)]
    env: Option<Name>,
    /// Also count the approvals under this access policy (the applier's verdict, with the
    /// reason each ignored approval does not count).
    #[arg(long, env = "CONFIGSYNC_ACCESS")]
    access: Option<std::path::PathBuf>,
    /// Also list revisions already deployed, superseded or rejected.
    #[arg(long)]
    all: bool,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// The revision waiting at the gate: the newest one the applier asked approvals for.
fn waiting(env: &EnvironmentState, given: Option<&str>) -> anyhow::Result<String> {
    if let Some(given) = given {
        return resolve_revision(env, given);
    }
    env.newest
        .clone()
        .filter(|r| env.decisions.get(r).is_some_and(|d| d.required.is_some()))
        .context("no revision waits for approvals here; name one with --revision")
}

pub async fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    let (log, state) = environment_state(&args.acting.connection, &args.env).await?;
    let env = known_environment(&state, &args.env)?;
    let revision = waiting(env, args.revision.as_deref())?;
    let bundle_digest = env.validated[&revision].bundle_digest.clone();
    let approver = args.acting.actor();
    let approval = ApprovalGranted {
        environment: args.env.to_string(),
        revision: revision.clone(),
        approver: approver.clone(),
        comment: args.comment.clone(),
        bundle_digest,
        signature: None,
    };
    let summary = format!("{revision} approved for {} by {approver}", args.env);
    args.acting.record(&log, approval, summary).await
}

pub async fn reject(args: RejectArgs) -> anyhow::Result<ExitCode> {
    let (log, state) = environment_state(&args.acting.connection, &args.env).await?;
    let env = known_environment(&state, &args.env)?;
    let revision = waiting(env, args.revision.as_deref())?;
    let bundle_digest = env.validated[&revision].bundle_digest.clone();
    let by = args.acting.actor();
    let rejection = ApprovalRejected {
        environment: args.env.to_string(),
        revision: revision.clone(),
        bundle_digest,
        rejected_by: by.clone(),
        reason: args.reason.clone(),
        signature: None,
    };
    let summary = format!("{revision} rejected for {} by {by}", args.env);
    args.acting.record(&log, rejection, summary).await
}

/// One approval or rejection as `approvals` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Given {
    event_id: String,
    actor: String,
    at: String,
    signed: bool,
    /// Why it does not count (the applier's `action.refused`, or the policy's verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<String>,
}

/// A revision at an environment's gate.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Waiting {
    environment: String,
    revision: String,
    /// waiting, approved, rejected, deployed or superseded.
    status: String,
    required: u32,
    approvers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    approvals: Vec<Given>,
    rejections: Vec<Given>,
}

pub async fn list(args: ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let policy = args.access.as_deref().map(AccessPolicy::load).transpose()?;
    let mut state = LogState::default();
    fold_log(&args.connection, args.env.as_ref(), &mut state).await?;
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for (name, env) in &state.environments {
        if args.env.as_ref().is_some_and(|e| e.as_str() != name) {
            continue;
        }
        for (revision, decisions) in &env.decisions {
            let Some(required) = &decisions.required else {
                continue;
            };
            let deployed = state.targets.iter().any(|(t, s)| {
                t.environment.as_str() == name && s.deployed_revision.as_ref() == Some(revision)
            });
            let assessment = policy.as_ref().map(|p| assess(p, name, env, revision, now));
            let ignored_by_policy = |id: &str| {
                assessment
                    .as_ref()
                    .and_then(|a| a.ignored.iter().find(|i| i.event_id == id))
                    .map(|i| i.reason.clone())
            };
            let given = |event_id: &str,
                         actor: &str,
                         at: &chrono::DateTime<chrono::Utc>,
                         signed: bool| Given {
                event_id: event_id.to_string(),
                actor: actor.to_string(),
                at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                signed,
                ignored: decisions
                    .refused
                    .get(event_id)
                    .cloned()
                    .or_else(|| ignored_by_policy(event_id)),
            };
            let approvals: Vec<Given> = decisions
                .granted
                .iter()
                .map(|a| {
                    given(
                        &a.event_id,
                        &a.action.approver,
                        &a.stored_at,
                        a.action.signature.is_some(),
                    )
                })
                .collect();
            let rejections: Vec<Given> = decisions
                .rejected
                .iter()
                .map(|r| {
                    given(
                        &r.event_id,
                        &r.action.rejected_by,
                        &r.stored_at,
                        r.action.signature.is_some(),
                    )
                })
                .collect();
            let rejected = rejections.iter().any(|r| r.ignored.is_none());
            let status = if deployed {
                "deployed"
            } else if rejected {
                "rejected"
            } else if env.wanted().map(|(r, _)| r) != Some(revision.as_str()) {
                "superseded"
            } else if assessment
                .as_ref()
                .is_some_and(|a| a.verdict == configsync_core::access::Verdict::Open)
            {
                "approved"
            } else {
                "waiting"
            };
            if !args.all && status != "waiting" && status != "approved" {
                continue;
            }
            rows.push(Waiting {
                environment: name.clone(),
                revision: revision.clone(),
                status: status.into(),
                required: required.required,
                approvers: required.approvers.clone(),
                author: required.author.clone(),
                approvals,
                rejections,
            });
        }
    }
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Text => print_rows(&rows),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_rows(rows: &[Waiting]) {
    if rows.is_empty() {
        println!("nothing waits for approvals");
        return;
    }
    for w in rows {
        let counted = w.approvals.iter().filter(|a| a.ignored.is_none()).count();
        println!(
            "{} {} [{}]: {counted} of {} approval(s); may approve: {}{}",
            w.environment,
            w.revision,
            w.status,
            w.required,
            w.approvers.join(", "),
            w.author
                .as_ref()
                .map(|a| format!(" (author {a})"))
                .unwrap_or_default()
        );
        for (what, list) in [("approved", &w.approvals), ("rejected", &w.rejections)] {
            for g in list {
                let note = match &g.ignored {
                    Some(reason) => format!(" -- ignored: {reason}"),
                    None if !g.signed => " (unsigned)".into(),
                    None => String::new(),
                };
                println!("  {what} by {} at {}{note}", g.actor, g.at);
            }
        }
    }
}
