//! Shared setup: sample events, an auditor on a temporary index with its two API tokens, and
//! a tiny HTTP client for its API; the bus and the deadline are `configsync_core::harness`'s.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use configsync_auditor::{Config, Running};
use configsync_core::config::{NatsArgs, ServiceArgs};
use configsync_core::event::*;
pub use configsync_core::harness::{Bus, NatsServer, SOURCE, WAIT, eventually};
use configsync_core::telemetry::LogFormat;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub fn object(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: kind.into(),
        namespace: Some("default".into()),
        name: name.into(),
    }
}

pub fn commit(sha: &str, message: &str) -> Outgoing {
    let who = Person {
        name: "Ada".into(),
        email: "ada@example.invalid".into(),
        time: chrono::Utc::now(),
    };
    let payload = CommitDetected {
        repository: "file:///repo".into(),
        branch: "main".into(),
        source: None,
        path: None,
        trailers: Vec::new(),
        sha: sha.into(),
        parents: vec![],
        author: who.clone(),
        committer: who,
        message: message.into(),
        signed: false,
        signature: None,
        environments: vec![],
        other_paths: vec![],
        whole_tree: false,
    };
    Outgoing::builder(&payload)
        .cause(sha)
        .actor("ada")
        .build(SOURCE)
        .expect("event builds")
}

pub fn drift(environment: &str, object: ObjectRef, desired: &str, live: &str) -> Outgoing {
    let about = format!("{environment}/default/{}/{}", object.kind, object.name);
    let payload = DriftDetected {
        environment: environment.into(),
        cluster: "c1".into(),
        revision: "r1".into(),
        object,
        kind: DriftKind::Modified,
        fields: vec![FieldDrift {
            path: "/data/value".into(),
            desired: Some(desired.into()),
            live: Some(live.into()),
        }],
        changed_by: Some("kubectl-edit".into()),
        resource_version: None,
        ignored: vec![],
    };
    Outgoing::builder(&payload)
        .cause(desired)
        .cause(live)
        .subject(about)
        .build(SOURCE)
        .expect("event builds")
}

pub fn health(n: u32) -> Outgoing {
    let payload = HealthReady {
        environment: "staging".into(),
        cluster: "c1".into(),
        revision: format!("rev{n}"),
        objects: n,
    };
    Outgoing::builder(&payload)
        .cause(n.to_be_bytes())
        .build(SOURCE)
        .expect("event builds")
}

/// The read-scope token of every test auditor.
pub const READ_TOKEN: &str = "read-0123456789abcdef0123456789abcdef";
/// The admin-scope token of every test auditor.
pub const ADMIN_TOKEN: &str = "admin-0123456789abcdef0123456789abcdef";

/// Writes the two token files into `dir` (0600, as `configsync up` does).
pub fn write_tokens(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (name, token) in [("read", READ_TOKEN), ("admin", ADMIN_TOKEN)] {
        let path = dir.join(name);
        std::fs::write(&path, format!("{token}\n")).expect("token file is written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("token file mode is set");
    }
}

/// Auditor settings for a test: free ports, the given index directory, the token files of
/// `token_dir` (see [`write_tokens`]).
pub fn config(server: &NatsServer, index_dir: &Path, token_dir: &Path) -> Config {
    let mut nats = NatsArgs::for_url(server.url());
    nats.connect_deadline = Duration::from_secs(10);
    Config {
        service: ServiceArgs {
            nats,
            ops_addr: Some("127.0.0.1:0".parse().expect("addr")),
            instance: Some("it".into()),
            log_format: LogFormat::Human,
        },
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        index_dir: Some(index_dir.to_path_buf()),
        read_token_file: token_dir.join("read"),
        admin_token_file: Some(token_dir.join("admin")),
    }
}

/// A started auditor and the token that stops it.
pub struct Auditor {
    pub running: Running,
    pub shutdown: CancellationToken,
    _tokens: tempfile::TempDir,
}

impl Auditor {
    pub async fn start(server: &NatsServer, index_dir: &Path) -> Self {
        let tokens = tempfile::tempdir().expect("temp dir");
        write_tokens(tokens.path());
        let shutdown = CancellationToken::new();
        let running = tokio::time::timeout(
            WAIT,
            configsync_auditor::start(config(server, index_dir, tokens.path()), shutdown.clone()),
        )
        .await
        .expect("the auditor starts in time")
        .expect("the auditor starts");
        Self {
            running,
            shutdown,
            _tokens: tokens,
        }
    }

    pub fn http(&self) -> SocketAddr {
        self.running.http_addr
    }

    /// Stops it and waits for a clean exit.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.running.wait())
            .await
            .expect("the auditor stops in time")
            .expect("the auditor stops cleanly");
    }

    /// Waits until the index holds the log up to `sequence` and search sees it.
    pub async fn wait_indexed(&self, sequence: u64) -> serde_json::Value {
        let addr = self.http();
        eventually(
            &format!("the index reaches sequence {sequence}"),
            || async {
                let (code, status) = get(addr, "/v1/status").await;
                assert_eq!(code, 200, "{status}");
                (status["indexed_sequence"].as_u64() >= Some(sequence)).then_some(status)
            },
        )
        .await
    }

    /// `GET /v1/events?q=QUERY&limit=1000`.
    pub async fn search(&self, query: &str) -> serde_json::Value {
        let (code, body) = get(
            self.http(),
            &format!("/v1/events?limit=1000&q={}", encode(query)),
        )
        .await;
        assert_eq!(code, 200, "search {query:?}: {body}");
        body
    }
}

/// The stream sequences of a search's hits, in order.
pub fn sequences(hits: &serde_json::Value) -> Vec<u64> {
    hits["hits"]
        .as_array()
        .expect("hits is an array")
        .iter()
        .map(|h| {
            h["_stream"]["sequence"]
                .as_u64()
                .expect("hit has _stream.sequence")
        })
        .collect()
}

/// Percent-encodes a query string value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A GET with the read token: the status and the body (as JSON when it is JSON, else a
/// string).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let response = request(addr, "GET", path, Some(READ_TOKEN)).await;
    (response.status, response.body)
}

/// What the API answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The `WWW-Authenticate` header, if any.
    pub challenge: Option<String>,
    pub body: serde_json::Value,
}

/// A minimal HTTP/1.1 request with an optional bearer token.
pub async fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Answer {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        let authorization = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request is sent");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("response is read");
        response
    };
    let response = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the api answers in time");
    let text = String::from_utf8(response).expect("response is utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("response has a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let challenge = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("www-authenticate")
            .then(|| value.trim().to_string())
    });
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.into()));
    Answer {
        status,
        challenge,
        body,
    }
}
