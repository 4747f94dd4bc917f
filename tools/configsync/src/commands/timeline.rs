//! One readable line per event, for `events tail --format human` and the demo's timeline:
//! position, time, type, routing, and the one fact a person wants to see about it.

use configsync_core::cloudevents::AttributesReader;
use configsync_core::event::{EventData, ObjectRef, Received};

/// `#12 06:30:01.123 apply.succeeded env=dev cluster=local rev=1a2b3c4d: 7 objects (...)`.
pub fn line(e: &Received) -> String {
    let ty = e
        .type_name()
        .strip_prefix("io.configsync.")
        .unwrap_or(e.type_name());
    let ty = ty.strip_suffix(".v1").unwrap_or(ty);
    let mut line = format!(
        "#{:<4} {} {:<22}",
        e.stream_sequence,
        e.stored_at.format("%H:%M:%S%.3f"),
        ty
    );
    for (k, v) in [
        ("env", e.environment()),
        ("cluster", e.cluster()),
        ("rev", e.revision()),
        ("actor", e.actor()),
    ] {
        if let Some(v) = v {
            let v = if k == "rev" && v.len() > 8 {
                &v[..8]
            } else {
                v
            };
            line.push_str(&format!(" {k}={v}"));
        }
    }
    let detail = detail(e);
    if !detail.is_empty() {
        line.push_str(": ");
        line.push_str(&detail);
    } else if let Some(s) = e.event.subject() {
        line.push_str(&format!(" subject={s}"));
    }
    line
}

fn object(o: &ObjectRef) -> String {
    match &o.namespace {
        Some(ns) => format!("{} {ns}/{}", o.kind, o.name),
        None => format!("{} {}", o.kind, o.name),
    }
}

fn detail(e: &Received) -> String {
    match &e.data {
        EventData::CommitDetected(c) => {
            let envs: Vec<&str> = c
                .environments
                .iter()
                .map(|e| e.environment.as_str())
                .collect();
            format!(
                "\"{}\" by {} (touches {})",
                c.message.lines().next().unwrap_or_default(),
                c.author.name,
                if envs.is_empty() {
                    "no environment".into()
                } else {
                    envs.join(", ")
                }
            )
        }
        EventData::SourceFailed(s) => s.reason.clone(),
        EventData::SourceRewritten(r) => format!(
            "branch {} rewritten from {}",
            r.branch,
            &r.previous_sha[..r.previous_sha.len().min(8)]
        ),
        EventData::ValidationPassed(v) => format!(
            "{} objects, bundle {}",
            v.objects.len(),
            &v.bundle_digest[..v.bundle_digest.len().min(19)]
        ),
        EventData::ValidationFailed(v) => match v.findings.first() {
            Some(f) => {
                let at = match (&f.file, f.line) {
                    (Some(file), Some(line)) => format!("{file}:{line}: "),
                    (Some(file), None) => format!("{file}: "),
                    _ => String::new(),
                };
                format!("{} finding(s); {at}{}", v.findings.len(), f.message)
            }
            None => "failed".into(),
        },
        EventData::ApplyStarted(a) => format!("{} objects", a.objects),
        EventData::ApplySucceeded(a) => {
            let c = &a.counts;
            format!(
                "{} objects ({} created, {} configured, {} unchanged, {} pruned) in {} ms",
                c.created + c.configured + c.unchanged,
                c.created,
                c.configured,
                c.unchanged,
                c.pruned,
                a.duration_ms
            )
        }
        EventData::ApplyFailed(a) => a.reason.clone(),
        EventData::DriftDetected(d) => {
            let fields: Vec<String> = d
                .fields
                .iter()
                .map(|f| {
                    let v = |v: &Option<serde_json::Value>| {
                        v.as_ref()
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "(absent)".into())
                    };
                    format!("{} {} → {}", f.path, v(&f.desired), v(&f.live))
                })
                .collect();
            let by = d
                .changed_by
                .as_deref()
                .map(|m| format!(" by {m}"))
                .unwrap_or_default();
            format!(
                "{} {:?}{by}: {}",
                object(&d.object),
                d.kind,
                fields.join(", ")
            )
            .replace("Modified", "modified")
            .replace("Deleted", "deleted")
        }
        EventData::DriftResolved(d) => format!("{} back in sync", object(&d.object)),
        EventData::RemediationStarted(r) => format!("repairing {}", object(&r.object)),
        EventData::RemediationSucceeded(r) => format!("{} repaired", object(&r.object)),
        EventData::RemediationFailed(r) => format!("{}: {}", object(&r.object), r.reason),
        EventData::RemediationConflict(r) => format!(
            "{} keeps being changed by {}",
            object(&r.object),
            r.other_manager
        ),
        EventData::DeadLetterRecorded(d) => format!(
            "{} gave up on #{}: {}",
            d.consumer, d.stream_sequence, d.reason
        ),
        EventData::ResourcePruned(p) => format!("{} pruned", object(&p.object)),
        EventData::HealthDegraded(h) => match h.unhealthy.first() {
            Some(u) => format!(
                "{} unhealthy: {}: {}",
                h.unhealthy.len(),
                object(&u.object),
                u.reason
            ),
            None => "unhealthy".into(),
        },
        EventData::HealthReady(h) => format!("{} objects healthy", h.objects),
        EventData::AuditCheckpoint(a) => format!("{} events indexed", a.events_indexed),
        EventData::ApprovalRequired(a) => {
            format!("{} approval(s) required: {}", a.required, a.reason)
        }
        EventData::ApprovalGranted(a) => format!(
            "approved by {}{}",
            a.approver,
            if a.signature.is_some() {
                " (signed)"
            } else {
                ""
            }
        ),
        EventData::ApprovalRejected(r) => format!("rejected by {}: {}", r.rejected_by, r.reason),
        EventData::ActionRefused(r) => {
            format!("{} by {} refused: {}", r.action, r.actor, r.reason)
        }
        EventData::UnpinRequested(u) => {
            format!("unpin requested by {}: {}", u.requested_by, u.reason)
        }
        EventData::PruneCompleted(p) => {
            format!(
                "{} held object(s) pruned, approved by {}",
                p.deleted, p.approved_by
            )
        }
        EventData::RollbackRequested(r) => format!(
            "rollback to {} requested by {}: {}",
            short(&r.to_revision),
            r.requested_by,
            r.reason
        ),
        EventData::EnvironmentPinned(p) => format!(
            "pinned to {} by {}: {}",
            short(&p.revision),
            p.actor,
            p.reason
        ),
        EventData::EnvironmentUnpinned(u) => format!("pin lifted by {}: {}", u.actor, u.reason),
        EventData::RolloutWaiting(w) => format!("waiting: {}", w.reason),
        EventData::PruneHeld(p) => format!("prune held: {}", p.reason),
        EventData::PruneApproved(p) => {
            format!("prune approved by {}: {}", p.approved_by, p.reason)
        }
    }
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(8)]
}
