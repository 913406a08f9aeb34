//! Small helpers shared by backups and restores.

use std::time::{SystemTime, UNIX_EPOCH};

use connect_core::host::{Host, Output};
use connect_core::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// `YYYYMMDDTHHMMSSZ` in UTC: sorts as text in time order.
pub(crate) fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The SHA-256 of a file on the host, streamed.
pub(crate) async fn sha256_file(host: &dyn Host, path: &str) -> Result<(String, u64)> {
    let mut reader = host.get_file(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| Error::new(ErrorKind::Unavailable, "backup.checksum", path, e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
