//! `schemas/` must be what the Rust types generate (`configsync schemas write` refreshes it).

#[test]
fn checked_in_schemas_are_fresh() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let stale = configsync_core::schema::stale(&dir);
    assert!(
        stale.is_empty(),
        "schemas/ is stale, run `cargo run -p configsync -- schemas write`: {stale:?}"
    );
}
