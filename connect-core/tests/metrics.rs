//! Issue 16 item 1 and 5 on the in-memory backends, in paused time: the sampler's snapshot (per color,
//! container, database, cache, deploy state), its cost whatever the number of viewers, a source that fails,
//! and the deploy's watch judging from the figures an operator sees.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, release};
use connect_core::ErrorKind;
use connect_core::database::ContinuousBackupState;
use connect_core::engine::{DeployConfig, Event, Outcome, Step};
use connect_core::memory::AppBehavior;
use connect_core::metrics::{BACKUP_READ_EVERY, Sampler, Snapshot, sample};
use connect_core::model::{Color, WatchPolicy};
use connect_core::router::AdminState;
use connect_core::runtime::{ContainerState, Health};
use tokio::sync::watch;

const INTERVAL: Duration = Duration::from_secs(1);

/// v1 live on blue under 100 requests a second.
async fn v1_live(config: DeployConfig) -> Fixture {
    let f = Fixture::with_config(config);
    f.stack.router.set_load(100);
    f.deployer.deploy(release("v1")).await.unwrap();
    f
}

fn runbook() -> DeployConfig {
    DeployConfig {
        holder: "test".into(),
        ..DeployConfig::runbook()
    }
}

/// The next snapshot a viewer gets.
async fn next(view: &mut watch::Receiver<Arc<Snapshot>>) -> Arc<Snapshot> {
    view.changed().await.unwrap();
    view.borrow_and_update().clone()
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_shows_each_color_the_database_the_cache_and_the_deploy() {
    let f = v1_live(runbook()).await;
    f.deployer.deploy(release("v2")).await.unwrap();
    f.stack.cluster.record_transactions(0);
    let sampler = Sampler::start(f.deployer.clone(), INTERVAL).unwrap();
    let mut view = sampler.subscribe();
    let first = next(&mut view).await;
    assert_eq!(first.sequence, 1);
    assert_eq!(first.interval_ms, 0, "the first sample has no rates");

    f.stack.cluster.record_transactions(250);
    f.stack.cache.record_reads(90, 10);
    let s = next(&mut view).await;
    assert_eq!(s.sequence, 2);
    assert_eq!(s.interval_ms, 1000);
    assert!(s.unavailable.is_empty(), "{:?}", s.unavailable);

    let green = s.color(Color::Green).unwrap();
    let traffic = green.traffic.as_ref().unwrap();
    assert_eq!(traffic.admin, Some(AdminState::Ready));
    assert!(
        (90.0..=110.0).contains(&traffic.responses_per_s),
        "green takes the 100/s: {traffic:?}"
    );
    assert_eq!(traffic.rate_5xx_percent, 0.0);
    assert_eq!(traffic.response_time_avg_ms, 20);
    let container = green.container.as_ref().unwrap();
    assert_eq!(container.release.as_deref(), Some("v2"));
    assert_eq!(
        (container.state, container.health),
        (ContainerState::Running, Health::Healthy)
    );
    let cpu = container.cpu_percent.unwrap();
    assert!(
        (cpu - 2.0).abs() < 0.01,
        "the simulated app uses 2 % of a core: {cpu}"
    );
    assert_eq!(container.memory_bytes, Some(48 << 20));

    let blue = s.color(Color::Blue).unwrap();
    let traffic = blue.traffic.as_ref().unwrap();
    assert_eq!(traffic.admin, Some(AdminState::Drain));
    assert_eq!(traffic.responses_per_s, 0.0, "the standby takes nothing");
    assert_eq!(blue.container.as_ref().unwrap().release.as_deref(), Some("v1"));

    let db = s.database.as_ref().unwrap();
    assert_eq!(db.transactions_per_s, 250.0);
    assert_eq!(db.max_lag_bytes, Some(0));
    assert_eq!(db.figures.connections.get("active"), Some(&1));
    let cache = s.cache.as_ref().unwrap();
    assert_eq!(cache.hit_rate_percent, Some(90.0));

    let deploy = s.deploy.as_ref().unwrap();
    assert_eq!(
        (deploy.live, deploy.standby),
        (Some(Color::Green), Some(Color::Blue))
    );
    assert_eq!(deploy.releases.get(&Color::Green).map(String::as_str), Some("v2"));
    let last = deploy.last.as_ref().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.release.as_deref()),
        ("succeeded", Some("v2"))
    );
    assert!(last.steps.iter().any(|st| st.step == Step::Switch));
    assert_eq!(deploy.history.len(), 2);
    assert_eq!(deploy.in_progress, None);
}

#[tokio::test(start_paused = true)]
async fn ten_viewers_cost_the_server_what_one_costs() {
    let f = v1_live(runbook()).await;
    let calls_per_sample = |viewers: usize| {
        let f = &f;
        async move {
            let sampler = Sampler::start(f.deployer.clone(), INTERVAL).unwrap();
            let mut views: Vec<_> = (0..viewers).map(|_| sampler.subscribe()).collect();
            for v in &mut views {
                next(v).await;
            }
            let before = f.stack.faults().calls();
            for _ in 0..5 {
                let mut seen = Vec::new();
                for v in &mut views {
                    seen.push(next(v).await.sequence);
                }
                seen.dedup();
                assert_eq!(seen.len(), 1, "every viewer sees the same sample");
            }
            (f.stack.faults().calls() - before) / 5
        }
    };
    let one = calls_per_sample(1).await;
    let ten = calls_per_sample(10).await;
    assert!(one > 0);
    assert_eq!(one, ten, "calls per sample with 1 and with 10 viewers");
}

#[tokio::test(start_paused = true)]
async fn a_source_that_fails_leaves_its_part_empty_and_says_why() {
    let f = v1_live(runbook()).await;
    f.stack.faults().fail("cache.figures", ErrorKind::Unavailable);
    f.stack
        .faults()
        .fail_on("runtime.stats", "connect_app1", ErrorKind::Timeout);
    let s = sample(&f.deployer, None).await;
    assert!(s.cache.is_none());
    assert!(s.database.is_some() && s.deploy.is_some());
    let blue = s.color(Color::Blue).unwrap();
    let container = blue.container.as_ref().unwrap();
    assert_eq!(container.memory_bytes, None, "no stats, still the container");
    assert_eq!(container.state, ContainerState::Running);
    let sources: Vec<&str> = s.unavailable.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(sources, ["runtime.stats connect_app1", "cache.figures"]);
    assert!(Sampler::start(f.deployer.clone(), Duration::ZERO).is_err());
}

/// Item 5: the watch reads the sampler's figures; a release that breaks under traffic shows the same 5xx to
/// an operator's view as the watch that rolled it back saw.
#[tokio::test(start_paused = true)]
async fn the_watch_judges_by_what_the_operator_sees() {
    let mut config = runbook();
    config.policy.watch = WatchPolicy::new(Duration::from_secs(30), Duration::from_secs(5));
    let f = v1_live(config).await;
    let v2 = f.image(
        "v2-bad",
        AppBehavior {
            errors_after: Some(Duration::from_secs(10)),
            ..AppBehavior::default()
        },
    );
    let sampler = Sampler::start(f.deployer.clone(), INTERVAL).unwrap();
    let mut view = sampler.subscribe();
    // An operator's view meanwhile: every snapshot until the journal shows the rollback.
    let viewer = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let s = next(&mut view).await;
            let done = s
                .deploy
                .as_ref()
                .and_then(|d| d.last.as_ref())
                .is_some_and(|l| l.outcome == "rolled_back");
            seen.push(s);
            if done {
                return seen;
            }
        }
    });
    let mut events = f.deployer.subscribe();
    let report = f.deployer.deploy(v2).await;
    assert!(report.is_err(), "the watch rolls the release back");
    let record = f.journal().await.history.pop().unwrap();
    assert!(matches!(
        record.outcome,
        Outcome::RolledBack {
            step: Step::Watch,
            ..
        }
    ));
    let mut breach = None;
    while let Ok(e) = events.try_recv() {
        if let Event::WatchSample {
            rate_5xx_percent,
            breach: Some(_),
            ..
        } = e
        {
            breach = Some(rate_5xx_percent);
        }
    }
    let breach = breach.unwrap();
    assert!(breach > 0.0);
    let seen = viewer.await.unwrap();
    assert!(seen.len() > 10, "one snapshot a second through the deploy");
    let green_5xx = seen
        .iter()
        .filter_map(|s| s.color(Color::Green)?.traffic.as_ref())
        .map(|t| t.rate_5xx_percent)
        .fold(0.0, f64::max);
    // The watch's share is since the watch began, the view's since the second before: at least as high.
    assert!(
        green_5xx >= breach,
        "the operator saw green answer {green_5xx} % 5xx, the watch judged {breach} %"
    );
    assert_eq!(
        seen.last().unwrap().deploy.as_ref().unwrap().live,
        Some(Color::Blue)
    );
}

#[tokio::test(start_paused = true)]
async fn the_lock_shows_what_runs_without_its_token() {
    let f = v1_live(runbook()).await;
    let held = f.deployer.hold_lock().await.unwrap();
    let s = sample(&f.deployer, None).await;
    let lock = s
        .deploy
        .as_ref()
        .and_then(|d| d.lock.clone())
        .expect("the lock is shown");
    assert_eq!(lock.holder, "test");
    assert_eq!(lock.token, "", "the owner token stays with its holder");
    drop(held);
}

fn backups(full_age_s: u64, failing: bool) -> ContinuousBackupState {
    ContinuousBackupState {
        stanza: "connect".into(),
        last_archived_wal: Some("000000010000000000000007".into()),
        last_archived_age_s: Some(5),
        archive_failing: failing,
        last_full_backup: Some("20261206-100000F".into()),
        last_full_age_s: Some(full_age_s),
        last_backup: None,
        last_backup_age_s: None,
        backups: 1,
        recoverable_from_unix: None,
    }
}

/// The continuous-backup state costs a program run on the server: asked for once per BACKUP_READ_EVERY, its
/// ages growing with the clock in between.
#[tokio::test(start_paused = true)]
async fn the_backup_state_is_read_every_30_s_and_ages_in_between() {
    let f = v1_live(runbook()).await;
    f.stack.cluster.set_continuous_backup(Some(backups(100, false)));
    let first = sample(&f.deployer, None).await;
    let read = first.backup.as_ref().expect("read with the first sample");
    assert_eq!(read.state.last_full_age_s, Some(100));
    assert_eq!(first.backup_read_unix_ms, first.taken_unix_ms);

    // Archiving starts failing; a sample 10 s after the read does not ask.
    f.stack.cluster.set_continuous_backup(Some(backups(0, true)));
    let mut earlier = first.clone();
    earlier.taken_unix_ms -= 10_000;
    earlier.backup_read_unix_ms -= 10_000;
    let s = sample(&f.deployer, Some((&earlier, INTERVAL))).await;
    let carried = &s.backup.as_ref().expect("carried").state;
    assert!(!carried.archive_failing, "not asked again yet");
    assert!(
        (110..=111).contains(&carried.last_full_age_s.unwrap()),
        "aged by the 10 s since: {carried:?}"
    );
    assert_eq!(s.backup_read_unix_ms, earlier.backup_read_unix_ms);

    // BACKUP_READ_EVERY after the read, it asks again.
    earlier.backup_read_unix_ms -= BACKUP_READ_EVERY.as_millis() as u64;
    let s = sample(&f.deployer, Some((&earlier, INTERVAL))).await;
    assert!(s.backup.as_ref().expect("read").state.archive_failing);
    assert_eq!(s.backup_read_unix_ms, s.taken_unix_ms);
}
