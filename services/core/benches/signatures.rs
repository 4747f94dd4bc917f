//! Signature benchmark (issue 15): the cost of verifying one signed approval in Rust (SSH
//! Ed25519 and RSA-3072, OpenPGP Ed25519), against `ssh-keygen -Y verify` checking the same
//! signature (the peer tool), and the time the approval gate adds to a decision when two
//! approvals are present, against an environment without a gate. Keys are made with
//! ssh-keygen and gpg in a temporary directory.
//!
//! `cargo bench -p configsync-core --bench signatures -- [ITERATIONS]`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use configsync_core::access::{AccessPolicy, Claim, HumanAction, NAMESPACE, assess};
use configsync_core::event::{ActionSignature, ApprovalGranted, EventData, SignatureFormat};
use configsync_core::fold::{Decisions, EnvironmentState, Recorded, ValidatedRevision};

fn run(command: &mut Command, input: Option<&[u8]>) -> String {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool runs");
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("the tool ends");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("text")
}

fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    // Warm up once, then time the loop.
    f();
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn approval(who: &str, revision: &str) -> ApprovalGranted {
    ApprovalGranted {
        environment: "prod".into(),
        revision: revision.into(),
        approver: format!("{who}@example.com"),
        comment: None,
        bundle_digest: "sha256:bench".into(),
        signature: None,
    }
}

/// Signs `a` with the SSH key at `key`.
fn ssh_signed(mut a: ApprovalGranted, key: &Path) -> ApprovalGranted {
    let issued_at = Utc::now().trunc_subsecs(0);
    let expires_at = issued_at + chrono::Duration::hours(1);
    let statement = a.claim().statement_at(issued_at, expires_at).canonical();
    let signature = run(
        Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f"])
            .arg(key),
        Some(statement.as_bytes()),
    );
    a.set_signature(ActionSignature {
        format: SignatureFormat::Ssh,
        signature,
        issued_at,
        expires_at,
    });
    a
}

fn main() {
    let iterations: u32 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let mut allowed = String::new();
    for (who, kind) in [("alice", "ed25519"), ("bob", "ed25519"), ("rsa", "rsa")] {
        let key = d.join(who);
        let mut c = Command::new("ssh-keygen");
        c.args(["-q", "-t", kind, "-N", "", "-f"]).arg(&key);
        if kind == "rsa" {
            c.args(["-b", "3072"]);
        }
        run(&mut c, None);
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        allowed.push_str(&format!("{who}@example.com {public}"));
    }
    std::fs::write(d.join("allowed_signers"), &allowed).expect("write");
    // OpenPGP: one Ed25519 key made by gpg.
    let home = tempfile::Builder::new()
        .prefix("gpg")
        .tempdir()
        .expect("gnupg home");
    let gpg = |args: &[&str], input: Option<&[u8]>| {
        run(
            Command::new("gpg")
                .arg("--homedir")
                .arg(home.path())
                .args([
                    "--batch",
                    "--no-tty",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                ])
                .args(args),
            input,
        )
    };
    gpg(
        &[
            "--quick-gen-key",
            "Erin <erin@example.com>",
            "ed25519",
            "sign",
            "never",
        ],
        None,
    );
    std::fs::write(d.join("keys.asc"), gpg(&["--armor", "--export"], None)).expect("write");
    std::fs::write(
        d.join("access.yaml"),
        "signers: {ssh: allowed_signers, openpgp: keys.asc}\ngroups:\n  sre: [alice@example.com, bob@example.com, rsa@example.com, erin@example.com]\nenvironments:\n  prod:\n    approvals: {required: 2, from: [sre]}\n",
    )
    .expect("write");
    let policy = AccessPolicy::load(&d.join("access.yaml")).expect("policy");
    let now = Utc::now();

    let ed = ssh_signed(approval("alice", "r1"), &d.join("alice"));
    let rsa = ssh_signed(approval("rsa", "r1"), &d.join("rsa"));
    let mut pgp = approval("erin", "r1");
    {
        let issued_at = Utc::now().trunc_subsecs(0);
        let expires_at = issued_at + chrono::Duration::hours(1);
        let statement = pgp.claim().statement_at(issued_at, expires_at).canonical();
        let signature = gpg(
            &[
                "--armor",
                "--detach-sign",
                "--local-user",
                "erin@example.com",
            ],
            Some(statement.as_bytes()),
        );
        pgp.set_signature(ActionSignature {
            format: SignatureFormat::Openpgp,
            signature,
            issued_at,
            expires_at,
        });
    }

    println!(
        "signature verification, {iterations} iterations each (policy.verify: parse, key lookup, verify, rights)"
    );
    let mut rows = Vec::new();
    for (name, a) in [
        ("ssh ed25519", &ed),
        ("ssh rsa-3072", &rsa),
        ("openpgp ed25519", &pgp),
    ] {
        let claim = Claim::of(&EventData::ApprovalGranted(a.clone())).expect("a claim");
        policy.verify(&claim, now).expect("a good signature");
        let t = per_call(iterations, || {
            std::hint::black_box(policy.verify(&claim, now).expect("good"));
        });
        rows.push((name, t));
        println!("  configsync {name:<16} {:>10} per approval", micros(t));
    }

    // The peer tool on the same Ed25519 signature (a process per check, as a hook would run it).
    let sig_file = d.join("approval.sig");
    std::fs::write(&sig_file, &ed.signature.as_ref().expect("signed").signature).expect("write");
    let statement = ed
        .claim()
        .statement(ed.signature.as_ref().expect("signed"))
        .canonical();
    let peer_iterations = (iterations / 20).max(20);
    let peer = per_call(peer_iterations, || {
        run(
            Command::new("ssh-keygen")
                .args([
                    "-Y",
                    "verify",
                    "-n",
                    NAMESPACE,
                    "-I",
                    "alice@example.com",
                    "-f",
                ])
                .arg(d.join("allowed_signers"))
                .arg("-s")
                .arg(&sig_file),
            Some(statement.as_bytes()),
        );
    });
    println!(
        "  ssh-keygen -Y verify ed25519   {:>10} per approval ({peer_iterations} runs; configsync is {:.0}x faster)",
        micros(peer),
        peer.as_secs_f64() / rows[0].1.as_secs_f64()
    );

    // The gate with two approvals present, against an environment without one.
    let validated = ValidatedRevision {
        bundle_digest: "sha256:bench".into(),
        commit_sequence: 1,
        author: Some("carol@example.com".into()),
    };
    let recorded = |a: ApprovalGranted, n: u64| Recorded {
        event_id: format!("e{n}"),
        sequence: n,
        stored_at: now,
        action: a,
    };
    let env = EnvironmentState {
        validated: BTreeMap::from([("r1".to_string(), validated)]),
        newest: Some("r1".into()),
        decisions: BTreeMap::from([(
            "r1".to_string(),
            Decisions {
                granted: vec![
                    recorded(ed.clone(), 1),
                    recorded(ssh_signed(approval("bob", "r1"), &d.join("bob")), 2),
                ],
                ..Default::default()
            },
        )]),
        ..Default::default()
    };
    let gated = per_call(iterations, || {
        let a = assess(&policy, "prod", &env, "r1", now);
        assert_eq!(a.verdict, configsync_core::access::Verdict::Open);
    });
    let ungated = per_call(iterations, || {
        std::hint::black_box(assess(&policy, "dev", &env, "r1", now));
    });
    let added = gated.saturating_sub(ungated);
    println!(
        "gate decision: {} with 2 approvals present, {} ungated: {} added (goal <= 5 ms: {})",
        micros(gated),
        micros(ungated),
        micros(added),
        if added <= Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        }
    );
}
