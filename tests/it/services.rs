//! The six services start against a real NATS, bind their durable consumers, serve their ops
//! endpoints, and stop cleanly on shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use configsync_core::harness::NatsServer;
use configsync_core::log::stream;
use tokio_util::sync::CancellationToken;

use crate::http;

const WAIT: Duration = Duration::from_secs(30);

/// Flags every service takes; port 0 so that they can run side by side.
fn flags(url: &str, ops: SocketAddr) -> Vec<String> {
    [
        "svc",
        "--nats-url",
        url,
        "--ops-addr",
        &ops.to_string(),
        "--instance",
        "e2e",
        "--connect-deadline",
        "10s",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn wait_ready(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok((200, body)) = http::get(addr, "/readyz").await {
            assert_eq!(body, "ready");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn all_six_services_start_report_ready_and_stop_cleanly() {
    let server = NatsServer::start().await.unwrap();
    let url = server.url();
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    stream::ensure(&js, &stream::StreamSpec::from_definition(1).unwrap())
        .await
        .unwrap();

    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut addrs = Vec::new();
    macro_rules! spawn_service {
        ($krate:ident) => {{
            let addr = free_addr();
            let config = $krate::Config::try_parse_from(flags(&url, addr)).expect("flags parse");
            tasks.push((
                stringify!($krate),
                tokio::spawn($krate::run(config, shutdown.clone())),
            ));
            addrs.push((stringify!($krate), addr));
        }};
    }
    spawn_service!(configsync_git_watcher);
    spawn_service!(configsync_validator);
    spawn_service!(configsync_applier);
    spawn_service!(configsync_drift_watcher);
    spawn_service!(configsync_remediator);
    spawn_service!(configsync_auditor);

    for (name, addr) in &addrs {
        wait_ready(*addr).await;
        let (status, body) = http::get(*addr, "/healthz").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "ok"), "{name}");
        let (status, metrics) = http::get(*addr, "/metrics").await.unwrap();
        assert_eq!(status, 200, "{name}");
        assert!(metrics.contains("# EOF"), "{name} serves OpenMetrics text");
    }

    // Every consuming service created its durable consumer, shared by its replicas.
    let mut stream = js.get_stream("CONFIGSYNC_EVENTS").await.unwrap();
    let consumers: Vec<String> = {
        use futures::StreamExt;
        let mut names = stream.consumer_names();
        let mut out = Vec::new();
        while let Some(n) = names.next().await {
            out.push(n.unwrap());
        }
        out.sort();
        out
    };
    assert_eq!(
        consumers,
        [
            "applier",
            "auditor",
            "drift-watcher",
            "remediator",
            "validator"
        ]
    );
    let _ = stream.info().await.unwrap();

    shutdown.cancel();
    for (name, task) in tasks {
        let result = tokio::time::timeout(WAIT, task)
            .await
            .unwrap_or_else(|_| panic!("{name} stops in time"));
        result
            .unwrap()
            .unwrap_or_else(|e| panic!("{name} failed: {e}"));
    }
    for (name, addr) in &addrs {
        assert!(
            http::get(*addr, "/healthz").await.is_err(),
            "{name} closed its ops endpoint"
        );
    }
}

#[tokio::test]
async fn a_service_without_nats_fails_after_its_deadline() {
    let dead = free_addr();
    let ops = free_addr();
    let args = [
        "svc",
        "--nats-url",
        &format!("nats://{dead}"),
        "--ops-addr",
        &ops.to_string(),
        "--connect-deadline",
        "1s",
    ];
    let config = configsync_applier::Config::try_parse_from(args).unwrap();
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        WAIT,
        configsync_applier::run(config, CancellationToken::new()),
    )
    .await
    .expect("gives up in time");
    let err = result.expect_err("no nats, no service");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(1));
}
