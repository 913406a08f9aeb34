use crate::cache::Cache;

/// The promises of [`Cache`]: it answers PING; a save completes and moves `LASTSAVE` forward.
pub async fn cache_suite(cache: &dyn Cache) {
    cache.ping().await.expect("ping");
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
