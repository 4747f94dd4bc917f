//! Creating, updating and refusing the event stream.

use async_nats::jetstream::stream;
use configsync_core::log::stream::{Ensured, StreamError, StreamSpec, ensure};

use configsync_core::harness::{Bus, connect};

#[tokio::test]
async fn ensure_is_idempotent_and_repairs_a_weakened_stream() {
    let bus = Bus::start().await;
    let spec = StreamSpec::from_definition(1).unwrap();
    assert_eq!(ensure(bus.js(), &spec).await.unwrap(), Ensured::Unchanged);

    // Someone loosened the guarantees by hand: ensure puts them back.
    let mut weakened = spec.config.clone();
    weakened.duplicate_window = std::time::Duration::from_secs(5);
    weakened.max_age = std::time::Duration::from_secs(3600);
    bus.js().update_stream(weakened).await.unwrap();
    assert_eq!(ensure(bus.js(), &spec).await.unwrap(), Ensured::Updated);
    let mut s = bus.js().get_stream(spec.name()).await.unwrap();
    let config = &s.info().await.unwrap().config;
    assert_eq!(config.max_age, std::time::Duration::ZERO);
    assert_eq!(config.duplicate_window, spec.duplicate_window());
}

#[tokio::test]
async fn an_incompatible_existing_stream_is_refused_and_left_alone() {
    let server = configsync_core::harness::NatsServer::start().await.unwrap();
    let log = connect(&server).await;
    let spec = StreamSpec::from_definition(1).unwrap();
    let mut other = spec.config.clone();
    other.storage = stream::StorageType::Memory;
    other.deny_delete = false;
    log.js.create_stream(other).await.unwrap();

    let err = ensure(&log.js, &spec)
        .await
        .expect_err("memory storage cannot become file storage");
    match &err {
        StreamError::Incompatible { problems, .. } => {
            assert!(problems.contains("storage is Memory"), "{problems}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_transient());
    let mut s = log.js.get_stream(spec.name()).await.unwrap();
    assert_eq!(
        s.info().await.unwrap().config.storage,
        stream::StorageType::Memory,
        "left untouched"
    );
}
