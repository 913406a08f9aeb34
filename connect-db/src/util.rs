//! Small helpers shared by backups and restores.

use std::time::{SystemTime, UNIX_EPOCH};

use connect_core::host::{Host, Output};
use connect_core::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// `YYYYMMDDTHHMMSSZ` in UTC: sorts as text in time order. A time before 1970 is 1970's first second.
pub(crate) fn utc_stamp(t: SystemTime) -> String {
    // RFC 3339 (`2026-11-27T04:47:38Z`) without its separators.
    humantime::format_rfc3339_seconds(t.max(UNIX_EPOCH))
        .to_string()
        .replace(['-', ':'], "")
}

/// `YYYYMMDDTHHMMSS.mmmZ`: like [`utc_stamp`], unique enough for backups taken in the same second.
pub(crate) fn utc_stamp_millis(t: SystemTime) -> String {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let s = utc_stamp(t);
    format!("{}.{ms:03}Z", &s[..s.len() - 1])
}

/// The SHA-256 of a file on the host, streamed.
pub(crate) async fn sha256_file(host: &dyn Host, path: &str) -> Result<(String, u64)> {
    let mut reader = host.get_file(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| {
            Error::new(ErrorKind::Unavailable, "backup.checksum", path, e.to_string()).with_source(e)
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((data_encoding::HEXLOWER.encode(&hasher.finalize()), total))
}

/// The last lines of a program's stderr, for error messages.
pub(crate) fn stderr_tail(out: &Output, lines: usize) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_sort_in_time_order() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_760_364_000)),
            "20251013T140000Z"
        );
        assert_eq!(
            utc_stamp_millis(UNIX_EPOCH + Duration::from_millis(1_760_364_000_042)),
            "20251013T140000.042Z"
        );
    }
}
