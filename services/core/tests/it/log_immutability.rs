//! The server itself refuses to delete messages from the stream or to purge it.

use crate::support::health;
use configsync_core::harness::Bus;

#[tokio::test]
async fn the_server_refuses_delete_and_purge() {
    let bus = Bus::start().await;
    bus.publisher().publish(&health(1)).await.unwrap();
    bus.publisher().publish(&health(2)).await.unwrap();
    let stream = bus.js().get_stream("CONFIGSYNC_EVENTS").await.unwrap();

    let deleted = stream.delete_message(1).await;
    assert!(deleted.is_err(), "delete must be refused, got {deleted:?}");
    let purged = stream.purge().await;
    assert!(purged.is_err(), "purge must be refused, got {purged:?}");
    let purged_subject = stream.purge().filter("configsync.evt.>").await;
    assert!(purged_subject.is_err(), "filtered purge must be refused");

    let last = configsync_core::log::replay::last_sequence(bus.js(), "CONFIGSYNC_EVENTS")
        .await
        .unwrap();
    let mut s = bus.js().get_stream("CONFIGSYNC_EVENTS").await.unwrap();
    let info = s.info().await.unwrap();
    assert_eq!(
        (last, info.state.messages),
        (2, 2),
        "both events are still there"
    );
    assert!(
        s.direct_get(1).await.is_ok(),
        "the first event is still readable"
    );
}
