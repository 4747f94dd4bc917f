//! Probing ops and audit endpoints with the CLI's own HTTP client.

/// GETs `path` from `addr`; returns (status, body as text).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let (status, body) =
        configsync::commands::http::get(&addr.ip().to_string(), addr.port(), path).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// GETs `path` from `addr` with a bearer token; returns (status, body as text).
pub async fn get_with_token(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
) -> anyhow::Result<(u16, String)> {
    let (status, body) = configsync::commands::http::request(
        "GET",
        &addr.ip().to_string(),
        addr.port(),
        path,
        Some(token),
    )
    .await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
