//! The invariants every case is held to. Each check is named and returns what it found wrong, in one line.

use std::collections::BTreeSet;

use connect_core::engine::{Journal, Status};
use connect_core::memory::MemoryStack;
use connect_core::model::{Color, Topology};
use connect_core::router::ServerStatus;

/// Once a deploy succeeded, some server takes traffic and its container runs and is healthy.
pub(crate) const SERVING: &str = "serving";
/// The journal's live color is where HAProxy sends traffic, or `status()` shows the difference.
pub(crate) const JOURNAL_MATCHES: &str = "journal-matches-router";
/// After recovery, `status()` shows no difference.
pub(crate) const SETTLED: &str = "settled";
/// After recovery, no lock is held (and the recovery was not refused by one).
pub(crate) const LOCKED: &str = "locked forever";
/// An error never says traffic is on a color it is not on.
pub(crate) const ERROR_TRUTH: &str = "error-tells-truth";
/// The journal's slots hold only releases whose deploy succeeded (passed the health gate and verification).
pub(crate) const VERIFIED: &str = "verified-only";
/// No container but the two slot containers exists.
pub(crate) const CONTAINERS: &str = "no-stray-container";
/// After recovery every container is one the journal records, and every recorded one serves.
pub(crate) const HALF_MADE: &str = "nothing-half-made";
/// The live and standby releases' images are still there (prune never takes what a rollback needs).
pub(crate) const IMAGES: &str = "rollback-images-kept";
/// The recovery (the same operation by a new process) succeeds.
pub(crate) const RECOVERY: &str = "recovery-succeeds";
/// Every operation ends by itself: a hung call is bounded by a deadline.
pub(crate) const UNBOUNDED: &str = "unbounded";
/// The clean run succeeds, and the call a case traps is reached (the run is deterministic).
pub(crate) const HARNESS: &str = "harness";

/// Synchronous views of the stack, read between calls without being calls themselves.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub stack: MemoryStack,
    pub topology: Topology,
}

impl Probe {
    fn server(&self, color: Color) -> Option<ServerStatus> {
        let name = &self.topology.slot(color).server;
        self.stack.router.snapshot().into_iter().find(|s| &s.name == name)
    }

    fn serving(&self, color: Color) -> bool {
        self.stack
            .runtime
            .is_serving(&self.topology.slot(color).container)
    }

    /// The colors HAProxy sends traffic to now.
    pub(crate) fn live(&self) -> Vec<Color> {
        Color::ALL
            .into_iter()
            .filter(|c| self.server(*c).is_some_and(|s| s.is_live()))
            .collect()
    }

    /// Each color's server and container, for a violation's text.
    pub(crate) fn describe(&self) -> String {
        Color::ALL
            .into_iter()
            .map(|c| {
                let server = self
                    .server(c)
                    .map_or("missing".into(), |s| format!("{:?}/{:?}", s.admin, s.check));
                let container = if self.serving(c) { "serving" } else { "not serving" };
                format!("{c}: server {server}, container {container}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// [`SERVING`].
pub(crate) fn serving(probe: &Probe) -> Option<String> {
    let ok = probe.live().into_iter().any(|c| probe.serving(c));
    (!ok).then(|| format!("no live server on a serving container ({})", probe.describe()))
}

/// [`JOURNAL_MATCHES`]: unless balanced, the journal's live color is the one color with traffic.
pub(crate) fn journal_matches(journal: &Journal, status: &Status, probe: &Probe) -> Option<String> {
    if journal.balanced || !status.differences.is_empty() {
        return None;
    }
    let recorded: Vec<Color> = journal.live.into_iter().collect();
    let live = probe.live();
    (recorded != live).then(|| {
        format!("the journal says {recorded:?} is live, HAProxy sends traffic to {live:?}, and status shows no difference")
    })
}

/// [`SETTLED`], after recovery ([`LOCKED`] is checked by letting the lease run out).
pub(crate) fn settled(status: &Status) -> Option<String> {
    (!status.differences.is_empty()).then(|| status.differences.join("; "))
}

/// [`ERROR_TRUTH`]: every "traffic … on <color>" in the error names a color with traffic now.
pub(crate) fn error_tells_truth(error: &str, probe: &Probe) -> Option<String> {
    let live = probe.live();
    let wrong: Vec<Color> = traffic_claims(error)
        .into_iter()
        .filter(|c| !live.contains(c))
        .collect();
    (!wrong.is_empty())
        .then(|| format!("the error says traffic is on {wrong:?}, HAProxy sends it to {live:?}: {error}"))
}

/// The colors an error says traffic is on: "traffic stayed on blue", "traffic is on green again", …
fn traffic_claims(error: &str) -> Vec<Color> {
    let lower = error.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut claims = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        let color = match pair {
            ["on", "blue"] => Color::Blue,
            ["on", "green"] => Color::Green,
            _ => continue,
        };
        // "runs v2 on green" names where a container is, not traffic: only a "traffic" just before counts.
        if words[i.saturating_sub(3)..i].contains(&"traffic") {
            claims.push(color);
        }
    }
    claims
}

/// [`VERIFIED`]: the versions in the journal's slots are among those whose deploy returned Ok.
pub(crate) fn verified_only(journal: &Journal, verified: &BTreeSet<String>) -> Option<String> {
    let unverified: Vec<String> = journal
        .slots
        .iter()
        .filter(|(_, s)| !verified.contains(&s.release.version))
        .map(|(c, s)| format!("{} on {c}", s.release.version))
        .collect();
    (!unverified.is_empty()).then(|| {
        format!(
            "the journal records {} though no deploy of it succeeded",
            unverified.join(", ")
        )
    })
}

/// [`CONTAINERS`]: no container but the slots' (in memory a one-off job leaves none, so any other name is
/// one the engine made and left).
pub(crate) fn no_stray_container(probe: &Probe) -> Option<String> {
    let slots: Vec<&str> = Color::ALL
        .iter()
        .map(|c| probe.topology.slot(*c).container.as_str())
        .collect();
    let stray: Vec<String> = probe
        .stack
        .runtime
        .container_names()
        .into_iter()
        .filter(|n| !slots.contains(&n.as_str()))
        .collect();
    (!stray.is_empty()).then(|| format!("containers besides the slots': {stray:?}"))
}

/// [`IMAGES`]: every release the journal's slots record still has its image.
pub(crate) fn images_kept(journal: &Journal, probe: &Probe) -> Option<String> {
    let missing: Vec<String> = journal
        .slots
        .iter()
        .filter(|(_, s)| !probe.stack.runtime.has_image(&s.release.image))
        .map(|(c, s)| format!("{} ({c})", s.release.image))
        .collect();
    (!missing.is_empty()).then(|| format!("the journal's {} lost its image", missing.join(", ")))
}

/// [`HALF_MADE`], after recovery: each container is a journal slot's, and each journal slot's serves.
pub(crate) fn nothing_half_made(journal: &Journal, probe: &Probe) -> Option<String> {
    let recorded: Vec<&str> = journal.slots.values().map(|s| s.container.as_str()).collect();
    let mut found: Vec<String> = probe
        .stack
        .runtime
        .container_names()
        .into_iter()
        .filter(|n| !recorded.contains(&n.as_str()))
        .map(|n| format!("{n} exists but the journal does not record it"))
        .collect();
    found.extend(
        journal
            .slots
            .iter()
            .filter(|(_, s)| !probe.stack.runtime.is_serving(&s.container))
            .map(|(c, s)| format!("the journal records {} on {c} but it does not serve", s.container)),
    );
    (!found.is_empty()).then(|| found.join("; "))
}

#[test]
fn claims_are_read_only_after_traffic() {
    assert_eq!(
        traffic_claims("aborted at switch; traffic stayed on blue: x"),
        [Color::Blue]
    );
    assert_eq!(
        traffic_claims("rolled back; traffic is on green again"),
        [Color::Green]
    );
    assert!(traffic_claims("connect_app2 runs connect:v2 on green, which the journal…").is_empty());
}
