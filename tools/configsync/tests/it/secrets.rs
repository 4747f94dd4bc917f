//! No secret leaks, end to end: a Secret with canary values (base64 in `data`, plain in
//! `stringData`), and credentials of a ConfigMap (`db_password`) and of a container's env
//! (`DB_PASSWORD`), flow through a commit, a validation finding on the Secret, apply, drift
//! (changed live to new canaries), remediation (dev) and alerts (prod), with every service
//! logging at TRACE. None of the values appears in the event log, a log line, a file of the
//! state directory (bar the two that hold the desired state by design), an audit API answer,
//! or the output of `configsync validate`, `replay` or `diff`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use configsync_auditor::auth::{Scope, Token};
use configsync_core::harness::{GitRepo, WAIT};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{configsync, terminate, text, wait_for_endpoints};

/// A value nobody else writes: `canary` and 24 random hex digits (one token for the index's
/// tokenizer).
fn canary(what: &str) -> String {
    let random = Token::generate().expect("random source");
    format!("canary{what}{}", &random.expose()[..24])
}

/// Every value that must never show, each with its encodings.
struct Canaries {
    secret_data: String,
    secret_string: String,
    secret_live_data: String,
    secret_live_string: String,
    secret_broken: String,
    configmap: String,
    configmap_live: String,
    env: String,
    env_live: String,
}

impl Canaries {
    fn new() -> Self {
        Self {
            secret_data: canary("sd"),
            secret_string: canary("ss"),
            secret_live_data: canary("sld"),
            secret_live_string: canary("sls"),
            secret_broken: canary("sb"),
            configmap: canary("cm"),
            configmap_live: canary("cml"),
            env: canary("env"),
            env_live: canary("envl"),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.secret_data,
            &self.secret_string,
            &self.secret_live_data,
            &self.secret_live_string,
            &self.secret_broken,
            &self.configmap,
            &self.configmap_live,
            &self.env,
            &self.env_live,
        ]
    }

    /// What to look for: each value, its base64 form, and that form's alphanumeric runs (a
    /// tokenizer splits base64 on `+`, `/` and `=`).
    fn needles(&self) -> Vec<String> {
        let mut out = Vec::new();
        for value in self.all() {
            out.push(value.to_string());
            let encoded = STANDARD.encode(value);
            for run in encoded.split(|c: char| !c.is_ascii_alphanumeric()) {
                if run.len() >= 16 {
                    out.push(run.to_string());
                }
            }
            out.push(encoded);
        }
        out
    }

    /// The needles found in `haystack`.
    fn found_in(&self, haystack: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(haystack).to_lowercase();
        self.needles()
            .into_iter()
            .filter(|n| text.contains(&n.to_lowercase()))
            .collect()
    }

    fn assert_absent(&self, what: &str, haystack: &[u8]) {
        let found = self.found_in(haystack);
        assert!(found.is_empty(), "{found:?} leaked into {what}");
    }
}

fn secret(c: &Canaries, broken: bool) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-creds\n  namespace: default\n\
         type: Opaque\ndata:\n  password: {}\nstringData:\n  token: {}\n",
        STANDARD.encode(&c.secret_data),
        c.secret_string
    );
    if broken {
        // Two findings on the Secret: a value that is not base64 (the canary itself), and a
        // field of the wrong type.
        yaml = yaml.replace(
            "data:\n",
            &format!("data:\n  broken: {}-not-base64\n", c.secret_broken),
        );
        yaml.push_str("immutable: \"sometimes\"\n");
    }
    yaml
}

fn configmap(c: &Canaries) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\n\
         data:\n  color: blue\n  db_password: {}\n",
        c.configmap
    )
}

fn deployment(c: &Canaries) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\n\
         spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    \
         metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        \
         image: nginx:1.27.3\n        env:\n        - name: DB_PASSWORD\n          value: {}\n        \
         - name: MODE\n          value: fast\n",
        c.env
    )
}

/// `configsync up` with every log at TRACE, as JSON, into a file.
struct Up {
    dir: tempfile::TempDir,
    repo: GitRepo,
    state: PathBuf,
    logs: PathBuf,
    child: Child,
}

impl Up {
    async fn start(c: &Canaries) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = GitRepo::init();
        for env in ["dev", "prod"] {
            repo.write(&format!("configs/{env}/app/secret.yaml"), &secret(c, false));
            repo.write(&format!("configs/{env}/app/config.yaml"), &configmap(c));
            repo.write(&format!("configs/{env}/app/deploy.yaml"), &deployment(c));
        }
        repo.commit("Add the app with its credentials");
        let state = dir.path().join("state");
        let logs = dir.path().join("up.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_configsync"))
            .args(["--log-format", "json", "up", "--state-dir"])
            .arg(&state)
            .arg("--repo")
            .arg(repo.path())
            .args([
                "--environment",
                "dev",
                "--environment",
                "prod",
                "--policy",
                "dev=auto",
                "--policy",
                "prod=alert",
                "--poll-interval",
                "1s",
            ])
            .env("RUST_LOG", "trace")
            .stdout(std::fs::File::create(dir.path().join("up.out")).unwrap())
            .stderr(std::fs::File::create(&logs).unwrap())
            .spawn()
            .expect("configsync up starts");
        wait_for_endpoints(&state, &mut child).await;
        Self {
            dir,
            repo,
            state,
            logs,
            child,
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        all.extend(["--state-dir", self.state.to_str().unwrap()]);
        configsync(&all)
    }

    /// Every event so far, one JSON line each.
    fn events(&self) -> Vec<Value> {
        let out = self.cli(&["events", "tail", "--from", "begin", "--no-follow"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("an event is json"))
            .collect()
    }

    /// Waits until at least `n` events of `ty` match `filter`; returns them.
    async fn events_until(
        &self,
        ty: &str,
        n: usize,
        filter: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found: Vec<Value> = self
                .events()
                .into_iter()
                .filter(|e| e["type"] == ty && filter(e))
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(Instant::now() < deadline, "never {n} of {ty}: {found:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn api(&self, env: &str, group: &str, version: &str, kind: &str) -> Api<DynamicObject> {
        let kubeconfig = self.state.join("kubeconfig");
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let options = kube::config::KubeConfigOptions {
            context: Some(env.into()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .unwrap();
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        Api::namespaced_with(kube::Client::try_from(config).unwrap(), "default", &ar)
    }

    /// Changes the three objects in `env`'s cluster as someone with kubectl would.
    async fn drift(&self, env: &str, c: &Canaries) {
        let params = PatchParams::default();
        let secret = json!({"data": {"password": STANDARD.encode(&c.secret_live_data)},
            "stringData": {"token": c.secret_live_string}});
        self.api(env, "", "v1", "Secret")
            .await
            .patch("db-creds", &params, &Patch::Merge(&secret))
            .await
            .unwrap();
        let cm = json!({"data": {"db_password": c.configmap_live}});
        self.api(env, "", "v1", "ConfigMap")
            .await
            .patch("settings", &params, &Patch::Merge(&cm))
            .await
            .unwrap();
        let containers = json!({"spec": {"template": {"spec": {"containers": [{"name": "web",
            "image": "nginx:1.27.3", "env": [{"name": "DB_PASSWORD", "value": c.env_live},
            {"name": "MODE", "value": "fast"}]}]}}}});
        self.api(env, "apps", "v1", "Deployment")
            .await
            .patch("web", &params, &Patch::Merge(&containers))
            .await
            .unwrap();
    }

    /// An audit API answer, raw, with the read token `up` keeps.
    async fn audit(&self, path: &str) -> (u16, Vec<u8>) {
        let endpoints: Value =
            serde_json::from_slice(&std::fs::read(self.state.join("endpoints.json")).unwrap())
                .unwrap();
        let url = url::Url::parse(endpoints["audit_url"].as_str().unwrap()).unwrap();
        let token = std::fs::read_to_string(configsync::commands::state_dir::audit_token_file(
            &self.state,
            Scope::Read,
        ))
        .unwrap();
        configsync::commands::http::request(
            "GET",
            url.host_str().unwrap(),
            url.port().unwrap(),
            path,
            Some(token.trim()),
        )
        .await
        .unwrap()
    }
}

impl Drop for Up {
    /// A failed assertion must not leave `configsync up` (and its nats-server) running: it is
    /// stopped as a person would, with SIGTERM.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        // No assertion here: this may run while a failed one unwinds.
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

/// Every file under `dir` (recursively) but those under `skip`, with its content.
fn files(dir: &Path, skip: &[PathBuf], out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if skip.iter().any(|s| path.starts_with(s)) {
            continue;
        }
        if path.is_dir() {
            files(&path, skip, out);
        } else if path.is_file() {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_credential_value_leaks_into_events_logs_index_api_or_diff() {
    let c = Canaries::new();
    let mut up = Up::start(&c).await;
    for env in ["dev", "prod"] {
        up.events_until("io.configsync.apply.succeeded.v1", 1, |e| {
            e["environment"] == env
        })
        .await;
    }
    // The canaries really are in the clusters: whatever is absent below was there to leak.
    let live = up
        .api("dev", "", "v1", "Secret")
        .await
        .get("db-creds")
        .await
        .unwrap();
    assert_eq!(
        live.data["data"]["password"],
        json!(STANDARD.encode(&c.secret_data))
    );

    // A validation finding on the Secret itself.
    up.repo
        .write("configs/dev/app/secret.yaml", &secret(&c, true));
    let broken = up.repo.commit("Break the Secret");
    let failed = up
        .events_until("io.configsync.validation.failed.v1", 1, |e| {
            e["revision"] == broken.as_str()
        })
        .await;
    let findings = failed[0]["data"]["findings"].as_array().unwrap();
    let on_secret: Vec<&Value> = findings
        .iter()
        .filter(|f| f["object"]["kind"] == "Secret")
        .collect();
    assert!(on_secret.len() >= 2, "findings on the Secret: {findings:?}");
    // The same findings before merge, as `configsync validate` prints them.
    for format in ["text", "json", "sarif"] {
        let out = configsync(&[
            "validate",
            "--root",
            up.repo.path().to_str().unwrap(),
            "--env",
            "dev",
            "-o",
            format,
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("db-creds"),
            "{}",
            text(&out.stdout)
        );
        c.assert_absent(&format!("configsync validate -o {format}"), &out.stdout);
        c.assert_absent(
            &format!("configsync validate -o {format} (stderr)"),
            &out.stderr,
        );
    }
    // Put it right again (the environments keep the first revision meanwhile).
    up.repo
        .write("configs/dev/app/secret.yaml", &secret(&c, false));
    up.repo.commit("Mend the Secret");

    // Drift in both clusters: repaired in dev, reported in prod.
    up.drift("dev", &c).await;
    up.drift("prod", &c).await;
    let drifts = up
        .events_until("io.configsync.drift.detected.v1", 6, |_| true)
        .await;
    let secret_drift = drifts
        .iter()
        .find(|d| d["data"]["object"]["kind"] == "Secret")
        .expect("a drift of the Secret");
    assert_eq!(secret_drift["data"]["fields"][0]["desired"], "<redacted>");
    let configmap_drift = drifts
        .iter()
        .find(|d| d["data"]["object"]["kind"] == "ConfigMap")
        .expect("a drift of the ConfigMap");
    assert_eq!(
        configmap_drift["data"]["fields"][0]["path"],
        "/data/db_password"
    );
    assert_eq!(configmap_drift["data"]["fields"][0]["live"], "<redacted>");
    up.events_until("io.configsync.remediation.succeeded.v1", 3, |e| {
        e["environment"] == "dev"
    })
    .await;

    // `configsync diff` of prod (still drifted), of its revision and of the working tree, as
    // text and JSON.
    let mut diffs = Vec::new();
    for args in [
        vec!["diff", "--env", "prod"],
        vec!["diff", "--env", "prod", "-o", "json"],
        vec![
            "diff",
            "--env",
            "prod",
            "--path",
            up.repo.path().to_str().unwrap(),
        ],
    ] {
        let out = up.cli(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        diffs.push(out);
    }
    let shown = text(&diffs[0].stdout);
    assert!(
        shown.contains("Secret default/db-creds: changed")
            && shown.contains("<redacted (before)>")
            && shown.contains("<redacted (after)>"),
        "{shown}"
    );
    assert!(
        shown.contains("ConfigMap default/settings: changed"),
        "{shown}"
    );
    for (i, out) in diffs.iter().enumerate() {
        c.assert_absent(&format!("diff #{i} (stdout)"), &out.stdout);
        c.assert_absent(&format!("diff #{i} (stderr)"), &out.stderr);
    }

    // The audit index, through its API: it holds the Secret's events, and no value.
    let deadline = Instant::now() + WAIT;
    let everything = loop {
        let (status, body) = up.audit("/v1/events?q=&limit=1000").await;
        assert_eq!(status, 200);
        let json: Value = serde_json::from_slice(&body).unwrap();
        let events = up.events().len();
        if json["total"].as_u64() >= Some(events as u64) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the index never caught up: {json}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    c.assert_absent("the audit api's answer of every event", &everything);
    let (_, by_name) = up.audit("/v1/events?q=db%2Dcreds&limit=1000").await;
    let by_name: Value = serde_json::from_slice(&by_name).unwrap();
    assert!(by_name["total"].as_u64() >= Some(3), "{by_name}");
    for needle in c.needles() {
        let phrase = format!("\"{needle}\"");
        let query = utf8_percent_encode(&phrase, NON_ALPHANUMERIC);
        let (status, body) = up.audit(&format!("/v1/events?q={query}&limit=10")).await;
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            status == 400 || json["total"] == 0,
            "searching {needle} found: {json}"
        );
        c.assert_absent("an audit api answer", &body);
    }
    let search = up.cli(&["audit", "search", "db-creds", "--limit", "1000"]);
    assert!(search.status.success(), "{}", text(&search.stderr));
    c.assert_absent("audit search", &search.stdout);

    // The state folded from the log.
    for args in [vec!["replay"], vec!["replay", "--target", "prod/local"]] {
        let out = up.cli(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        c.assert_absent(&format!("{args:?}"), &out.stdout);
    }

    // The event log, as a subscriber reads it (JSON and human).
    let tail = up.cli(&["events", "tail", "--from", "begin", "--no-follow"]);
    c.assert_absent("the event log", &tail.stdout);
    let human = up.cli(&[
        "events",
        "tail",
        "--from",
        "begin",
        "--no-follow",
        "--format",
        "human",
    ]);
    c.assert_absent("the event log (human)", &human.stdout);

    let status = terminate(&mut up.child);
    assert!(status.success(), "configsync up stops cleanly: {status:?}");

    // Logs at every level, from every service and library.
    let logs = std::fs::read(&up.logs).unwrap();
    let log_text = String::from_utf8_lossy(&logs);
    for proof in [
        "\"level\":\"TRACE\"",
        "\"target\":\"configsync_drift_watcher",
        "\"target\":\"configsync_remediator",
        "\"target\":\"async_nats",
    ] {
        assert!(
            log_text.contains(proof),
            "the logs have no {proof}: trace logging was off?"
        );
    }
    c.assert_absent("the logs", &logs);
    c.assert_absent(
        "configsync up's stdout",
        &std::fs::read(up.dir.path().join("up.out")).unwrap(),
    );

    // Every file of the state directory (the NATS store with the event stream, the index,
    // the NATS server's log), except where the desired state is kept by design, as in the
    // repository itself: the bundle store (rendered manifests, for the applier and the
    // remediator) and the services' copies of the repository.
    let store = up.state.join("nats/store/jetstream/$G/streams");
    let skip = [
        store.join("OBJ_configsync-bundles"),
        up.state.join("git-watcher"),
        up.state.join("validator"),
    ];
    assert!(skip[0].is_dir(), "the bundle store is where it is expected");
    let mut all = Vec::new();
    files(&up.state, &skip, &mut all);
    assert!(
        all.iter()
            .any(|(p, _)| p.starts_with(store.join("CONFIGSYNC_EVENTS"))),
        "the event stream's files are searched"
    );
    assert!(
        all.iter()
            .any(|(p, _)| p.starts_with(up.state.join("auditor-index"))),
        "the index's files are searched"
    );
    for (path, content) in &all {
        c.assert_absent(&path.display().to_string(), content);
    }
    // ... and the bundle store does hold them: the search above could find them.
    let mut bundles = Vec::new();
    files(&skip[0], &[], &mut bundles);
    assert!(
        bundles
            .iter()
            .any(|(_, content)| !c.found_in(content).is_empty()),
        "the needles are found where they are"
    );
}
