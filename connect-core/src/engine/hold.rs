//! The deploy lock held by a caller between operations: a script's own work (a database restore, a change by
//! hand) that no deploy or rollback may overlap.
//!
//! It is the same lock file, lease and fencing token as an operation's (`lock.rs`), recorded as a
//! `maintenance` operation. The lease is renewed by a task of its own for as long as the lock is held, so a
//! script that dies stops renewing and the next operation takes the lock over after the lease, as after a
//! killed deploy. The lock is not re-entrant: an operation of the same `Deployer` waits for no one and is
//! refused (`Conflict`) while it is held.

use tokio::task::JoinHandle;

use super::Deployer;
use super::journal::{JournalStore, OperationRecord};
use super::lock::{Fence, LockInfo};
use crate::error::{Error, Result};
use crate::vocabulary::{OperationKind, Step};

/// The deploy lock, held until [`HeldLock::release`] (or, when dropped, until its lease runs out).
#[derive(Debug)]
pub struct HeldLock {
    store: JournalStore,
    fence: Fence,
    took_over: Option<LockInfo>,
    renewal: JoinHandle<Option<Error>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Deployer {
    /// Takes the deploy lock for work of the caller's own, taking over a lock whose lease has expired; a held
    /// one is `Conflict`, naming its holder and until when. Must be called inside a tokio runtime (the lease
    /// is renewed by a task of its own).
    pub async fn hold_lock(&self) -> Result<HeldLock> {
        let lease = self.config.policy.lock_lease;
        let taken = self
            .store
            .lock(&self.config.holder, OperationKind::Maintenance, lease)
            .await?;
        if let Some(before) = &taken.took_over {
            self.events.warn(
                Step::Lock,
                format!(
                    "took over the deploy lock of {} ({}), whose lease expired",
                    before.holder, before.operation
                ),
            );
        }
        let (store, fence) = (self.store.clone(), taken.fence.clone());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let renewal = tokio::spawn(async move { store.keep_lease(&fence, lease, stopped).await });
        Ok(HeldLock {
            store: self.store.clone(),
            fence: taken.fence,
            took_over: taken.took_over,
            renewal,
            stop,
        })
    }
}

impl HeldLock {
    /// The holder whose expired lock this one took over, if it did: an operation of theirs may be half done,
    /// and the next operation settles it.
    pub fn took_over(&self) -> Option<&LockInfo> {
        self.took_over.as_ref()
    }

    /// Whether the lock was lost: its lease could not be renewed, or another holder took it over.
    pub fn is_lost(&self) -> bool {
        self.renewal.is_finished()
    }

    /// Adds `records` to this server's journal history (see [`Journal::merge_history`](super::Journal::merge_history)),
    /// written while the lock is still ours: how a recovery carries the lost server's history over, so
    /// `history` shows it and a full rollback finds its releases. Returns how many records were added.
    pub async fn merge_history(&self, records: &[OperationRecord]) -> Result<usize> {
        let mut journal = self.store.load().await?;
        let added = journal.merge_history(records);
        if added > 0 {
            self.store.save(&journal, &self.fence).await?;
        }
        Ok(added)
    }

    /// Releases the lock. An error says it was lost meanwhile (why renewing failed), or that removing it
    /// failed (it then expires with its lease).
    pub async fn release(mut self) -> Result<()> {
        let lost = if self.renewal.is_finished() {
            (&mut self.renewal).await.ok().flatten()
        } else {
            // A renewal in flight finishes its write (dropped mid-write it would leave a temporary file).
            let _ = self.stop.send(true);
            (&mut self.renewal).await.ok().flatten()
        };
        match lost {
            Some(e) => Err(e),
            None => self.store.unlock(&self.fence).await,
        }
    }
}

impl Drop for HeldLock {
    /// Stops renewing: the lock expires with its lease, as a dead holder's does.
    fn drop(&mut self) {
        self.renewal.abort();
    }
}
