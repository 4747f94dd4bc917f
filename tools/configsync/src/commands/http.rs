//! A minimal HTTP/1.1 client for the CLI's own calls (the audit API, readiness probes): one
//! request without a body per connection, optionally with a bearer token, `Connection: close`,
//! chunked bodies decoded. Enough for ConfigSync's own endpoints, without a client crate.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.1 GET without credentials: the status and the (de-chunked) body.
pub async fn get(host: &str, port: u16, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    request("GET", host, port, path, None).await
}

/// A minimal HTTP/1.1 request without a body (`GET`, `POST`), with `bearer` as its
/// `Authorization` if given: the status and the (de-chunked) body.
pub async fn request(
    method: &str,
    host: &str,
    port: u16,
    path: &str,
    bearer: Option<&str>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = tokio::net::TcpStream::connect((host, port)).await?;
    let authorization = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let body = response[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok((status, if chunked { dechunk(&body)? } else { body }))
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("malformed chunk")?;
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("malformed chunk size")?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).context("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).context("truncated chunk")?;
    }
}

/// The HTTP status of GET `path` on `addr`, or None when it cannot be reached.
pub async fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    get(&addr.ip().to_string(), addr.port(), path)
        .await
        .ok()
        .map(|(status, _)| status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"9\r\nab").is_err());
    }
}
