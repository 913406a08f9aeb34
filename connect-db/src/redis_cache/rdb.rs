//! What `redis-check-rdb` says about a file, and whether Redis loaded that file.

use std::collections::HashMap;

use connect_core::{Error, ErrorKind, Result};

/// The counts `redis-check-rdb` prints after a good check (`[info] N keys read`, `[info] M expires`,
/// `[info] K already expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RdbSummary {
    /// Keys in the file, volatile ones included.
    pub keys: u64,
    /// Keys in the file with a TTL.
    pub expires: u64,
}

pub(crate) fn parse_check_rdb(text: &str) -> Option<RdbSummary> {
    let count = |suffix: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix("[info] ")?
                .strip_suffix(suffix)?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some(RdbSummary {
        keys: count(" keys read")?,
        expires: count(" expires").unwrap_or(0),
    })
}

/// Whether Redis loaded the file `file` describes, from `INFO persistence` right after the load.
///
/// Keys with a TTL that ran out between the backup and the restore are dropped by the load (a primary does
/// not load expired keys), so the key count after a restore may rightly be lower than the backup's; and the
/// app may write keys as soon as Redis answers. Redis 7 counts what its last load read:
/// `rdb_last_load_keys_loaded + rdb_last_load_keys_expired` is every key of the file it loaded, exact
/// whatever expired or was written since. Older servers lack those fields: then the keys without a TTL
/// (which cannot have expired) must at least be there.
pub(crate) fn verify_loaded(
    op: &str,
    target: &str,
    file: Option<RdbSummary>,
    persistence: &HashMap<String, String>,
    keys_now: u64,
) -> Result<()> {
    let Some(file) = file else {
        // A redis-check-rdb too old to print counts: nothing to compare with, and no reason to cry wolf
        // after Redis was already restarted on the file.
        tracing::warn!(
            target,
            "redis-check-rdb printed no key count; the restored key count is not checked"
        );
        return Ok(());
    };
    let field = |k: &str| persistence.get(k).and_then(|v| v.parse::<u64>().ok());
    let hint = "Redis did not load the placed dump.rdb (check dir/dbfilename and AOF)";
    match (
        field("rdb_last_load_keys_loaded"),
        field("rdb_last_load_keys_expired"),
    ) {
        (Some(loaded), Some(expired)) if loaded + expired != file.keys => Err(Error::new(
            ErrorKind::Corrupt,
            op,
            target,
            format!(
                "the load read {loaded} keys (+{expired} expired), the restored file holds {}",
                file.keys
            ),
        )
        .with_hint(hint)),
        (Some(_), Some(_)) => Ok(()),
        _ if keys_now < file.keys - file.expires.min(file.keys) => Err(Error::new(
            ErrorKind::Corrupt,
            op,
            target,
            format!(
                "{keys_now} keys after the restore, the file holds {} that cannot expire",
                file.keys - file.expires.min(file.keys)
            ),
        )
        .with_hint(hint)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED: &str = "[offset 0] Checking RDB file dump.rdb\n[offset 127] \\o/ RDB looks OK! \\o/\n\
                           [info] 3 keys read\n[info] 2 expires\n[info] 1 already expired\n";

    fn info(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn counts_come_from_the_check() {
        assert_eq!(parse_check_rdb(CHECKED), Some(RdbSummary { keys: 3, expires: 2 }));
        assert_eq!(parse_check_rdb("RDB looks OK"), None);
    }

    #[test]
    fn keys_that_expired_are_no_corruption() {
        let file = RdbSummary { keys: 3, expires: 2 };
        let loaded = info(&[
            ("rdb_last_load_keys_loaded", "1"),
            ("rdb_last_load_keys_expired", "2"),
        ]);
        verify_loaded("t", "r", Some(file), &loaded, 1).unwrap();
        // Written by the app after the load: still the file's keys that were loaded.
        verify_loaded("t", "r", Some(file), &loaded, 50).unwrap();
        let other = info(&[
            ("rdb_last_load_keys_loaded", "0"),
            ("rdb_last_load_keys_expired", "0"),
        ]);
        assert_eq!(
            verify_loaded("t", "r", Some(file), &other, 0).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        // Redis 6: only the persistent keys are sure to be there.
        verify_loaded("t", "r", Some(file), &info(&[]), 1).unwrap();
        assert!(verify_loaded("t", "r", Some(file), &info(&[]), 0).is_err());
    }
}
