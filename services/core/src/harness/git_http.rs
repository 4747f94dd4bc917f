//! Smart HTTP for tests: the real `git http-backend` (Git's own CGI program) behind a small
//! axum server that speaks CGI to it and asks for HTTP basic authentication, as a forge
//! would. Nothing of the Git protocol is imitated: every byte comes from Git.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Cgi {
    backend: PathBuf,
    root: PathBuf,
    /// `user:password` the server accepts.
    credentials: String,
}

/// A smart HTTP Git server on a free loopback port serving every repository under a
/// directory; stopped when dropped.
pub struct GitHttpServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl GitHttpServer {
    /// Serves the repositories under `root` (`http://ADDR/<name>`) through `backend` (the
    /// `git-http-backend` program), to clients that authenticate as `user` with `password`.
    pub async fn start(backend: &Path, root: &Path, user: &str, password: &str) -> Self {
        let cgi = Cgi {
            backend: backend.to_path_buf(),
            root: root.to_path_buf(),
            credentials: format!("{user}:{password}"),
        };
        let app = Router::new()
            .fallback(serve)
            .layer(DefaultBodyLimit::disable())
            .with_state(cgi);
        let stop = CancellationToken::new();
        let (addr, _task) = crate::ops::serve_router(
            "127.0.0.1:0".parse().unwrap(),
            app,
            "git http",
            stop.clone(),
        )
        .await
        .expect("the git http server listens");
        Self { addr, stop }
    }

    /// `http://ADDR/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(
    State(cgi): State<Cgi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&cgi.credentials)
    );
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
            "authentication required\n",
        )
            .into_response();
    }
    match run_cgi(&cgi, &method, &uri, &headers, body).await {
        Ok(response) => response,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cgi: {e}\n")).into_response(),
    }
}

/// Runs `git http-backend` for one request (RFC 3875 variables in, CGI headers and body out).
async fn run_cgi(
    cgi: &Cgi,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> std::io::Result<Response> {
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut command = tokio::process::Command::new(&cgi.backend);
    command
        .env_clear()
        .env("GIT_PROJECT_ROOT", &cgi.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header(header::CONTENT_ENCODING))
        .env(
            "REMOTE_USER",
            cgi.credentials.split(':').next().unwrap_or(""),
        )
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(protocol) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        command.env("HTTP_GIT_PROTOCOL", protocol);
    }
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written beside the read, so a large answer cannot block on a full pipe.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await?;
    let _ = writer.await;
    Ok(cgi_response(&out.stdout))
}

/// Splits CGI output into its header lines (`Status:` among them) and the body.
fn cgi_response(out: &[u8]) -> Response {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let Some((end, body_start)) = split else {
        return (StatusCode::BAD_GATEWAY, "no CGI headers\n").into_response();
    };
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&out[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|c| c.parse().ok());
            response = response.status(code.unwrap_or(500));
        } else {
            response = response.header(name.trim(), value);
        }
    }
    response
        .body(Body::from(out[body_start..].to_vec()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
