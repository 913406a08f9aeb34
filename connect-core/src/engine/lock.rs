//! The deploy lock: one operation at a time, and a lock that heals when its holder dies.
//!
//! The lock is a file beside the journal, created with `create_new` so only one process can take it. It
//! carries an owner token and a lease: the holder renews the lease while it runs, so a process that was killed
//! (SIGKILL, a dropped future, a lost machine) stops renewing and its lock expires on its own. The next
//! operation takes over an expired lock, says so, and its reconcile finishes or undoes what the dead holder
//! left (see `intent`). Every write a holder makes (journal saves, the unlock) first checks the token — a
//! fencing token, as Kleppmann describes them — so a holder presumed dead that wakes up cannot remove or
//! overwrite its successor's work.
//!
//! The checks are read-then-write over a plain file, not a compare-and-swap: two processes racing to take
//! over the same expired lock are serialised by a `create_new` marker named after the expired token, and the
//! remaining window (a holder whose lease ran out between its check and its write) is milliseconds wide where
//! the lease is tens of seconds.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::clock::now_unix_ms;
use super::journal::JournalStore;
use crate::error::{Error, ErrorKind, Result};
use crate::host::{HostExt, PutOptions};
use crate::vocabulary::OperationKind;

/// How many times the unlock tries a removal that failed for a transient reason.
const UNLOCK_ATTEMPTS: u32 = 3;
/// The pause before the unlock's second attempt; it grows with each attempt.
const UNLOCK_BACKOFF: Duration = Duration::from_millis(100);

/// Who holds the deploy lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Who (`deploy@ci-runner pid 4242`).
    pub holder: String,
    /// What for.
    pub operation: OperationKind,
    /// Unix milliseconds when it was taken.
    pub since_unix_ms: u64,
    /// The owner token: every journal save and the unlock check it.
    #[serde(default)]
    pub token: String,
    /// Unix milliseconds until which the holder counts as alive; it renews the lease while it runs. 0 in a
    /// lock written before leases existed, which then expires one default lease after it was taken.
    #[serde(default)]
    pub lease_until_unix_ms: u64,
    /// The holder whose expired lease this lock took over, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_over_from: Option<String>,
}

impl LockInfo {
    /// When the lease ends (unix milliseconds).
    pub fn expires_unix_ms(&self, default_lease: Duration) -> u64 {
        if self.lease_until_unix_ms > 0 {
            self.lease_until_unix_ms
        } else {
            self.since_unix_ms + default_lease.as_millis() as u64
        }
    }

    fn describe(&self) -> String {
        format!("{} ({}, token {})", self.holder, self.operation, self.token)
    }
}

/// The lock as held by a running operation: what its writes are fenced with.
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    pub(crate) token: String,
}

/// A lock just taken: its fence, and the expired holder it replaced, if any.
pub(crate) struct Taken {
    pub(crate) fence: Fence,
    pub(crate) took_over: Option<LockInfo>,
}

/// A token no other lock shares: the process, the time, a counter, and a per-process random key.
fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(now_unix_ms());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}{:08x}", h.finish(), std::process::id())
}

impl JournalStore {
    fn lock_bytes(info: &LockInfo) -> Vec<u8> {
        serde_json::to_vec(info).expect("lock info serializes")
    }

    async fn write_lock(&self, info: &LockInfo, create_new: bool) -> Result<u64> {
        self.host
            .write_file(
                &self.lock_path,
                Self::lock_bytes(info),
                PutOptions {
                    mode: 0o600,
                    create_new,
                },
            )
            .await
    }

    /// Takes the deploy lock; takes over one whose lease has expired; otherwise says who holds it and until
    /// when.
    pub(crate) async fn lock(
        &self,
        holder: &str,
        operation: OperationKind,
        lease: Duration,
    ) -> Result<Taken> {
        let now = now_unix_ms();
        let info = LockInfo {
            holder: holder.to_string(),
            operation,
            since_unix_ms: now,
            token: new_token(),
            lease_until_unix_ms: now + lease.as_millis() as u64,
            took_over_from: None,
        };
        let fence = Fence {
            token: info.token.clone(),
        };
        // Twice: a lock released between our create and our read is simply gone, and the second create wins.
        for _ in 0..2 {
            match self.write_lock(&info, true).await {
                Ok(_) => {
                    return Ok(Taken {
                        fence,
                        took_over: None,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return self.lock_error_checked(e, &fence).await,
            }
            let held = match self.holder().await {
                Ok(Some(held)) => held,
                Ok(None) => continue,
                // An unreadable lock (a holder killed while writing it) is as good as expired.
                Err(e) if e.kind() == ErrorKind::Corrupt => LockInfo {
                    holder: format!("an unreadable lock ({e})"),
                    operation,
                    since_unix_ms: 0,
                    token: String::new(),
                    lease_until_unix_ms: 1,
                    took_over_from: None,
                },
                Err(e) => return Err(e),
            };
            let expires = held.expires_unix_ms(lease);
            if expires > now_unix_ms() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "deploy.lock",
                    &self.lock_path,
                    format!(
                        "another operation is running: {} for {} since {} ({} s ago); its lease ends in {} s",
                        held.holder,
                        held.operation,
                        held.since_unix_ms,
                        now_unix_ms().saturating_sub(held.since_unix_ms) / 1000,
                        expires.saturating_sub(now_unix_ms()).div_ceil(1000)
                    ),
                )
                .with_hint(
                    "wait for it to finish; if its process is gone, the lock expires with its lease and the next \
                     operation takes over and repairs what it left (break_lock removes it at once)",
                ));
            }
            return self.take_over(info, held, fence).await;
        }
        Err(Error::new(
            ErrorKind::Conflict,
            "deploy.lock",
            &self.lock_path,
            "the lock changed hands twice while we tried to take it",
        )
        .with_hint("another operation is starting; try again"))
    }

    /// A `create_new` whose reply was lost may have created the lock: if the file holds our token, it is ours.
    async fn lock_error_checked(&self, e: Error, fence: &Fence) -> Result<Taken> {
        match self.holder().await {
            Ok(Some(held)) if held.token == fence.token => Ok(Taken {
                fence: fence.clone(),
                took_over: None,
            }),
            _ => Err(e),
        }
    }

    async fn take_over(&self, mut info: LockInfo, held: LockInfo, fence: Fence) -> Result<Taken> {
        // Only one process may take over a given expired lock: the one that creates this marker.
        let marker = format!("{}.takeover-{}", self.lock_path, held.token);
        if !self.claim(&marker, info.lease_until_unix_ms).await? {
            return Err(Error::new(
                ErrorKind::Conflict,
                "deploy.lock",
                &self.lock_path,
                format!(
                    "another operation is taking over the expired lock of {}",
                    held.describe()
                ),
            )
            .with_hint("wait for it to finish"));
        }
        let result = async {
            let now_held = match self.holder().await {
                // The unreadable lock we are replacing is still there.
                Err(e) if e.kind() == ErrorKind::Corrupt => None,
                other => other?,
            };
            match now_held {
                Some(now_held) if now_held.token != held.token => {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        "deploy.lock",
                        &self.lock_path,
                        format!(
                            "the lock was taken by {} while we took it over",
                            now_held.describe()
                        ),
                    )
                    .with_hint("wait for it to finish"));
                }
                _ => {}
            }
            info.took_over_from = Some(held.describe());
            self.write_lock(&info, false).await?;
            Ok(Taken {
                fence,
                took_over: Some(held),
            })
        }
        .await;
        // The marker has done its job once the new lock is written (or the takeover was given up).
        let _ = self.host.remove_file(&marker).await;
        result
    }

    /// Creates the takeover `marker`, holding when the claim ends; `false` when another process holds a claim
    /// still running. A claim whose taker died before finishing (its end passed) is removed and made again, so
    /// a dead taker cannot block every later takeover.
    async fn claim(&self, marker: &str, until_unix_ms: u64) -> Result<bool> {
        let create = || {
            self.host.write_file(
                marker,
                until_unix_ms.to_string().into_bytes(),
                PutOptions {
                    mode: 0o600,
                    create_new: true,
                },
            )
        };
        match create().await {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() != ErrorKind::Conflict => return Err(e),
            Err(_) => {}
        }
        let ends = self
            .host
            .read_file(marker)
            .await?
            .and_then(|b| String::from_utf8_lossy(&b).trim().parse::<u64>().ok())
            .unwrap_or(0);
        if ends > now_unix_ms() {
            return Ok(false);
        }
        match self.host.remove_file(marker).await {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match create().await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Who holds the lock; `None` when nobody does.
    pub(crate) async fn holder(&self) -> Result<Option<LockInfo>> {
        let Some(bytes) = self.host.read_file(&self.lock_path).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                "deploy.lock",
                &self.lock_path,
                format!("unreadable lock: {e}"),
            )
            .with_hint("it expires like any other; break_lock removes it at once")
        })
    }

    /// Fails unless the lock still carries our token: the check before every write a holder makes.
    pub(crate) async fn fence(&self, fence: &Fence) -> Result<LockInfo> {
        match self.holder().await? {
            Some(held) if held.token == fence.token => Ok(held),
            other => Err(Error::new(
                ErrorKind::Conflict,
                "deploy.lock",
                &self.lock_path,
                match other {
                    Some(held) => format!("the deploy lock is no longer ours: {} holds it", held.describe()),
                    None => "the deploy lock is no longer ours: it was broken".to_string(),
                },
            )
            .with_hint(
                "this operation's lease expired and another operation took over; that one finishes or undoes \
                 what this one did",
            )),
        }
    }

    /// Extends our lease by `lease` from now.
    pub(crate) async fn renew(&self, fence: &Fence, lease: Duration) -> Result<()> {
        let mut held = self.fence(fence).await?;
        held.lease_until_unix_ms = now_unix_ms() + lease.as_millis() as u64;
        self.write_lock(&held, false).await.map(drop)
    }

    /// Renews the lease every third of it until `stop` says so (or its sender is gone); returns why it
    /// stopped on its own: the lock was lost to another holder, or could not be renewed before the lease ran
    /// out. `stop` is looked at between renewals only: a renewal dropped mid-write would leave its temporary
    /// file on the server (uploads land in two steps), so the owner asks it to stop and waits instead.
    pub(crate) async fn keep_lease(
        &self,
        fence: &Fence,
        lease: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<Error> {
        let every = lease / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => return None,
                () = tokio::time::sleep(every) => {}
            }
            match tokio::time::timeout(every, self.renew(fence, lease)).await {
                Ok(Ok(())) => renewed = tokio::time::Instant::now(),
                Ok(Err(e)) if e.kind() == ErrorKind::Conflict => return Some(e),
                Ok(Err(e)) if renewed.elapsed() >= lease => return Some(e),
                Err(_) if renewed.elapsed() >= lease => {
                    return Some(Error::new(
                        ErrorKind::Timeout,
                        "deploy.lock",
                        &self.lock_path,
                        format!("the lease could not be renewed for {lease:?}"),
                    )
                    .with_hint(
                        "check the connection to the server; the next operation repairs what this one left",
                    ));
                }
                // A failed renewal inside the lease is retried at the next tick.
                _ => tracing::warn!(path = %self.lock_path, "lease renewal failed; retrying"),
            }
        }
    }

    /// Removes the lock if it is still ours; someone else's is left alone. A removal is not repeatable in
    /// general (the second finds nothing), but here "already gone" is the goal, so a transient failure is
    /// tried again rather than leaving everyone waiting out the lease.
    pub(crate) async fn unlock(&self, fence: &Fence) -> Result<()> {
        self.fence(fence).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.host.remove_file(&self.lock_path).await {
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) if e.is_retryable() && attempt < UNLOCK_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "unlock failed; trying again");
                    // A pause, not synchronisation: give a restarting connection a moment.
                    tokio::time::sleep(UNLOCK_BACKOFF * attempt).await;
                }
                other => return other,
            }
        }
    }

    /// Removes the lock whoever holds it; returns who held it.
    pub(crate) async fn break_lock(&self) -> Result<Option<LockInfo>> {
        let holder = self.holder().await.unwrap_or(None);
        match self.host.remove_file(&self.lock_path).await {
            Ok(()) => Ok(holder),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
