//! The six services start against a real NATS, bind their durable consumers, serve their ops
//! endpoints, and stop cleanly on shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use configsync_core::harness::free_addr;
use tokio_util::sync::CancellationToken;

use crate::http;
use crate::support::{Pipeline, WAIT, configmap};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_six_services_serve_their_ops_endpoints_bind_their_consumers_and_stop_cleanly() {
    let p = Pipeline::start(&[(
        "configs/dev/web/config.yaml",
        &configmap("settings", "blue"),
    )])
    .await;
    for s in &p.stack.services {
        let addr: SocketAddr = s.ops.trim_start_matches("http://").parse().unwrap();
        let (status, text) = http::get(addr, "/healthz").await.unwrap();
        assert_eq!((status, text.as_str()), (200, "ok"), "{} /healthz", s.name);
        // The git-watcher becomes ready after its first successful poll, which the stack
        // does not wait for: poll readiness with a deadline.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match http::get(addr, "/readyz").await.unwrap() {
                (200, text) => {
                    assert_eq!(text, "ready");
                    break;
                }
                (503, _) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(25)).await
                }
                other => panic!("{} /readyz: {other:?}", s.name),
            }
        }
        let (status, metrics) = http::get(addr, "/metrics").await.unwrap();
        assert_eq!(status, 200, "{}", s.name);
        assert!(
            metrics.contains("# EOF"),
            "{} serves OpenMetrics text",
            s.name
        );
    }
    // The work-splitting services share one durable consumer each, named after them.
    let mut stream = p.js.get_stream("CONFIGSYNC_EVENTS").await.unwrap();
    let mut names = Vec::new();
    let mut listing = stream.consumer_names();
    while let Some(n) = futures::StreamExt::next(&mut listing).await {
        names.push(n.unwrap());
    }
    for durable in ["applier", "drift-watcher", "remediator", "validator"] {
        assert!(
            names.iter().any(|n| n == durable),
            "{durable} consumer missing: {names:?}"
        );
    }
    for durable in ["applier", "drift-watcher", "remediator", "validator"] {
        let info = stream.consumer_info(durable).await.unwrap();
        assert_eq!(
            info.config.durable_name.as_deref(),
            Some(durable),
            "{durable} is a durable consumer, the one its replicas share"
        );
    }
    let info = stream.info().await.unwrap();
    assert!(
        info.state.consumer_count >= 4,
        "the stream counts the consumers: {:?}",
        info.state
    );
    let addrs: Vec<SocketAddr> = p
        .stack
        .services
        .iter()
        .map(|s| s.ops.trim_start_matches("http://").parse().unwrap())
        .collect();
    tokio::time::timeout(WAIT, p.stop())
        .await
        .expect("stops in time");
    for addr in addrs {
        assert!(
            http::get(addr, "/healthz").await.is_err(),
            "{addr} closed its ops endpoint"
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
