//! Where a recovery goes: the latest, a time, or a named restore point, as pgBackRest's options.

use connect_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::postgres::validate_restore_point_name;

/// Where to recover to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecoveryTarget {
    /// The end of the archived WAL: everything archived before the loss.
    Latest,
    /// A moment, as PostgreSQL reads `recovery_target_time` (`2026-12-06 08:15:00+00`).
    Time(String),
    /// A named restore point (a deploy's `connect-<id>`), with its LSN when known (the deploy's record keeps
    /// it): the newest backup that ends before it is restored, so the replay passes it.
    RestorePoint {
        /// The restore point's name.
        name: String,
        /// Its WAL position (`0/3000090`).
        lsn: Option<String>,
    },
}

impl RecoveryTarget {
    pub(super) fn validate(&self) -> Result<()> {
        match self {
            RecoveryTarget::Latest => Ok(()),
            RecoveryTarget::Time(t) => parse_time(t).map(|_| ()),
            RecoveryTarget::RestorePoint { name, lsn } => {
                validate_restore_point_name(name)?;
                if let Some(l) = lsn {
                    parse_lsn(l)?;
                }
                Ok(())
            }
        }
    }

    pub(super) fn args(&self) -> Vec<String> {
        match self {
            RecoveryTarget::Latest => vec![],
            RecoveryTarget::Time(t) => vec![
                "--type=time".into(),
                // Parsed by `validate` first; pgBackRest and PostgreSQL both read this canonical form.
                format!(
                    "--target={}",
                    parse_time(t).map(|at| at.canonical).unwrap_or_else(|_| t.clone())
                ),
                "--target-action=promote".into(),
            ],
            RecoveryTarget::RestorePoint { name, .. } => vec![
                "--type=name".into(),
                format!("--target={name}"),
                "--target-action=promote".into(),
            ],
        }
    }
}

impl std::fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryTarget::Latest => write!(f, "the latest archived WAL"),
            RecoveryTarget::Time(t) => write!(f, "time {t}"),
            RecoveryTarget::RestorePoint { name, .. } => write!(f, "restore point {name}"),
        }
    }
}

/// A recovery time, parsed: the instant, and the form pgBackRest and PostgreSQL both read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TargetTime {
    /// Whole seconds since the epoch (floored): what pgBackRest compares a backup's stop time with.
    pub(super) unix: i64,
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+00`, in UTC.
    pub(super) canonical: String,
}

/// Reads `2026-12-06 08:15:00+00` (also `T` for the space, a fraction, `Z`, `+HH:MM`, `-HHMM`). The zone is
/// required: without one PostgreSQL reads the time in the server's zone and pgBackRest in its own, which may
/// not be the operator's, and an hour's difference is an hour of data.
pub(super) fn parse_time(text: &str) -> Result<TargetTime> {
    let bad = |why: &str| {
        Error::invalid("pitr.target", text, why)
            .with_hint("write it with its zone, like `2026-12-06 08:15:00+00` or `2026-12-06T09:15:00+01:00`")
    };
    let t = text.trim();
    let (local, offset_s) = if let Some(rest) = t.strip_suffix('Z') {
        (rest, 0_i64)
    } else {
        // The zone starts at the last sign after the time of day (the date's dashes come before it).
        let at = t
            .char_indices()
            .skip(11)
            .filter(|(_, c)| matches!(c, '+' | '-'))
            .map(|(i, _)| i)
            .last()
            .ok_or_else(|| bad("no zone"))?;
        let (local, zone) = t.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if !(digits.len() == 2 || digits.len() == 4) || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad("a zone is +HH, +HHMM or +HH:MM"));
        }
        let hours: i64 = digits[..2].parse().map_err(|_| bad("bad zone"))?;
        let minutes: i64 = match &digits[2..] {
            "" => 0,
            m => m.parse().map_err(|_| bad("bad zone"))?,
        };
        if hours > 15 || minutes > 59 {
            return Err(bad("a zone is at most 15 hours from UTC"));
        }
        (local, sign * (hours * 3600 + minutes * 60))
    };
    let utc_local =
        humantime::parse_rfc3339_weak(local).map_err(|e| bad(&format!("not a date and time: {e}")))?;
    let since = utc_local
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad("before 1970"))?;
    let whole = since.as_secs() as i64 - offset_s;
    let nanos = since.subsec_nanos();
    if whole < 0 {
        return Err(bad("before 1970"));
    }
    let instant = std::time::UNIX_EPOCH + std::time::Duration::new(whole as u64, nanos);
    let canonical = humantime::format_rfc3339_micros(instant)
        .to_string()
        .replace('T', " ")
        .replace('Z', "+00");
    Ok(TargetTime {
        unix: whole,
        canonical,
    })
}

/// `X/Y` as a number.
pub(super) fn parse_lsn(lsn: &str) -> Result<u64> {
    let bad = || Error::invalid("pitr.lsn", lsn, "not an LSN like 0/3000090");
    let (hi, lo) = lsn.split_once('/').ok_or_else(bad)?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
    if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok((hi << 32) | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_and_become_pgbackrest_options() {
        assert!(
            RecoveryTarget::Time("2026-12-06 08:15:00+00".into())
                .validate()
                .is_ok()
        );
        assert!(RecoveryTarget::Time("now'; DROP".into()).validate().is_err());
        assert_eq!(
            RecoveryTarget::Time("2026-12-06T09:15:00.5+01:00".into()).args()[1],
            "--target=2026-12-06 08:15:00.500000+00"
        );
        let rp = RecoveryTarget::RestorePoint {
            name: "connect-d1".into(),
            lsn: Some("0/3000090".into()),
        };
        assert!(rp.validate().is_ok());
        assert_eq!(rp.args()[1], "--target=connect-d1");
        assert!(
            RecoveryTarget::RestorePoint {
                name: "x".into(),
                lsn: Some("zz".into())
            }
            .validate()
            .is_err()
        );
        assert!(RecoveryTarget::Latest.args().is_empty());
    }

    #[test]
    fn times_need_their_zone_and_become_utc() {
        let at = |t: &str| parse_time(t).map(|t| (t.unix, t.canonical));
        let utc = at("2026-12-06 08:15:00+00").unwrap();
        assert_eq!(utc.1, "2026-12-06 08:15:00.000000+00");
        assert_eq!(at("2026-12-06T08:15:00Z").unwrap(), utc);
        assert_eq!(at("2026-12-06 03:15:00-0500").unwrap(), utc);
        assert_eq!(at("2026-12-06 10:45:00+02:30").unwrap(), utc);
        // Floored, as pgBackRest compares: a backup that stopped in this second did not stop before it.
        assert_eq!(at("2026-12-06 08:15:00.999+00").unwrap().0, utc.0);
        for bad in [
            "2026-12-06 08:15:00",
            "2026-12-06",
            "2026-12-06 08:15:00+1",
            "2026-12-06 08:15:00+16",
            "2026-13-06 08:15:00+00",
            "yesterday+00",
            "",
        ] {
            let e = parse_time(bad).expect_err(bad);
            assert!(e.hint().is_some_and(|h| h.contains("zone")), "{bad}: {e}");
        }
    }

    #[test]
    fn lsns_compare_as_numbers() {
        assert!(parse_lsn("0/A000000").unwrap() > parse_lsn("0/9FFFFFF").unwrap());
        assert!(parse_lsn("1/0").unwrap() > parse_lsn("0/FFFFFFFF").unwrap());
        assert!(parse_lsn("1").is_err());
    }
}
