//! A fleet rollback after one that was interrupted part-way: finish it, never swap the hosts.
//!
//! A rollback killed after some hosts declared their intent leaves those hosts' settling to finish it (one
//! host's rule: a verified release the operator asked for), while the hosts that never declared stay where
//! they were. The hosts then run different releases, each with the other as its standby, so rolling each
//! back to its own standby would swap them and leave the fleet as mixed as before. The rollback instead
//! goes to the release the finished hosts run: hosts already on it stay, the others switch to it.

use super::host::HostRun;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Release;
use crate::vocabulary::OperationKind;

/// One web host as the rollback found it.
struct Found<'a> {
    name: &'a str,
    live: &'a Release,
    standby: &'a Release,
    /// Its last record is an instant rollback by another operation (one its settling finished, or an
    /// earlier one), which left it on its live color.
    rolled_back: bool,
}

/// The release every web host in `web` must end on when they do not all run one release now; `None`
/// when they do (each goes to its standby, the usual rollback). Refused when no single release is every
/// host's live or standby one, or the finished rollback's release cannot be told.
pub(super) fn interrupted_target(hosts: &[HostRun<'_>], web: &[usize]) -> Result<Option<Release>> {
    let found: Vec<Found<'_>> = web.iter().filter_map(|&i| found(&hosts[i])).collect();
    let Some(first) = found.first() else {
        return Ok(None);
    };
    if found.iter().all(|f| f.live == first.live) {
        return Ok(None);
    }
    let mut finished: Vec<&Release> = Vec::new();
    for f in found.iter().filter(|f| f.rolled_back) {
        if !finished.contains(&f.live) {
            finished.push(f.live);
        }
    }
    let reachable = |r: &Release| found.iter().all(|f| f.live == r || f.standby == r);
    match finished.as_slice() {
        [target] if reachable(target) => Ok(Some((*target).clone())),
        _ => Err(Error::new(
            ErrorKind::Refused,
            "fleet.rollback",
            "releases",
            format!(
                "the web hosts run different releases ({}), and no interrupted rollback says which one to go \
                 back to",
                found
                    .iter()
                    .map(|f| format!("{} on {}", f.live.version, f.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("deploy the release you want: every host gets it")),
    }
}

fn found<'a>(h: &'a HostRun<'_>) -> Option<Found<'a>> {
    let (journal, run) = (h.journal.as_ref()?, h.run.as_ref()?);
    let live = &journal.slots.get(&journal.live?)?.release;
    let standby = run.record.release.as_ref()?;
    let rolled_back = journal
        .history
        .last()
        .is_some_and(|r| r.kind == OperationKind::InstantRollback && r.id != run.record.id);
    Some(Found {
        name: h.name(),
        live,
        standby,
        rolled_back,
    })
}
