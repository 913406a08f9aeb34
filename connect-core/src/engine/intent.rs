//! Write-ahead intent, and settling what a failed or interrupted operation left, from observation.
//!
//! Before its first irreversible action (start a container, switch, remove), an operation records in the
//! journal what it is about to do: an [`Intent`]. When the operation fails, and when a later operation finds
//! the intent of one that was killed, the same [`Deployer::settle`] runs: it reads the router and the runtime
//! as they are now (never the name of the step that failed: a call that returned an error may have applied)
//! and brings them to a single live color on a running, healthy container, preferring the color that was
//! live before, then records what it found and did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Deployer;
use super::journal::{Journal, SlotRecord, now_unix_ms};
use super::reconcile::Observed;
use crate::error::{Error, Result};
use crate::model::{Color, Release};
use crate::router::AdminState;
use crate::vocabulary::OperationKind;

/// What an operation is about to change, recorded before it changes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The operation's id, as its record will have it.
    pub operation: String,
    /// What kind of operation.
    pub kind: OperationKind,
    /// Who runs it.
    pub holder: String,
    /// The release being started on `to`, for deploys; it has not passed verification while the intent
    /// stands, so settling never records it as live or standby unless nothing else serves.
    pub release: Option<Release>,
    /// The color that served before the operation (the one to keep when undoing).
    pub from: Option<Color>,
    /// The color the operation changes: the idle color a deploy starts, the standby a rollback switches to or
    /// a retire removes.
    pub to: Color,
    /// Unix milliseconds when it was recorded.
    pub since_unix_ms: u64,
    /// Servers' weights to put back when settling (a canary changes them), by server name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
}

impl Intent {
    /// Whether the operation starts an unverified release on `to`, which settling removes.
    fn starts_release(&self) -> bool {
        matches!(self.kind, OperationKind::Deploy | OperationKind::FullRollback)
    }

    /// Whether settling removes `to`'s container when another color serves.
    fn discards_to(&self) -> bool {
        self.starts_release() || self.kind == OperationKind::Retire
    }
}

/// Where settling left things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    /// The single live color, if any color could serve.
    pub(crate) live: Option<Color>,
    /// Traffic was on `to` when settling began, and is on `from` now.
    pub(crate) moved_back: bool,
    /// One sentence for the record.
    pub(crate) detail: String,
}

impl Deployer {
    /// Brings router, runtime and `journal` to one healthy live color after `intent` failed or was
    /// interrupted, and clears the intent. On error the intent stays in the journal, so the next operation
    /// tries again.
    pub(crate) async fn settle(&self, journal: &mut Journal, intent: &Intent) -> Result<Settled> {
        let observed = self.observe().await?;
        let serving = |c: Color| {
            observed
                .slot(c)
                .container
                .as_ref()
                .is_some_and(|i| i.is_serving())
        };
        let live_before: Vec<Color> = observed.live_colors();
        // Undo first: the color that served before; then the one being changed, when it is all that serves
        // (a dead old color must not take the service down with it); a first deploy has nothing to undo to.
        // An instant rollback is finished instead: its target is a verified release the operator asked for,
        // and going back would put the release they were leaving live again.
        let candidates: Vec<Color> = match intent.from {
            Some(from) if intent.kind == OperationKind::InstantRollback => vec![intent.to, from],
            Some(from) => vec![from, intent.to],
            None if intent.starts_release() => vec![],
            None => vec![intent.to],
        };
        let keep = candidates.into_iter().find(|c| serving(*c));
        let mut done = Vec::new();
        if let Some(keep) = keep {
            self.make_sole_live(&observed, keep, intent, &mut done).await?;
        } else if intent.starts_release() {
            // Nothing serves to switch to: the unverified release takes no traffic either.
            self.discard(journal, intent.to, &mut done).await?;
        }
        if keep != Some(intent.to) && intent.discards_to() && keep.is_some() {
            self.discard(journal, intent.to, &mut done).await?;
        }
        for (server, weight) in &intent.weights {
            let seen = observed
                .slots
                .iter()
                .map(|s| &s.server)
                .find(|s| &s.name == server);
            if seen.is_some_and(|s| s.weight != *weight) {
                self.backends.router.set_weight(server, *weight).await?;
                done.push(format!("{server} weight back to {weight}"));
            }
        }
        match keep {
            Some(keep) => {
                journal.live = Some(keep);
                if keep == intent.to
                    && intent.starts_release()
                    && let Some(release) = &intent.release
                {
                    journal.slots.insert(
                        keep,
                        SlotRecord {
                            release: release.clone(),
                            container: self.config.topology.slot(keep).container.clone(),
                            since_unix_ms: now_unix_ms(),
                        },
                    );
                    done.push(format!(
                        "kept {keep} on the unverified {} because nothing else serves",
                        release.version
                    ));
                }
            }
            None if intent.from.is_none() => journal.live = None,
            None => done.push("no color can serve; the journal keeps its live color".into()),
        }
        journal.balanced = false;
        journal.intent = None;
        let moved_back = intent.from.is_some()
            && keep == intent.from
            && live_before.contains(&intent.to)
            && intent.from != Some(intent.to);
        let live = keep;
        let place = match live {
            None => "no color takes traffic".to_string(),
            Some(c) if moved_back => format!("traffic is on {c} again"),
            Some(c) if Some(c) == intent.from && live_before == [c] => format!("traffic stayed on {c}"),
            Some(c) => format!("traffic is on {c}"),
        };
        let detail = if done.is_empty() {
            format!("{place}; nothing to undo")
        } else {
            format!("{place}; {}", done.join("; "))
        };
        Ok(Settled {
            live,
            moved_back,
            detail,
        })
    }

    /// Makes `keep` the only color taking new requests: seen live first, then the other drained (kept as
    /// the standby) or put in maintenance (about to be removed).
    async fn make_sole_live(
        &self,
        observed: &Observed,
        keep: Color,
        intent: &Intent,
        done: &mut Vec<String>,
    ) -> Result<()> {
        let router = &self.backends.router;
        let server = &self.config.topology.slot(keep).server;
        if !observed.slot(keep).server.is_live() {
            router.set_state(server, AdminState::Ready).await?;
            router
                .wait_live(server, self.config.policy.router_deadline)
                .await?;
            done.push(format!("{keep} made live again"));
        }
        let other = keep.other();
        let other_server = &observed.slot(other).server;
        if other_server.admin == AdminState::Ready {
            let removing = other == intent.to && intent.discards_to();
            let state = if removing {
                AdminState::Maint
            } else {
                AdminState::Drain
            };
            router.set_state(&other_server.name, state).await?;
            done.push(format!("{other} set to {state}"));
        }
        Ok(())
    }

    /// Takes `color` out of the router and removes its container.
    async fn discard(&self, journal: &mut Journal, color: Color, done: &mut Vec<String>) -> Result<()> {
        let slot = self.config.topology.slot(color);
        let b = &self.backends;
        let server = b.router.server(&slot.server).await?;
        if server.admin != AdminState::Maint {
            b.router.set_state(&slot.server, AdminState::Maint).await?;
        }
        if b.runtime.inspect(&slot.container).await?.is_some() {
            self.stop_and_remove(&slot.container).await?;
            done.push(format!("{} removed", slot.container));
        }
        journal.slots.remove(&color);
        if journal.live == Some(color) {
            journal.live = None;
        }
        Ok(())
    }

    /// The sentence an error ends with: where traffic is, as the router shows it now.
    pub(crate) async fn where_traffic_is(&self) -> String {
        match self.observe().await {
            Ok(observed) => match observed.live_colors().as_slice() {
                [] => "no color takes traffic".into(),
                [c] => format!("traffic is on {c}"),
                _ => "traffic is on both colors".into(),
            },
            Err(e) => format!("where traffic is could not be read ({})", Error::summary(&e)),
        }
    }
}
