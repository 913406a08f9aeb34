use crate::cache::Cache;

/// The promises of [`Cache`]: it answers PING; a save completes and moves `LASTSAVE` forward; its figures
/// (when it has them) count the reader among its clients and memory in use.
pub async fn cache_suite(cache: &dyn Cache) {
    cache.ping().await.expect("ping");
    match cache.figures().await {
        Ok(f) => assert!(
            f.connected_clients >= 1 && f.used_memory_bytes > 0,
            "the reader is a client, and Redis uses memory: {f:?}"
        ),
        Err(e) => assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "figures: {e}"),
    }
    let before = cache.info().await.expect("info");
    assert!(!before.role.is_empty(), "info names the role");
    let after = cache.save().await.expect("save");
    assert!(
        after.last_save_unix > before.last_save_unix,
        "LASTSAVE moves: {before:?} -> {after:?}"
    );
    assert!(
        after.last_bgsave_ok && !after.bgsave_in_progress,
        "the save finished well: {after:?}"
    );
}
