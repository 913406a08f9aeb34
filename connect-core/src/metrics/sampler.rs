//! One task reads the backends at an interval and publishes each [`Snapshot`] to every viewer.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::read::{TrafficDelta, percent, read_traffic};
use super::snapshot::{
    BackupView, CacheView, ColorView, ContainerView, DatabaseView, DeployView, LastOperation, Snapshot,
    StepTime, TrafficView, Unavailable,
};
use crate::engine::{Deployer, Journal, LockInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Color;
use crate::router::{ServerFigures, ServerStatus};
use crate::runtime::{ContainerInfo, ContainerStats};
use crate::vocabulary::{Outcome, Step};

/// How often the sampler reads the continuous-backup state (pgBackRest's `info` is a program run on the
/// server; its figures move in minutes).
pub const BACKUP_READ_EVERY: Duration = Duration::from_secs(30);

/// Samples the deployment at an interval in one task and publishes each snapshot; dropping it stops the task.
///
/// Viewers [`subscribe`](Sampler::subscribe) to a `watch` channel: each sees the newest snapshot, a slow one
/// skips samples instead of queueing them, and the backends see one sample's calls per interval whatever
/// the number of viewers (10 calls: the router's counters and states, each color's inspect and stats, the
/// database's and the cache's figures, the journal and the lock; and every [`BACKUP_READ_EVERY`] the
/// continuous-backup state).
#[derive(Debug)]
pub struct Sampler {
    view: watch::Receiver<Arc<Snapshot>>,
    task: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling through `deployer`'s backends (bounded and retried as the deployer's are), the first
    /// sample at once, then one per `interval`. A zero interval is [`ErrorKind::InvalidInput`].
    pub fn start(deployer: Deployer, interval: Duration) -> Result<Sampler> {
        if interval.is_zero() {
            return Err(Error::invalid(
                "metrics.sampler",
                "interval",
                "the sampling interval must be above zero",
            ));
        }
        let (publish, view) = watch::channel(Arc::new(Snapshot::default()));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            // A sample slower than the interval delays the next one instead of bunching samples up.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut previous: Option<(Arc<Snapshot>, Instant)> = None;
            loop {
                ticks.tick().await;
                let at = Instant::now();
                let before = previous.as_ref().map(|(s, t)| (&**s, at.duration_since(*t)));
                let snapshot = Arc::new(sample(&deployer, before).await);
                publish.send_replace(snapshot.clone());
                previous = Some((snapshot, at));
            }
        });
        Ok(Sampler { view, task })
    }

    /// A viewer: `changed()` wakes it at each new snapshot (at once when one was published already).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.view.clone()
    }

    /// The newest snapshot (an empty one with `sequence` 0 before the first sample).
    pub fn latest(&self) -> Arc<Snapshot> {
        self.view.borrow().clone()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Takes one snapshot through `deployer`'s backends; `previous` is the sample before and the time since it,
/// over which the rates are computed.
pub async fn sample(deployer: &Deployer, previous: Option<(&Snapshot, Duration)>) -> Snapshot {
    let backends = deployer.backends();
    let topology = &deployer.config().topology;
    let (blue, green) = (topology.slot(Color::Blue), topology.slot(Color::Green));
    let now_ms = unix_ms();
    // The backup state changes in minutes and costs a program run: read it every BACKUP_READ_EVERY only.
    let backup_due = previous.is_none_or(|(p, _)| {
        now_ms.saturating_sub(p.backup_read_unix_ms) >= BACKUP_READ_EVERY.as_millis() as u64
    });
    let backup_read = async {
        if backup_due {
            Some(backends.database.continuous_backup().await)
        } else {
            None
        }
    };
    let (
        (traffic, servers, blue_info, blue_stats, green_info, green_stats),
        (database, cache, journal, lock, backup),
    ) = tokio::join!(
        async {
            tokio::join!(
                read_traffic(backends.router.as_ref(), topology),
                backends.router.servers(),
                backends.runtime.inspect(&blue.container),
                backends.runtime.stats(&blue.container),
                backends.runtime.inspect(&green.container),
                backends.runtime.stats(&green.container),
            )
        },
        async {
            tokio::join!(
                backends.database.figures(),
                backends.cache.figures(),
                deployer.journal(),
                deployer.lock(),
                backup_read,
            )
        },
    );
    let mut unavailable = Vec::new();
    let mut note = |source: String, e: &Error| {
        // A backend without the figures is not a failure to report each second.
        if e.kind() != ErrorKind::Unsupported {
            unavailable.push(Unavailable {
                source,
                error: e.summary(),
            });
        }
    };
    let (prev, elapsed) = match previous {
        Some((s, d)) if !d.is_zero() => (Some(s), Some(d)),
        _ => (None, None),
    };
    let traffic = traffic.map_err(|e| note("router.figures".into(), &e)).ok();
    let servers = servers.map_err(|e| note("router.servers".into(), &e)).ok();
    let mut colors = Vec::new();
    for (slot, info, stats) in [(blue, blue_info, blue_stats), (green, green_info, green_stats)] {
        let info = info
            .map_err(|e| note(format!("runtime.inspect {}", slot.container), &e))
            .ok()
            .flatten();
        let stats = stats
            .map_err(|e| note(format!("runtime.stats {}", slot.container), &e))
            .ok()
            .flatten();
        let before = prev.and_then(|p| p.color(slot.color));
        let status = servers
            .as_ref()
            .and_then(|s| s.iter().find(|s| s.name == slot.server));
        colors.push(ColorView {
            color: slot.color,
            server: slot.server.clone(),
            container_name: slot.container.clone(),
            traffic: traffic
                .as_ref()
                .and_then(|t| t.get(&slot.color))
                .map(|f| traffic_view(f, status, before.and_then(|b| b.traffic.as_ref()), elapsed)),
            container: info
                .map(|i| container_view(i, stats, before.and_then(|b| b.container.as_ref()), elapsed)),
        });
    }
    let database = database
        .map_err(|e| note("database.figures".into(), &e))
        .ok()
        .map(|figures| {
            let transactions = figures.commits + figures.rollbacks;
            let before = prev
                .and_then(|p| p.database.as_ref())
                .map(|d| d.figures.commits + d.figures.rollbacks);
            DatabaseView {
                transactions_per_s: per_second(before, transactions, elapsed),
                max_lag_bytes: figures.replicas.iter().map(|r| r.lag_bytes).max(),
                figures,
            }
        });
    let cache = cache
        .map_err(|e| note("cache.figures".into(), &e))
        .ok()
        .map(|figures| {
            let before = prev.and_then(|p| p.cache.as_ref()).map(|c| &c.figures);
            let hit_rate_percent = before.and_then(|b| {
                // A restarted Redis counts from zero: then what it counted is the interval's.
                let (hits, misses) = if figures.keyspace_hits < b.keyspace_hits
                    || figures.keyspace_misses < b.keyspace_misses
                {
                    (figures.keyspace_hits, figures.keyspace_misses)
                } else {
                    (
                        figures.keyspace_hits - b.keyspace_hits,
                        figures.keyspace_misses - b.keyspace_misses,
                    )
                };
                (hits + misses > 0).then(|| percent(hits, hits + misses))
            });
            CacheView {
                figures,
                hit_rate_percent,
            }
        });
    let lock = lock.map_err(|e| note("lock".into(), &e)).ok().flatten();
    let deploy = journal
        .map_err(|e| note("journal".into(), &e))
        .ok()
        .map(|j| deploy_view(j, lock));
    let (backup, backup_read_unix_ms) = match backup {
        Some(read) => (
            read.map_err(|e| note("database.continuous_backup".into(), &e))
                .ok()
                .flatten()
                .map(|state| BackupView {
                    state,
                    read_unix_ms: now_ms,
                }),
            now_ms,
        ),
        None => match previous {
            Some((p, _)) => (
                p.backup.as_ref().map(|b| aged(b, p.taken_unix_ms, now_ms)),
                p.backup_read_unix_ms,
            ),
            None => (None, 0),
        },
    };
    Snapshot {
        sequence: prev.map_or(0, |p| p.sequence) + 1,
        taken_unix_ms: now_ms,
        interval_ms: elapsed.map_or(0, |d| d.as_millis() as u64),
        colors,
        database,
        cache,
        deploy,
        backup,
        backup_read_unix_ms,
        unavailable,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `backup` as of `now_ms`, its ages grown since `then_ms`. Whole seconds of the clock, so the ages carried
/// from sample to sample add up to the time since the read without rounding drift.
fn aged(backup: &BackupView, then_ms: u64, now_ms: u64) -> BackupView {
    let grown = (now_ms / 1000).saturating_sub(then_ms / 1000);
    let mut state = backup.state.clone();
    for age in [
        &mut state.last_archived_age_s,
        &mut state.last_full_age_s,
        &mut state.last_backup_age_s,
    ] {
        *age = age.map(|a| a + grown);
    }
    BackupView {
        state,
        read_unix_ms: backup.read_unix_ms,
    }
}

/// How much `now` grew over `elapsed`, per second; 0 without a reading before or after a reset.
fn per_second(before: Option<u64>, now: u64, elapsed: Option<Duration>) -> f64 {
    match (before, elapsed) {
        (Some(b), Some(d)) if now >= b => (now - b) as f64 / d.as_secs_f64(),
        _ => 0.0,
    }
}

fn traffic_view(
    now: &ServerFigures,
    status: Option<&ServerStatus>,
    before: Option<&TrafficView>,
    elapsed: Option<Duration>,
) -> TrafficView {
    let (responses_per_s, rate_5xx_percent) = match (before, elapsed) {
        (Some(b), Some(d)) => {
            let earlier = ServerFigures {
                responses: b.responses_total,
                responses_5xx: b.responses_5xx_total,
                ..ServerFigures::default()
            };
            let delta = TrafficDelta::between(&earlier, now);
            (delta.responses as f64 / d.as_secs_f64(), delta.rate_5xx_percent())
        }
        _ => (0.0, 0.0),
    };
    TrafficView {
        admin: status.map(|s| s.admin),
        check: status.map(|s| s.check),
        weight: status.map(|s| s.weight),
        responses_total: now.responses,
        responses_5xx_total: now.responses_5xx,
        current_sessions: now.current_sessions,
        responses_per_s,
        rate_5xx_percent,
        response_time_avg_ms: now.response_time_ms,
    }
}

fn container_view(
    info: ContainerInfo,
    stats: Option<ContainerStats>,
    before: Option<&ContainerView>,
    elapsed: Option<Duration>,
) -> ContainerView {
    let cpu_seconds_total = stats.map(|s| s.cpu_ns as f64 / 1e9);
    let cpu_percent = match (
        cpu_seconds_total,
        before.and_then(|b| b.cpu_seconds_total),
        elapsed,
    ) {
        // A restarted container's CPU total starts again: no share for that interval.
        (Some(now), Some(b), Some(d)) if now >= b => Some((now - b) * 100.0 / d.as_secs_f64()),
        _ => None,
    };
    ContainerView {
        release: info.release().map(str::to_string),
        state: info.state,
        health: info.health,
        restarts: info.restart_count,
        cpu_seconds_total,
        cpu_percent,
        memory_bytes: stats.map(|s| s.memory_bytes),
        memory_limit_bytes: stats.and_then(|s| s.memory_limit_bytes),
    }
}

fn deploy_view(journal: Journal, lock: Option<LockInfo>) -> DeployView {
    let last = journal.history.last().map(|r| LastOperation {
        id: r.id.clone(),
        kind: r.kind,
        release: r.release.as_ref().map(|x| x.version.clone()),
        outcome: outcome_word(&r.outcome).to_string(),
        failed_step: r.outcome.failed_step(),
        started_unix_ms: r.started_unix_ms,
        duration_ms: r.duration_ms,
        steps: r
            .steps
            .iter()
            .map(|s| StepTime {
                step: s.step,
                status: s.status,
                duration_ms: s.duration_ms,
            })
            .collect(),
    });
    let last_backup_unix_ms = journal
        .history
        .iter()
        .rev()
        .find(|r| r.backup.is_some())
        .map(|r| {
            let backup_step = r.steps.iter().take_while(|s| s.step != Step::Backup);
            r.started_unix_ms + backup_step.map(|s| s.duration_ms).sum::<u64>()
        });
    DeployView {
        live: journal.live,
        standby: journal.standby(),
        balanced: journal.balanced,
        releases: journal
            .slots
            .iter()
            .map(|(c, s)| (*c, s.release.version.clone()))
            .collect(),
        maintenance: journal.maintenance.is_some(),
        in_progress: journal.intent.as_ref().map(|i| i.operation.clone()),
        intent: journal.intent.clone(),
        // The owner token fences the holder's writes: a viewer has no use for it.
        lock: lock.map(|l| LockInfo {
            token: String::new(),
            ..l
        }),
        last,
        last_backup_unix_ms,
        history: journal.history,
    }
}

/// The outcome as one word, as the exporter labels it.
pub fn outcome_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed { .. } => "failed",
        Outcome::RolledBack { .. } => "rolled_back",
        Outcome::Interrupted { .. } => "interrupted",
    }
}
