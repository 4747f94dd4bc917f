//! The approval gate end to end: `configsync up --access` with an access policy, three people
//! with SSH keys made by ssh-keygen and one with an OpenPGP key made by gpg, a real Git
//! repository and a kubesim cluster. Prod needs 2 approvals of `sre`; the author's own, an
//! unsigned, a forged, an altered and an expired approval do not count; the second valid one
//! releases the revision; a newer commit supersedes a waiting one; a rejection stops one; and
//! `configsync audit verify-signatures` re-checks every signed action in the log.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use configsync::commands::scaffold;
use configsync_core::access::{HumanAction, NAMESPACE};
use configsync_core::config::NatsArgs;
use configsync_core::event::{ActionSignature, ApprovalGranted, Outgoing, SignatureFormat};
use configsync_core::log::EventLog;
use configsync_core::metrics::Metrics;
use serde_json::Value;

use super::{terminate, text, wait_for_endpoints};

/// People with SSH keys, by principal; `mallory` is in no policy.
const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "mallory"];

fn email(who: &str) -> String {
    format!("{who}@example.com")
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("the tool runs");
    assert!(out.status.success(), "{command:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A GnuPG home with one key, for `--gpg-key`.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new(user_id: &str) -> Self {
        configsync_prereq::require_tool("gpg");
        let home = tempfile::Builder::new().prefix("gpg").tempdir().unwrap();
        std::fs::set_permissions(
            home.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let gpg = Self { home };
        gpg.run(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            user_id,
            "ed25519",
            "sign",
            "never",
        ]);
        gpg
    }

    fn run(&self, args: &[&str]) -> String {
        run(Command::new("gpg")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// `configsync up` for prod only, under an access policy.
struct Gated {
    dir: tempfile::TempDir,
    repo: PathBuf,
    state: String,
    access: String,
    kubeconfig: String,
    gpg: Gpg,
    child: Child,
}

/// A failed assertion must not leave `configsync up` running (it would hold the test's NATS,
/// clusters and any lock inherited from the runner).
impl Drop for Gated {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM, so that `up` stops its own nats-server too (a SIGKILL would orphan it).
            terminate(&mut self.child);
        }
    }
}

impl Gated {
    /// `up` under the approvals policy of the main test.
    async fn start() -> Self {
        Self::start_with(
            "    approvals: {required: 2, from: [sre], validFor: 1h}\n    rollback: [sre]\n    approveRollbacks: true\n    manages: {namespaces: [shop]}\n",
        )
        .await
    }

    /// `up` with `prod_rules` as prod's rules in the access policy.
    async fn start_with(prod_rules: &str) -> Self {
        configsync_prereq::require_tool("ssh-keygen");
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let mut allowed = String::new();
        for who in PEOPLE {
            let key = keys.join(who);
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(email(who))
                .arg("-f")
                .arg(&key));
            if who != "mallory" {
                let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
                allowed.push_str(&format!("{} {public}", email(who)));
            }
        }
        std::fs::write(dir.path().join("allowed_signers"), allowed).unwrap();
        let gpg = Gpg::new("Erin <erin@example.com>");
        std::fs::write(
            dir.path().join("openpgp.asc"),
            gpg.run(&["--armor", "--export", "erin@example.com"]),
        )
        .unwrap();
        let access = dir.path().join("access.yaml");
        std::fs::write(
            &access,
            format!(
                "signers:\n  ssh: allowed_signers\n  openpgp: openpgp.asc\ngroups:\n  sre: [alice@example.com, bob@example.com, carol@example.com, erin@example.com]\nenvironments:\n  prod:\n{prod_rules}"
            ),
        )
        .unwrap();
        let repo = dir.path().join("repo");
        scaffold::create(&repo, &["prod".to_string()]).unwrap();
        let state = dir.path().join("state");
        let child = Command::new(env!("CARGO_BIN_EXE_configsync"))
            .args(["up", "--state-dir"])
            .arg(&state)
            .arg("--repo")
            .arg(&repo)
            .args(["--environment", "prod", "--policy", "prod=off"])
            .args(["--poll-interval", "1s", "--health-timeout", "30s"])
            .arg("--access")
            .arg(&access)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("configsync up starts");
        let mut gated = Self {
            repo,
            state: state.to_str().unwrap().to_string(),
            access: access.to_str().unwrap().to_string(),
            kubeconfig: String::new(),
            gpg,
            child,
            dir,
        };
        let endpoints = wait_for_endpoints(&state, &mut gated.child).await;
        gated.kubeconfig = endpoints["kubeconfig"].as_str().unwrap().to_string();
        gated
    }

    fn key(&self, who: &str) -> String {
        self.dir
            .path()
            .join("keys")
            .join(who)
            .to_str()
            .unwrap()
            .to_string()
    }

    /// Runs `configsync ARGS... --state-dir STATE` with erin's GnuPG home.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--state-dir", &self.state]);
        Command::new(env!("CARGO_BIN_EXE_configsync"))
            .args(&all)
            .env("RUST_LOG", "warn")
            .env("GNUPGHOME", self.gpg.home.path())
            .output()
            .expect("configsync runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "configsync {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `who` approves the waiting revision, signing with their SSH key.
    fn approve(&self, who: &str, revision: &str) -> String {
        self.ok(&[
            "approve",
            "--env",
            "prod",
            "--revision",
            revision,
            "--actor",
            &email(who),
            "--key",
            &self.key(who),
        ])
    }

    /// Commits a change of the web colour as carol.
    fn commit_as_carol(&self, color: &str) -> String {
        let file = self.repo.join("configs/prod/web/config.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let changed = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("color:") {
                    format!("  color: {color}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&file, changed + "\n").unwrap();
        run(Command::new("git")
            .current_dir(&self.repo)
            .args([
                "-c",
                "user.name=Carol",
                "-c",
                "user.email=carol@example.com",
            ])
            .args(["-c", "commit.gpgsign=false", "commit", "-q", "-am"])
            .arg(format!("web goes {color}")));
        scaffold::git(&self.repo, &["rev-parse", "HEAD"]).unwrap()
    }

    /// `configsync approvals --all -o json`, until `done` holds for the row of `revision`.
    async fn row_until(&self, revision: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.ok(&[
                "approvals",
                "--env",
                "prod",
                "--all",
                "--access",
                &self.access,
                "-o",
                "json",
            ]);
            let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
            if let Some(row) = rows.iter().find(|r| r["revision"] == revision)
                && done(row)
            {
                return row.clone();
            }
            assert!(Instant::now() < deadline, "{what}: {out}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The log's events of one type as `events tail` prints them, once `done` holds for them.
    async fn events_until(
        &self,
        selector: &str,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        // A type (`action.refused.v1`) or a subject filter (`configsync.evt.prod._.validation.>`).
        let flag = if selector.starts_with("configsync.") {
            "--filter"
        } else {
            "--type"
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events = self.ok(&[
                "events",
                "tail",
                "--from",
                "begin",
                "--no-follow",
                flag,
                selector,
            ]);
            if done(&events) {
                return events;
            }
            assert!(Instant::now() < deadline, "{what}: {events}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What is deployed on prod/local now (null when nothing is).
    fn deployed(&self) -> Value {
        let out = self.cli(&["replay", "--target", "prod/local"]);
        if !out.status.success() {
            return Value::Null;
        }
        let state: Value = serde_json::from_slice(&out.stdout).unwrap();
        state["deployed_revision"].clone()
    }

    async fn deployed_becomes(&self, revision: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.deployed() != revision {
            assert!(Instant::now() < deadline, "{revision} never deployed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn log(&self) -> EventLog {
        // As the operator: the forger holds the rights a person's CLI has, nothing more.
        let connection = configsync::commands::state_dir::Connection {
            nats: NatsArgs::for_url(""),
            state_dir: Some(PathBuf::from(&self.state)),
        };
        let client = connection
            .connect("approvals-test", configsync_core::nats_auth::OPERATOR)
            .await
            .unwrap();
        EventLog::new(client, "configsync://test/forger", Metrics::new()).unwrap()
    }

    /// Publishes an approval signed by `who` over `signed_as` (what the key really signed),
    /// claiming `claimed`: what someone with operator rights could forge.
    async fn forge(
        &self,
        who: &str,
        signed_as: &ApprovalGranted,
        claimed: ApprovalGranted,
        issued_ago: Duration,
        valid: Duration,
    ) {
        let issued_at = chrono::Utc::now() - chrono::Duration::from_std(issued_ago).unwrap();
        let issued_at = chrono::DateTime::from_timestamp(issued_at.timestamp(), 0).unwrap();
        let expires_at = issued_at + chrono::Duration::from_std(valid).unwrap();
        let statement = signed_as.claim().statement_at(issued_at, expires_at);
        let mut child = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", NAMESPACE, "-f", &self.key(who)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            statement.canonical().as_bytes(),
        )
        .unwrap();
        let signature = text(&child.wait_with_output().unwrap().stdout);
        let mut forged = claimed;
        forged.set_signature(ActionSignature {
            format: SignatureFormat::Ssh,
            signature,
            issued_at,
            expires_at,
        });
        // Event ids derive from their causes: each forgery needs causes of its own, or the
        // stream would drop it as a duplicate of the previous one.
        let event = Outgoing::builder(&forged)
            .cause(format!(
                "forged-{who}-{}-{}-{issued_ago:?}",
                forged.environment, forged.revision
            ))
            .build("configsync://test/forger")
            .unwrap();
        self.log()
            .await
            .publisher(Duration::from_secs(10))
            .publish(&event)
            .await
            .unwrap();
    }

    fn web_color(&self) -> Option<String> {
        let out = Command::new("kubectl")
            .args(["--kubeconfig", &self.kubeconfig, "--context", "prod"])
            .args([
                "-n",
                "shop",
                "get",
                "configmap",
                "web-settings",
                "-o",
                "json",
            ])
            .output()
            .ok()?;
        let cm: Value = serde_json::from_slice(&out.stdout).ok()?;
        cm["data"]["color"].as_str().map(str::to_string)
    }
}

fn approval(revision: &str, digest: &str, who: &str) -> ApprovalGranted {
    ApprovalGranted {
        environment: "prod".into(),
        revision: revision.into(),
        approver: email(who),
        comment: None,
        bundle_digest: digest.into(),
        signature: None,
    }
}

fn ignored_reasons(row: &Value) -> Vec<String> {
    row["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            a["ignored"]
                .as_str()
                .map(|r| format!("{}: {r}", a["actor"]))
        })
        .collect()
}

#[tokio::test]
#[cfg_attr(
    not(all(has_kubectl, has_gpg, has_ssh_keygen)),
    ignore = "kubectl, gpg or ssh-keygen is not installed: run tools/test.sh"
)]
async fn prod_needs_two_signed_approvals_of_sre_and_a_rejection_stops_a_revision() {
    let mut up = Gated::start().await;
    let first = scaffold::git(&up.repo, &["rev-parse", "HEAD"]).unwrap();

    // The first revision waits at the gate; nothing reaches the cluster.
    let row = up
        .row_until(&first, "the first revision waits", |r| {
            r["status"] == "waiting"
        })
        .await;
    assert_eq!(row["required"], 2);
    assert_eq!(row["approvers"].as_array().unwrap().len(), 4);
    up.approve("alice", &first);
    up.row_until(&first, "alice's approval counted", |r| {
        r["approvals"].as_array().unwrap().len() == 1
    })
    .await;
    assert_eq!(
        up.deployed(),
        Value::Null,
        "one approval of two deploys nothing"
    );

    // carol commits: her revision supersedes the waiting one, and alice's approval of the
    // first does not carry over.
    let second = up.commit_as_carol("teal");
    let row = up
        .row_until(&second, "the second revision waits", |r| {
            r["status"] == "waiting"
        })
        .await;
    assert_eq!(row["author"], "carol@example.com");
    up.row_until(&first, "the first is superseded", |r| {
        r["status"] == "superseded"
    })
    .await;
    let digest = {
        let out = up.ok(&["replay"]);
        let state: Value = serde_json::from_str(&out).unwrap();
        state["environments"]["prod"]["validated"][&second]["bundle_digest"]
            .as_str()
            .unwrap_or_else(|| panic!("no digest for {second}: {out}"))
            .to_string()
    };

    // Approvals that do not count, each refused with its reason.
    up.approve("carol", &second); // the author's own
    up.ok(&[
        "approve",
        "--env",
        "prod",
        "--revision",
        &second,
        "--actor",
        "bob@example.com",
    ]); // unsigned
    up.approve_as_other("mallory", "bob", &second); // a key the policy does not know
    up.approve_as_other("alice", "bob", &second); // alice's key claiming to be bob
    let hour = Duration::from_secs(3600);
    // Signed for the first revision, published as an approval of the second.
    up.forge(
        "bob",
        &approval(&first, &digest, "bob"),
        approval(&second, &digest, "bob"),
        Duration::ZERO,
        hour,
    )
    .await;
    // Signed two hours ago: past the policy's 1h validity, though the signature claims 3h.
    up.forge(
        "bob",
        &approval(&second, &digest, "bob"),
        approval(&second, &digest, "bob"),
        2 * hour,
        3 * hour,
    )
    .await;
    let row = up
        .row_until(&second, "six approvals refused", |r| {
            ignored_reasons(r).len() == 6
        })
        .await;
    let reasons = ignored_reasons(&row).join("\n");
    for says in [
        "author of",
        "unsigned",
        "which the access policy does not know",
        "allows for alice@example.com, not bob@example.com",
        "bad signature",
        "expired",
    ] {
        assert!(reasons.contains(says), "{says:?} not among:\n{reasons}");
    }
    assert_eq!(up.deployed(), Value::Null);
    // A well-signed approval for an environment ConfigSync knows nothing of does nothing.
    let unknown = ApprovalGranted {
        environment: "qa".into(),
        ..approval(&second, &digest, "bob")
    };
    up.forge("bob", &unknown, unknown.clone(), Duration::ZERO, hour)
        .await;
    up.events_until("action.refused.v1", "the approval for qa refused", |e| {
        e.contains("was never validated for environment qa")
    })
    .await;

    // alice, then erin with OpenPGP: the second valid approval releases the revision.
    up.approve("alice", &second);
    up.row_until(&second, "alice counted", |r| {
        r["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["ignored"].is_null())
            .count()
            == 1
    })
    .await;
    assert_eq!(up.deployed(), Value::Null, "still one of two");
    up.ok(&[
        "approve",
        "--env",
        "prod",
        "--revision",
        &second,
        "--actor",
        "erin@example.com",
        "--gpg-key",
        "erin@example.com",
    ]);
    up.deployed_becomes(&second).await;
    assert_eq!(up.web_color().as_deref(), Some("teal"));

    // A third revision: bob rejects it; approvals after that change nothing.
    let third = up.commit_as_carol("plum");
    up.row_until(&third, "the third waits", |r| r["status"] == "waiting")
        .await;
    up.ok(&[
        "reject",
        "--env",
        "prod",
        "--revision",
        &third,
        "--reason",
        "not this week",
        "--actor",
        "bob@example.com",
        "--key",
        &up.key("bob"),
    ]);
    up.row_until(&third, "the third is rejected", |r| {
        r["status"] == "rejected"
    })
    .await;
    up.approve("alice", &third);
    up.ok(&[
        "approve",
        "--env",
        "prod",
        "--revision",
        &third,
        "--actor",
        "erin@example.com",
        "--gpg-key",
        "erin@example.com",
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        up.deployed(),
        second.as_str(),
        "a rejected revision never deploys"
    );
    up.events_until("rollout.waiting.v1", "the rejection recorded", |e| {
        e.contains("rejected by bob@example.com (not this week)")
    })
    .await;

    // Rollback obeys the policy: unsigned it is refused; signed by a member of sre it pins, and
    // (approveRollbacks) the target passes the gate on its own approvals.
    up.ok(&[
        "rollback",
        "--env",
        "prod",
        "--to",
        &first,
        "--actor",
        "alice@example.com",
    ]);
    up.ok(&[
        "rollback",
        "--env",
        "prod",
        "--to",
        &first,
        "--actor",
        "alice@example.com",
        "--key",
        &up.key("alice"),
    ]);
    // The policy gates rollbacks too: the first revision has only alice's approval so far.
    up.events_until(
        "rollout.waiting.v1",
        "the rollback waits for approvals",
        |e| e.contains("waiting for approvals: 1 of 2 (alice@example.com)") && e.contains(&first),
    )
    .await;
    assert_eq!(up.deployed(), second.as_str());
    up.approve("bob", &first);
    up.deployed_becomes(&first).await;
    up.events_until("action.refused.v1", "the unsigned rollback refused", |e| {
        e.contains("\"action\":\"rollback\"") && e.contains("unsigned")
    })
    .await;

    // The policy limits prod to the shop namespace: a revision with a cluster-scoped object
    // fails validation (not apply).
    std::fs::write(
        up.repo.join("configs/prod/web/reader.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\nrules: []\n",
    )
    .unwrap();
    scaffold::git(&up.repo, &["add", "-A"]).unwrap();
    scaffold::git(&up.repo, &["commit", "-q", "-m", "a cluster role"]).unwrap();
    let failed = up
        .events_until("validation.failed.v1", "the scope finding", |e| {
            e.contains("scope.namespace")
        })
        .await;
    assert!(
        failed.contains("ClusterRole reader is cluster-scoped"),
        "{failed}"
    );

    // Every signed action is checked again from the log: the forged and altered ones are bad.
    let verify = up.cli(&[
        "audit",
        "verify-signatures",
        "--access",
        &up.access,
        "-o",
        "json",
    ]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stderr));
    let checked: Vec<Value> = serde_json::from_slice(&verify.stdout).unwrap();
    let count = |verdict: &str| checked.iter().filter(|c| c["signature"] == verdict).count();
    assert_eq!(
        count("bad"),
        3,
        "mallory's key, and the altered one: {checked:#?}"
    );
    assert!(count("good") >= 8, "{checked:#?}");
    assert_eq!(count("unsigned"), 2, "{checked:#?}");
    assert!(
        checked.iter().any(|c| c["signature"] == "good"
            && c["signer"]
                .as_str()
                .unwrap_or_default()
                .contains("erin@example.com")),
        "the OpenPGP approval verifies: {checked:#?}"
    );
    assert!(terminate(&mut up.child).success());
}

impl Gated {
    /// `signer` signs an approval that claims to be from `claimed`.
    fn approve_as_other(&self, signer: &str, claimed: &str, revision: &str) -> String {
        self.ok(&[
            "approve",
            "--env",
            "prod",
            "--revision",
            revision,
            "--actor",
            &email(claimed),
            "--key",
            &self.key(signer),
        ])
    }
}

impl Gated {
    /// Commits a colour change as `who`, signing with `sign` (git flags), and returns its SHA.
    fn commit_signed(&self, who: &str, color: &str, sign: &[&str]) -> String {
        let file = self.repo.join("configs/prod/web/config.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        let at = text.find("color: ").unwrap();
        let end = at + text[at..].find('\n').unwrap();
        std::fs::write(
            &file,
            format!("{}color: {color}{}", &text[..at], &text[end..]),
        )
        .unwrap();
        run(Command::new("git")
            .current_dir(&self.repo)
            .env("GNUPGHOME", self.gpg.home.path())
            .arg("-c")
            .arg(format!("user.email={}", email(who)))
            .args(["-c", "user.name=Someone"])
            .args(sign)
            .args(["commit", "-q", "-am"])
            .arg(format!("web goes {color}")));
        scaffold::git(&self.repo, &["rev-parse", "HEAD"]).unwrap()
    }

    /// The `validation.passed` or `.failed` of `revision` for prod, as `events tail` prints it.
    async fn validation_of(&self, revision: &str) -> String {
        let line = |e: &str| {
            e.lines()
                .find(|l| l.contains(revision) && l.contains("validation."))
                .map(str::to_string)
        };
        let events = self
            .events_until(
                "configsync.evt.prod._.validation.>",
                "the validation",
                |e| line(e).is_some(),
            )
            .await;
        line(&events).unwrap()
    }
}

#[tokio::test]
#[cfg_attr(
    not(all(has_kubectl, has_gpg, has_ssh_keygen)),
    ignore = "kubectl, gpg or ssh-keygen is not installed: run tools/test.sh"
)]
async fn prod_deploys_only_commits_signed_by_a_key_of_the_policy() {
    let mut up = Gated::start_with("    requireSignedCommits: true\n").await;
    let first = scaffold::git(&up.repo, &["rev-parse", "HEAD"]).unwrap();
    let unsigned = up.validation_of(&first).await;
    assert!(
        unsigned.contains("validation.failed") && unsigned.contains("the commit is not signed"),
        "{unsigned}"
    );
    let ssh = |key: &str| -> Vec<String> {
        [
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={key}"),
            "-c",
            "commit.gpgsign=true",
        ]
        .map(str::to_string)
        .to_vec()
    };
    let args = |v: &[String]| {
        v.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{0}")
    };
    let split = |s: &str| s.split('\u{0}').map(str::to_string).collect::<Vec<_>>();

    // alice signs with her SSH key: verified, deployed.
    let alice_flags = split(&args(&ssh(&up.key("alice"))));
    let alice_flags: Vec<&str> = alice_flags.iter().map(String::as_str).collect();
    let good = up.commit_signed("alice", "teal", &alice_flags);
    let passed = up.validation_of(&good).await;
    assert!(passed.contains("validation.passed"), "{passed}");
    up.deployed_becomes(&good).await;
    let commits = up
        .events_until("commit.detected.v1", "alice's commit", |e| {
            e.contains(&good)
        })
        .await;
    let detected = commits.lines().find(|l| l.contains(&good)).unwrap();
    assert!(
        detected.contains("\"verified\":true")
            && detected.contains("\"principal\":\"alice@example.com\""),
        "{detected}"
    );

    // bob commits with alice's key: not verified, not deployed.
    let forged = up.commit_signed("bob", "plum", &alice_flags);
    let refused = up.validation_of(&forged).await;
    assert!(
        refused.contains("validation.failed")
            && refused.contains("allows for alice@example.com, not bob@example.com"),
        "{refused}"
    );

    // erin signs with OpenPGP: verified, deployed.
    let gpg_flags = [
        "-c",
        "gpg.format=openpgp",
        "-c",
        "user.signingkey=erin@example.com",
        "-c",
        "commit.gpgsign=true",
    ];
    let pgp = up.commit_signed("erin", "gold", &gpg_flags);
    let passed = up.validation_of(&pgp).await;
    assert!(passed.contains("validation.passed"), "{passed}");
    up.deployed_becomes(&pgp).await;
    assert_eq!(up.web_color().as_deref(), Some("gold"));
    assert!(terminate(&mut up.child).success());
}
