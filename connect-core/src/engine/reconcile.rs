//! The journal checked against what HAProxy and Docker actually show, and adopting what they show.

use serde::{Deserialize, Serialize};

use super::Deployer;
use super::journal::{Journal, SlotRecord, now_unix_ms};
use super::operation::Held;
use super::run::Run;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Color, ImageRef, Release};
use crate::router::{AdminState, ServerStatus};
use crate::runtime::{ContainerInfo, ContainerState};
use crate::vocabulary::{OperationKind, Step};

/// One color as observed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedSlot {
    /// The color.
    pub color: Color,
    /// Its HAProxy server.
    pub server: ServerStatus,
    /// Its container, if one exists.
    pub container: Option<ContainerInfo>,
}

/// Both colors as the router and the runtime show them now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Blue, then green.
    pub slots: Vec<ObservedSlot>,
}

impl Observed {
    /// The colors whose server takes new requests (admin ready, weight above 0).
    pub fn ready_colors(&self) -> Vec<Color> {
        self.slots
            .iter()
            .filter(|s| s.server.admin == AdminState::Ready && s.server.weight > 0)
            .map(|s| s.color)
            .collect()
    }

    /// The colors whose server takes traffic now by the router's own view (ready, weight, checks passing).
    pub fn live_colors(&self) -> Vec<Color> {
        self.slots
            .iter()
            .filter(|s| s.server.is_live())
            .map(|s| s.color)
            .collect()
    }

    /// One color as observed.
    pub fn slot(&self, color: Color) -> &ObservedSlot {
        &self.slots[color as usize]
    }

    /// Where the journal and this observation disagree, one sentence each (leftovers included).
    pub fn differences(&self, journal: &Journal) -> Vec<String> {
        let mut diffs = self.drift(journal);
        if let Some(intent) = &journal.intent {
            diffs.push(format!(
                "{} {} by {} declared it would change {} and has not recorded its outcome (still running if it \
                 holds the lock; otherwise the next operation settles it)",
                intent.kind, intent.operation, intent.holder, intent.to
            ));
        }
        diffs.extend(self.leftovers(journal).into_iter().map(|(color, c)| {
            format!(
                "{} runs {} on {color}, which the journal does not know (left by an interrupted operation; \
                 the next deploy replaces it)",
                c.name, c.image
            )
        }));
        diffs
    }

    /// Containers on a color that is not live and takes no traffic, which the journal does not know: what an
    /// operation cut off before it could record or undo leaves behind (the new color started, the connection
    /// lost). Nothing depends on them, so a deploy replaces them instead of calling it drift.
    pub fn leftovers(&self, journal: &Journal) -> Vec<(Color, &ContainerInfo)> {
        let ready = self.ready_colors();
        Color::ALL
            .into_iter()
            .filter(|c| journal.live != Some(*c) && !journal.slots.contains_key(c) && !ready.contains(c))
            .filter_map(|c| {
                let info = self.slot(c).container.as_ref()?;
                // A stopped one is no difference at all (as everywhere here): only running containers count.
                (info.state == ContainerState::Running).then_some((c, info))
            })
            .collect()
    }

    /// Where the journal and this observation disagree in a way that needs a person: everything but leftovers.
    pub fn drift(&self, journal: &Journal) -> Vec<String> {
        let leftovers: Vec<Color> = self.leftovers(journal).into_iter().map(|(c, _)| c).collect();
        let mut diffs = Vec::new();
        for color in Color::ALL {
            let seen = self.slot(color);
            let running = seen
                .container
                .as_ref()
                .filter(|c| c.state == ContainerState::Running);
            match (journal.slots.get(&color), running) {
                (Some(rec), None) => diffs.push(format!(
                    "the journal says {color} runs {} in {}, but that container is {}",
                    rec.release.version,
                    rec.container,
                    if seen.container.is_some() {
                        "stopped"
                    } else {
                        "gone"
                    }
                )),
                (Some(rec), Some(c)) if c.release() != Some(rec.release.version.as_str()) => {
                    diffs.push(format!(
                        "the journal says {color} runs {}, but {} runs {}",
                        rec.release.version,
                        c.name,
                        c.release().unwrap_or("an unlabelled image")
                    ))
                }
                (None, Some(_)) if leftovers.contains(&color) => {}
                (None, Some(c)) => diffs.push(format!(
                    "{} runs {} on {color}, which the journal does not know",
                    c.name, c.image
                )),
                _ => {}
            }
        }
        let expected: Vec<Color> = match journal.live {
            Some(_) if journal.balanced => Color::ALL.to_vec(),
            Some(live) => vec![live],
            None => vec![],
        };
        let ready = self.ready_colors();
        if ready != expected {
            diffs.push(format!(
                "the journal says traffic goes to {}, but HAProxy sends it to {}",
                names(&expected),
                names(&ready)
            ));
        }
        diffs
    }
}

fn names(colors: &[Color]) -> String {
    match colors {
        [] => "no color".into(),
        [c] => c.to_string(),
        _ => "both colors".into(),
    }
}

impl Deployer {
    /// Both colors as the router and the runtime show them now.
    pub async fn observe(&self) -> Result<Observed> {
        let mut slots = Vec::new();
        for color in Color::ALL {
            let slot = self.config.topology.slot(color);
            let server = self.backends.router.server(&slot.server).await?;
            let container = self.backends.runtime.inspect(&slot.container).await?;
            slots.push(ObservedSlot {
                color,
                server,
                container,
            });
        }
        Ok(Observed { slots })
    }

    /// Fails with [`ErrorKind::Drift`] when the journal and the observed state disagree.
    pub(crate) async fn reconcile(&self, journal: &Journal) -> Result<String> {
        let observed = self.observe().await?;
        let diffs = observed.drift(journal);
        if diffs.is_empty() {
            let leftovers: Vec<String> = observed
                .leftovers(journal)
                .iter()
                .map(|(color, c)| format!("{} ({color}, {})", c.name, c.release().unwrap_or("unlabelled")))
                .collect();
            let live = journal.live.map_or("none".into(), |c| c.to_string());
            if leftovers.is_empty() {
                return Ok(format!("journal matches: live {live}"));
            }
            return Ok(format!(
                "journal matches: live {live}; an interrupted operation left {}, replaced by this deploy",
                leftovers.join(", ")
            ));
        }
        Err(Error::new(ErrorKind::Drift, "deploy.reconcile", self.store.journal_path(), diffs.join("; ")).with_hint(
            "find out who changed what; if the observed state is right, adopt it (Deployer::adopt / --adopt) and run again",
        ))
    }

    /// Records the observed state as the truth: the live color is the one HAProxy sends traffic to, and each
    /// color runs the release its container is labelled with. For after a manual change, or a lost journal.
    /// What an interrupted operation left is settled first, so its unverified release is never adopted.
    pub async fn adopt(&self) -> Result<Journal> {
        self.with_lock(OperationKind::Adopt, |held| self.adopt_locked(held))
            .await
    }

    async fn adopt_locked(&self, held: Held) -> Result<Journal> {
        // A damaged journal is kept aside; adoption starts a new one.
        let (mut journal, aside) = self.store.load_or_set_aside().await?;
        self.settle_pending(&mut journal, &held).await?;
        let observed = self.observe().await?;
        let ready = observed.ready_colors();
        let live_before = journal.live;
        journal.live = match ready.as_slice() {
            [] => None,
            [c] => Some(*c),
            _ => Some(journal.live.unwrap_or(Color::Blue)),
        };
        journal.balanced = ready.len() == 2;
        journal.slots.clear();
        for seen in &observed.slots {
            let Some(c) = seen
                .container
                .as_ref()
                .filter(|c| c.state == ContainerState::Running)
            else {
                continue;
            };
            let image = ImageRef::parse(&c.image)?;
            let release = match c.release() {
                Some(v) => Release {
                    version: v.to_string(),
                    image,
                    digest: None,
                },
                None => Release::from_image(image)?,
            };
            journal.slots.insert(
                seen.color,
                SlotRecord {
                    release,
                    container: c.name.clone(),
                    since_unix_ms: now_unix_ms(),
                },
            );
        }
        let target = journal.live.unwrap_or(Color::Blue);
        let mut run = Run::new(
            &self.events,
            OperationKind::Adopt,
            None,
            live_before,
            target,
            &self.config.holder,
        );
        let diffs = observed.differences(&journal);
        run.step(Step::Reconcile, async {
            let kept = aside
                .map(|a| format!("; the unreadable journal was kept as {a}"))
                .unwrap_or_default();
            Ok(format!(
                "adopted observed state; remaining differences: {}{kept}",
                diffs.len()
            ))
        })
        .await?;
        run.record.live_after = journal.live;
        journal.push(run.finish().0);
        self.store.save(&journal, &held.fence).await?;
        Ok(journal)
    }
}
