//! Network odds and ends for tests: a listener that accepts connections and never answers (a
//! stalled remote), and a minimal HTTP/1.1 client that can send any header and body.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback listener that accepts every connection and then says nothing, holding the
/// connections open until dropped: a remote that hangs after the TCP handshake.
pub struct StalledListener {
    pub addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl StalledListener {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let addr = listener.local_addr().expect("its address");
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        // The accepting thread ends with the process; its connections are closed on drop.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Ok(mut held) = keep.lock() {
                    held.push(stream);
                }
            }
        });
        Self { addr, held }
    }

    /// How many connections it accepted.
    pub fn accepted(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }
}

impl Drop for StalledListener {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            held.clear();
        }
    }
}

/// Sends `POST path` with `headers` and `body` to `addr` and returns the status code and the
/// response body. `Content-Length` is set from `body`.
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    http_request(addr, "POST", path, headers, body).await
}

/// Sends `method path` (HTTP/1.1, the connection closed after the answer) and returns the
/// status code and the response body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the server accepts");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    // A server may answer (413) and close before reading a large body: not an error here.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
