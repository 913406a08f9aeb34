//! The runbook end to end on a [`Stack`], through the SDK and the stack's one SSH connection: preflight, ship
//! v2 over v1, deploy v2 (migration table check, restore point, verified backup, migration from the v2 image
//! checked in its table, green started, health gate, switch, drain blue, verify), instant rollback to blue, full rollback to v1, and the database restored from
//! the pre-migration backup with its rows checked. Each phase is marked in the load generator, so its requests
//! are counted apart.

use std::fmt;
use std::time::{Duration, Instant};

use connect_core::database::BackupRecord;
use connect_core::engine::{Deployer, OperationRecord};
use connect_core::{Error, ErrorKind, Result};
use connect_db::restore::{RestoreOptions, RestoreReport, restore_logical};
use connect_docker::TransferReport;

use super::Stack;
use crate::load::Load;

/// The seed data the restore must bring back exactly: `customers` rows, and their checksum.
pub const SEED_ROWS: i64 = 1000;
/// Each connection's pause between requests: 64 connections at up to ~600 requests/s in all, busy customers
/// rather than a flood that would leave the 2-core test machine no time to deploy.
pub const LOAD_PACE: Duration = Duration::from_millis(100);
/// The migration v2 brings (in `examples/migrations`).
pub const V2_MIGRATION: &str = "20260101000000_create_visits";

/// One phase of the run: what, when (from the start), how long, what it reported.
#[derive(Debug, Clone)]
pub struct Phase {
    /// The phase's name, as marked in the load.
    pub name: String,
    /// Its start, from the run's start.
    pub at: Duration,
    /// How long it took.
    pub took: Duration,
    /// What it did, in a line.
    pub detail: String,
}

/// What the run did and measured.
#[derive(Debug, Clone)]
pub struct RunbookReport {
    /// Every phase in order.
    pub phases: Vec<Phase>,
    /// v2's shipping (when the stack has a build machine).
    pub transfer: Option<TransferReport>,
    /// The pre-migration backup the deploy took.
    pub backup: BackupRecord,
    /// The deploy of v2 as the journal recorded it.
    pub deploy: OperationRecord,
    /// Preflight to recorded: explicit preflight, shipping, backup and the deploy.
    pub deploy_took: Duration,
    /// From green's container being started to its first healthy answer, polled directly.
    pub app_ready: Duration,
    /// The deploy's switch: from the call to HAProxy's confirmation, and the whole step (with the state-file
    /// save after it), from the events (the record keeps milliseconds).
    pub switch: SwitchTimes,
    /// The instant rollback.
    pub instant_rollback: OperationRecord,
    /// The instant rollback's switch, likewise.
    pub rollback_switch: SwitchTimes,
    /// The full rollback to v1.
    pub full_rollback: OperationRecord,
    /// The database restore.
    pub restore: RestoreReport,
}

impl fmt::Display for RunbookReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:>9}  {:>9}  {:<18} detail", "at s", "took s", "phase")?;
        for p in &self.phases {
            writeln!(
                f,
                "{:>9.3}  {:>9.3}  {:<18} {}",
                p.at.as_secs_f64(),
                p.took.as_secs_f64(),
                p.name,
                p.detail
            )?;
        }
        writeln!(f, "deploy v2 steps:")?;
        for s in &self.deploy.steps {
            writeln!(
                f,
                "    {:<14} {:>6} ms  {} {}",
                s.step, s.duration_ms, s.status, s.detail
            )?;
        }
        write!(
            f,
            "deploy {:.3} s (preflight to recorded), app ready {:.3} s, transfer {:.3} s",
            self.deploy_took.as_secs_f64(),
            self.app_ready.as_secs_f64(),
            self.transfer_took().as_secs_f64()
        )
    }
}

impl RunbookReport {
    /// How long shipping v2 took (zero when built on the server).
    pub fn transfer_took(&self) -> Duration {
        self.transfer.as_ref().map_or(Duration::ZERO, |t| t.duration)
    }
}

/// Seeds the database, ships v1 and deploys it: the state the runbook starts from. Not under load.
pub async fn bring_up_v1(stack: &Stack, deployer: &Deployer) -> Result<OperationRecord> {
    let client = stack.database().leader_postgres().await?.connect().await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL); \
             INSERT INTO customers SELECT i, 'customer ' || i FROM generate_series(1, {SEED_ROWS}) i;"
        ))
        .await
        .map_err(|e| sql_error("seed", e))?;
    stack.releases.ship("v1").await?;
    deployer.deploy(stack.release("v1")).await
}

/// The seed rows' count and checksum, from the leader.
pub async fn seed_fingerprint(stack: &Stack) -> Result<(i64, String)> {
    let client = stack.database().leader_postgres().await?.connect().await?;
    let row = client
        .query_one(
            "SELECT count(*), md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM customers",
            &[],
        )
        .await
        .map_err(|e| sql_error("fingerprint", e))?;
    Ok((row.get(0), row.get(1)))
}

/// The migrations recorded in `_prisma_migrations` as finished, by name; empty when the table is missing.
pub async fn applied_migrations(stack: &Stack) -> Result<Vec<String>> {
    let client = stack.database().leader_postgres().await?.connect().await?;
    let exists: bool = client
        .query_one("SELECT to_regclass('_prisma_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| sql_error("migrations", e))?
        .get(0);
    if !exists {
        return Ok(vec![]);
    }
    let rows = client
        .query(
            "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL \
             AND rolled_back_at IS NULL ORDER BY migration_name",
            &[],
        )
        .await
        .map_err(|e| sql_error("migrations", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether table `name` exists in the app's database.
pub async fn table_exists(stack: &Stack, name: &str) -> Result<bool> {
    let client = stack.database().leader_postgres().await?.connect().await?;
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .map_err(|e| sql_error("table", e))?
        .get(0))
}

fn color(c: Option<connect_core::model::Color>) -> String {
    c.map_or_else(|| "nothing".into(), |c| c.to_string())
}

fn sql_error(op: &str, e: tokio_postgres::Error) -> Error {
    Error::new(ErrorKind::Failed, op, super::DATABASE, e.to_string())
}

/// Polls green's health endpoint directly until it answers 200, within `deadline`: how long the app needs by
/// itself. The 5 ms interval is the measurement's resolution.
async fn time_app_ready(port: u16, started: Instant, deadline: Duration) -> Result<Duration> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    connect_core::wait::poll_until(
        "runbook.app_ready",
        &addr.to_string(),
        deadline,
        Duration::from_millis(5),
        || async {
            Ok(
                match crate::testing::request(addr, "GET", "/api/health", "").await {
                    Ok(r) if r.status == 200 => Ok(started.elapsed()),
                    Ok(r) => Err(format!("status {}", r.status)),
                    Err(e) => Err(e.to_string()),
                },
            )
        },
    )
    .await
}

/// From the new color's container being started (its `start_idle` step) to the app's first healthy answer on
/// `port`, polled directly: how long the app needs by itself. Ends with the operation.
pub async fn app_ready_during(
    events: &mut tokio::sync::broadcast::Receiver<connect_core::engine::Event>,
    port: u16,
    deadline: Duration,
) -> Result<Duration> {
    use connect_core::engine::{Event, Step};
    while let Ok(e) = events.recv().await {
        match e {
            Event::StepStarted {
                step: Step::StartIdle,
            } => return time_app_ready(port, Instant::now(), deadline).await,
            Event::OperationFinished { .. } => break,
            _ => {}
        }
    }
    Err(Error::new(
        ErrorKind::Failed,
        "runbook.app_ready",
        port.to_string(),
        "the operation ended before starting the new color",
    ))
}

/// A switch as it happened: the call to the router's confirmation, and the whole step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchTimes {
    /// From the switch call to HAProxy confirming the new color as the only live one.
    pub confirmed: Duration,
    /// The whole switch step, the bookkeeping after the confirmation included.
    pub step: Duration,
}

/// The switch of the operation whose events `events` received (the operation has ended).
pub fn switch_times(
    events: &mut tokio::sync::broadcast::Receiver<connect_core::engine::Event>,
) -> Result<SwitchTimes> {
    use connect_core::engine::Event;
    let mut confirmed = None;
    while let Ok(event) = events.try_recv() {
        match event {
            Event::TrafficSwitched { confirmed_after, .. } => confirmed = Some(confirmed_after),
            Event::StepFinished {
                step: connect_core::engine::Step::Switch,
                duration,
                ..
            } => {
                if let Some(confirmed) = confirmed {
                    return Ok(SwitchTimes {
                        confirmed,
                        step: duration,
                    });
                }
            }
            _ => {}
        }
    }
    Err(Error::new(
        ErrorKind::NotFound,
        "runbook.switch_times",
        "switch",
        "the operation reported no confirmed switch",
    ))
}

/// How long `step` took in the operation whose events `events` received (the operation has ended).
pub fn step_took(
    events: &mut tokio::sync::broadcast::Receiver<connect_core::engine::Event>,
    step: connect_core::engine::Step,
) -> Result<Duration> {
    use connect_core::engine::Event;
    while let Ok(event) = events.try_recv() {
        if let Event::StepFinished {
            step: s, duration, ..
        } = event
            && s == step
        {
            return Ok(duration);
        }
    }
    Err(Error::new(
        ErrorKind::NotFound,
        "runbook.step_took",
        step.as_str(),
        "the operation reported no such finished step",
    ))
}

/// Runs the runbook from v1 live (see [`bring_up_v1`]) with `load` running, marking each phase in it.
pub async fn run(stack: &Stack, deployer: &Deployer, load: &Load) -> Result<RunbookReport> {
    let start = Instant::now();
    let mut phases = Vec::new();
    let mut phase = |name: &str, at: Instant, detail: String| {
        phases.push(Phase {
            name: name.to_string(),
            at: at - start,
            took: at.elapsed(),
            detail,
        });
    };
    let host = stack.ssh.as_ref();

    // Preflight, then ship, back up and deploy: the deploy as a user sees it.
    load.phase("preflight");
    let t = Instant::now();
    let report = deployer
        .preflight()
        .await?
        .into_result("runbook.preflight", ErrorKind::Refused)?;
    phase("preflight", t, format!("{} checks passed", report.checks.len()));

    // The deploy takes its own verified backup before the migration (the record keeps it); shipping is
    // still the harness's.
    load.phase("ship v2");
    let t = Instant::now();
    let transfer = stack.releases.ship("v2").await?;
    phase(
        "ship v2",
        t,
        transfer.as_ref().map_or("built on the server".into(), |r| {
            format!(
                "shipped {} of {} layers, {} bytes on the wire, in {:.3} s",
                r.layers_sent,
                r.layers_total,
                r.wire_bytes,
                r.duration.as_secs_f64()
            )
        }),
    );

    load.phase("deploy v2");
    let t = Instant::now();
    // Green's start is watched from the side, to tell the app's own start-up from the deploy's overhead.
    let mut events = deployer.subscribe();
    let green_port = stack.ports.1;
    let health_deadline = deployer.config().policy.health_deadline;
    let watcher = app_ready_during(&mut events, green_port, health_deadline);
    let mut steps = deployer.subscribe();
    // Both on this task, and the watch ends with the operation: nothing is left polling.
    let (deploy, app_ready) = tokio::join!(deployer.deploy(stack.release("v2")), watcher);
    let deploy = deploy?;
    let deploy_took = start.elapsed();
    let backup = deploy.backup.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::Failed,
            "runbook.deploy",
            "v2",
            "the deploy with a migration recorded no backup",
        )
    })?;
    let app_ready = app_ready?;
    phase(
        "deploy v2",
        t,
        format!("{:?}, live {}", deploy.outcome, color(deploy.live_after)),
    );

    let switch = switch_times(&mut steps)?;

    load.phase("instant rollback");
    let t = Instant::now();
    let mut steps = deployer.subscribe();
    let instant_rollback = deployer.rollback().await?;
    let rollback_switch = switch_times(&mut steps)?;
    phase(
        "instant rollback",
        t,
        format!("live {}", color(instant_rollback.live_after)),
    );

    load.phase("full rollback");
    let t = Instant::now();
    let full_rollback = deployer.rollback_to("v1").await?;
    phase(
        "full rollback",
        t,
        format!("v1 live on {}", color(full_rollback.live_after)),
    );

    load.phase("restore");
    let t = Instant::now();
    let target = stack.database().leader_postgres().await?.target().clone();
    let config = stack.backup_config();
    let restore = restore_logical(
        host,
        &target,
        &backup.path,
        &config,
        &RestoreOptions {
            expected_sha256: Some(backup.sha256.clone()),
            ..RestoreOptions::default()
        },
    )
    .await?;
    phase(
        "restore",
        t,
        format!(
            "{} restored in {:.2} s, {}",
            restore.database,
            restore.took.as_secs_f64(),
            match &restore.previous_kept_as {
                Some(name) => format!("the previous database kept as {name}"),
                None => "no previous database to keep".to_string(),
            }
        ),
    );
    load.phase("after");

    Ok(RunbookReport {
        phases,
        transfer,
        backup,
        deploy,
        deploy_took,
        app_ready,
        switch,
        instant_rollback,
        rollback_switch,
        full_rollback,
        restore,
    })
}

/// [`run`] with 64 keep-alive connections on HAProxy's frontend for the whole sequence, from v1 live. The
/// load's report comes back whatever the run's outcome; only a load that cannot start is the outer error.
pub async fn run_under_load(
    stack: &Stack,
    deployer: &Deployer,
) -> Result<(Result<RunbookReport>, crate::load::LoadReport)> {
    let mut config = crate::load::LoadConfig::new(stack.http_addr());
    config.first_phase = "v1 live".into();
    config.request_timeout = Duration::from_secs(15);
    config.pace = LOAD_PACE;
    let load = Load::start(config)?;
    let report = run(stack, deployer, &load).await;
    Ok((report, load.stop().await))
}
