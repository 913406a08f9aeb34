//! The recovery itself: [`plan`](super::plan()), then each step timed, under the deploy lock until the
//! deploy (which takes it itself).

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_core::backup_set::put_back;
use connect_core::engine::Deployer;
use connect_core::host::{Command, Host, HostExt};
use connect_core::vocabulary::CheckReport;
use connect_core::{Error, ErrorKind, LocalHost, Result};
use connect_db::RedisBackup;
use connect_db::pitr::{RecoveryReport, RecoveryTarget, TableChecksum};
use serde::Serialize;

use super::{Plan, RecoverOptions, plan};
use crate::config::ConnectConfig;

/// One step, measured.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    /// `check`, `configs`, `database`, `redis`, `uploads`, `journal`, `deploy`, `verify`.
    pub step: String,
    /// Its time, in milliseconds.
    pub took_ms: u64,
    /// What it did.
    pub detail: String,
}

/// What a recovery did.
#[derive(Debug, Clone, Serialize)]
pub struct RecoverReport {
    /// What it recovered from.
    pub plan: Plan,
    /// Each step, in order.
    pub steps: Vec<StepTiming>,
    /// The database's recovery, phase by phase.
    pub database: RecoveryReport,
    /// Every table's rows and checksum after the recovery.
    pub tables: Vec<TableChecksum>,
    /// Keys in Redis after its restore (none when the set held no Redis backup).
    pub redis_keys: Option<u64>,
    /// The deploy's record id.
    pub deploy: String,
    /// The post-deploy checks on the live color.
    pub verify: CheckReport,
    /// The whole call, from the first read to the verified release: the recovery time.
    pub took_ms: u64,
}

/// Recovers the server `config` names (see the module's steps). `on_step` hears each step as it starts.
pub async fn recover(
    config: &ConnectConfig,
    options: &RecoverOptions,
    on_step: &(dyn Fn(&str) + Send + Sync),
) -> Result<RecoverReport> {
    let started = Instant::now();
    let mut steps = Vec::new();
    on_step("check: the set, the repository, the server");
    let source = config.release_source();
    // The fresh server has no backup set of its own yet: the age check that preflight makes with
    // `[backup_all]` would refuse the very deploy that brings it back (the next `backup-all` takes one).
    let mut deploy_config = config.deploy_config();
    deploy_config.policy.backup_sets = None;
    let deployer = Deployer::new(config.backends_shipping(source.as_ref()).await?, deploy_config)?;
    let plan = plan(config, options, &deployer).await?;
    if !plan.not_fresh.is_empty() && !options.force {
        return Err(Error::new(
            ErrorKind::Conflict,
            "recover.check",
            &plan.server,
            format!("the server is not fresh: {}", plan.not_fresh.join("; ")),
        )
        .with_hint("recover onto a fresh server, or pass --force to replace what runs there (the whole database cluster is replaced); nothing was changed"));
    }
    steps.push(timing(
        "check",
        started,
        format!("set {}, backup {}", plan.set.id, plan.database.backup),
    ));

    let held = deployer.hold_lock().await?;
    let data = async {
        let data = restore_data(config, &plan, &deployer, &mut steps, on_step).await?;
        on_step("journal: the lost server's history carried over");
        let t = Instant::now();
        let added = held
            .merge_history(&plan.release.history)
            .await
            .map_err(|e| at_step(e, "journal", "the configs, the database, Redis and the uploads are back; no release serves: deploy it (connect-ops deploy VERSION)"))?;
        steps.push(timing(
            "journal",
            t,
            format!("{added} of {} operations carried over", plan.release.history.len()),
        ));
        Ok::<_, Error>(data)
    }
    .await;
    let released = held.release().await;
    let (database, redis_keys) = data?;
    released?;

    on_step(&format!("deploy: {} blue-green", plan.release.image));
    let t = Instant::now();
    let release = config.release(&plan.release.version)?;
    let deployed = match source {
        Some(source) => deployer.deploy_from(release, source).await,
        None => deployer.deploy(release).await,
    }
    .map_err(|e| at_step(e, "deploy", "the configs, the database, Redis and the uploads are back; no release serves: deploy it (connect-ops deploy VERSION)"))?;
    steps.push(timing(
        "deploy",
        t,
        format!(
            "{} live on {}",
            plan.release.version,
            deployed.live_after.map_or("no color".into(), |c| c.to_string())
        ),
    ));

    on_step("verify: the live color, every table's rows");
    let t = Instant::now();
    let verify = deployer
        .verify()
        .await
        .and_then(|r| r.into_result("recover.verify", ErrorKind::Unhealthy))
        .map_err(|e| at_step(e, "verify", "everything is back and the release is live, but it does not pass its checks: see connect-ops verify"))?;
    let cluster = config.database(deployer.backends().host.clone())?;
    let tables = cluster.table_checksums().await?;
    let rows: i64 = tables.iter().map(|t| t.rows).sum();
    steps.push(timing(
        "verify",
        t,
        format!(
            "{} checks passed; {} tables, {rows} rows",
            verify.checks.len(),
            tables.len()
        ),
    ));
    Ok(RecoverReport {
        plan,
        steps,
        database,
        tables,
        redis_keys,
        deploy: deployed.id,
        verify,
        took_ms: started.elapsed().as_millis() as u64,
    })
}

/// Configs, database, Redis, uploads: under the deploy lock.
async fn restore_data(
    config: &ConnectConfig,
    plan: &Plan,
    deployer: &Deployer,
    steps: &mut Vec<StepTiming>,
    on_step: &(dyn Fn(&str) + Send + Sync),
) -> Result<(RecoveryReport, Option<u64>)> {
    let host = deployer.backends().host.clone();
    let local = LocalHost::new();
    let set_dir = format!("{}/{}", plan.set.dir, plan.set.id);
    let manifest = &plan.set.manifest;

    on_step("configs: back under their own paths");
    let t = Instant::now();
    // Each config comes back with the mode and owner the manifest records; 0640 for a set from before
    // modes were kept (the step's detail says so).
    let configs = put_back(&local, &set_dir, manifest, "configs", host.as_ref(), "/", 0o640)
        .await
        .map_err(|e| {
            at_step(
                e,
                "configs",
                "some configs may be written, nothing else changed: recover again",
            )
        })?;
    steps.push(timing(
        "configs",
        t,
        with_notes(
            format!("{} files, {} bytes", configs.files, configs.bytes),
            &configs.notes,
        ),
    ));

    on_step("database: pgBackRest restore, replay to the latest, re-form the cluster");
    let t = Instant::now();
    let pitr = config.pitr_config().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "recover.database",
            "connect.toml",
            "no [database.pitr] section",
        )
    })?;
    let cluster = config.database(host.clone())?;
    let database = async {
        connect_db::pitr::write_config(host.as_ref(), &pitr).await?;
        let report = cluster.recover(&RecoveryTarget::Latest).await?;
        // The recovered database's archive goes on where the lost server's stopped.
        cluster.configure_continuous_backups().await?;
        Ok::<_, Error>(report)
    }
    .await
    .map_err(|e| at_step(e, "database", "the configs are back"))?;
    steps.push(timing(
        "database",
        t,
        format!(
            "{} restored ({:.1} s), replayed ({:.1} s), writable after {:.1} s, {:?} rebuilt; archiving again",
            database.backup,
            database.restore.as_secs_f64(),
            database.replay.as_secs_f64(),
            database.to_writable.as_secs_f64(),
            database.rebuilt
        ),
    ));

    on_step("redis: dump.rdb in place, Redis started, keys checked");
    let t = Instant::now();
    let redis_keys = restore_redis(config, plan, host.clone(), &local, &set_dir)
        .await
        .map_err(|e| at_step(e, "redis", "the configs and the database are back; Redis may be stopped: start it, then recover again or deploy by hand"))?;
    let detail = redis_keys.map_or("the set holds no Redis backup".into(), |k| {
        format!("{k} keys loaded")
    });
    steps.push(timing("redis", t, detail));

    on_step("uploads: back into the uploads directory");
    let t = Instant::now();
    let uploads_dir = config.backup_all.as_ref().and_then(|s| s.uploads_dir.clone());
    let detail = match uploads_dir {
        Some(dir) => {
            let r = put_back(&local, &set_dir, manifest, "uploads", host.as_ref(), &dir, 0o644)
                .await
                .map_err(|e| at_step(e, "uploads", "the configs, the database and Redis are back; some uploads may be missing: recover again"))?;
            with_notes(
                format!("{} files, {} bytes into {dir}", r.files, r.bytes),
                &r.notes,
            )
        }
        None => "no [backup_all] uploads_dir".into(),
    };
    steps.push(timing("uploads", t, detail));
    Ok((database, redis_keys))
}

/// Places the set's `dump.rdb` in a private directory on the server, restores it (Redis is stopped, the
/// file placed, Redis started with `[redis] start_command`, the load checked), removes the directory.
async fn restore_redis(
    config: &ConnectConfig,
    plan: &Plan,
    host: Arc<dyn Host>,
    local: &LocalHost,
    set_dir: &str,
) -> Result<Option<u64>> {
    let manifest = &plan.set.manifest;
    let Some(file) = manifest.part_files("redis").find(|f| f.path.ends_with(".rdb")) else {
        return Ok(None);
    };
    let staging = format!(
        "{}/recover-{}",
        config.state_dir.trim_end_matches('/'),
        plan.set.id
    );
    host.run_checked(&Command::new(["install", "-d", "-m", "700", "--", &staging]))
        .await?;
    let result = async {
        put_back(local, set_dir, manifest, "redis", host.as_ref(), &staging, 0o600).await?;
        let backup = RedisBackup {
            path: format!("{staging}/{}", file.path.trim_start_matches("redis/")),
            sha256: file.sha256.clone(),
            bytes: file.bytes,
            // For the record only: the restore counts the file's keys itself.
            keys: 0,
            last_save_unix: 0,
        };
        let start = Command::new(config.redis.start_command.clone()).timeout(Duration::from_secs(120));
        let cache = config.cache(host.clone())?;
        cache
            .restore(host.as_ref(), &backup, &start)
            .await
            .map(|r| Some(r.keys))
    }
    .await;
    let _ = host.run(&Command::new(["rm", "-rf", "--", &staging])).await;
    result
}

/// A step's detail with what `put_back` assumed.
fn with_notes(detail: String, notes: &[String]) -> String {
    if notes.is_empty() {
        detail
    } else {
        format!("{detail} ({})", notes.join("; "))
    }
}

fn timing(step: &str, since: Instant, detail: String) -> StepTiming {
    StepTiming {
        step: step.to_string(),
        took_ms: since.elapsed().as_millis() as u64,
        detail,
    }
}

/// The error of a failed step: its kind and message, the operation `recover.<step>`, and what the steps
/// before it left in the hint, before the hint it had.
fn at_step(e: Error, step: &str, left: &str) -> Error {
    let hint = match e.hint() {
        Some(h) => format!("{left}; {h}"),
        None => left.to_string(),
    };
    Error::new(
        e.kind(),
        format!("recover.{step}"),
        e.target().to_string(),
        format!("{}: {}", e.operation(), e.message()),
    )
    .with_hint(hint)
    .with_source(e)
}
