//! Where a recovery goes: the latest, a time, or a named restore point, as pgBackRest's options.

use connect_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::postgres::validate_restore_point_name;

/// Where to recover to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
            RecoveryTarget::Time(t) => {
                let ok = !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | ':' | '+' | '.' | 'T' | 'Z'));
                if ok {
                    Ok(())
                } else {
                    Err(Error::invalid("pitr.target", t, "not a time PostgreSQL reads")
                        .with_hint("write it like `2026-12-06 08:15:00+00`"))
                }
            }
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
                format!("--target={t}"),
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
    fn lsns_compare_as_numbers() {
        assert!(parse_lsn("0/A000000").unwrap() > parse_lsn("0/9FFFFFF").unwrap());
        assert!(parse_lsn("1/0").unwrap() > parse_lsn("0/FFFFFFFF").unwrap());
        assert!(parse_lsn("1").is_err());
    }
}
