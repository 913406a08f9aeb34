//! Point-in-time recovery of the Patroni cluster from pgBackRest.
//!
//! The order is what keeps Patroni from undoing it, and what keeps a failed recovery from costing the
//! database:
//! 0. The base backup is chosen (the newest that ended before the target) while everything still runs: a
//!    target no backup reaches is refused before anything stops.
//! 1. Patroni is paused and every member has seen the pause (a Patroni that has not would restart the
//!    PostgreSQL stopped below, or promote a replica).
//! 2. The leader's PostgreSQL is stopped (fast), its data directory moved aside (the way back), the backup
//!    restored into an empty one with the target, Patroni's configuration files for this member copied back
//!    from the old one.
//! 3. PostgreSQL is started by hand and replays the archive up to the target, then promotes itself
//!    (`recovery_target_action=promote`). Patroni is NOT trusted with this: unpaused, it would promote at
//!    once, ending the replay before the target.
//! 4. Paused, Patroni lets a running primary whose system id is the cluster's take the leader key (waited for
//!    on the promoted timeline: the key of the server stopped in 2 can outlive it until Patroni's next cycle);
//!    then every other member is rebuilt from it (`POST /reinitialize`), the pause is lifted, and the call
//!    returns when every replica has replayed the new leader's WAL. A rebuild that fails still lifts the
//!    pause: the recovered database leads, and the error names the members left to rebuild.
//!
//! Onto a fresh server (the repository's database is not the one Patroni bootstrapped there: the system ids
//! differ), three things change, because Patroni keeps the cluster's system id in etcd and caches its own
//! database's while paused: the other members are stopped and emptied during the pause (they clone the
//! leader when it ends); the system id in etcd is set to the repository's before the restored PostgreSQL
//! starts (`PitrConfig::etcd`; refused up front without it); and the pause ends before the leader key is
//! waited for (paused, Patroni compares the id it cached before the restore). A failure after the system id
//! was set puts the fresh server's back before undoing the rest.
//!
//! A failure in 1 or 2 before the move resumes Patroni; a failure after it (restore, start, a target the
//! replay never reaches) stops what it started, puts the old data directory back and resumes Patroni: the
//! cluster runs as before the call, and the error says so.

use std::time::{Duration, Instant};

use connect_core::database::Role;
use connect_core::host::Host;
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use super::by_hand::{
    empty_member, foreign_system, put_back, resume, sh, start_by_hand, wait_leader_key, wait_leader_running,
    wait_member_running,
};
use super::{PitrConfig, RecoveryTarget, info};
use crate::PatroniCluster;

/// What a recovery did, with the time of each phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// The target, in words.
    pub target: String,
    /// The member restored, which leads afterwards.
    pub leader: String,
    /// The base backup restored.
    pub backup: String,
    /// The members rebuilt from it.
    pub rebuilt: Vec<String>,
    /// Restoring the backup's files.
    pub restore: Duration,
    /// Replaying WAL to the target until PostgreSQL promoted itself and Patroni made it the leader.
    pub replay: Duration,
    /// Rebuilding the other members until each replayed the new leader's WAL.
    pub rebuild: Duration,
    /// From the call to the leader taking writes (pause, stop, restore, replay).
    pub to_writable: Duration,
    /// The whole call.
    pub took: Duration,
}

/// Recovers the cluster to `target` from the repository of `config` (see the module's steps). Run it under
/// the deploy lock, with the app stopped or in maintenance: what is written after the target is gone.
pub async fn recover(
    host: &dyn Host,
    cluster: &PatroniCluster,
    config: &PitrConfig,
    target: &RecoveryTarget,
) -> Result<RecoveryReport> {
    let op = "pitr.recover";
    let started = Instant::now();
    config.validate()?;
    target.validate()?;
    // Chosen before anything stops: a target no backup reaches is refused while the cluster runs.
    let repository = info(host, config).await?;
    let chosen = repository.backup_for(target)?.label.clone();
    let patroni = cluster.patroni();
    let members = patroni.cluster().await?;
    // The leader if there is one, else the first configured member Patroni lists (or the first configured).
    let leader_name = members
        .iter()
        .find(|m| m.member.role == Role::Leader)
        .map(|m| m.member.name.clone())
        .or_else(|| {
            config
                .nodes
                .iter()
                .find(|n| members.iter().any(|m| m.member.name == n.member))
                .map(|n| n.member.clone())
        })
        .unwrap_or_else(|| config.nodes[0].member.clone());
    let node = config.node(&leader_name)?.clone();
    // A fresh server: the repository holds another database than the one Patroni bootstrapped here.
    let foreign = foreign_system(patroni, &members, &leader_name, &repository, config).await?;

    // While the leader runs, close its current WAL segment and wait until it is in the repository
    // (`pgbackrest check` does both): "latest" is then "now", and a target in the segment being written (a
    // restore point just made, a minute ago) is reachable at all. Not on a fresh server: its database is
    // not the repository's, which `check` refuses, and is about to be replaced.
    if foreign.is_none()
        && let Ok(pg) = cluster.member_postgres(&leader_name).await
        && matches!(pg.is_in_recovery().await, Ok(false))
    {
        config
            .backrest(host, op, &["check"], Duration::from_secs(120))
            .await?;
    }

    let data = &node.data_dir;
    let small = Duration::from_secs(120);
    let aside = format!("{data}.connect-before-recovery");
    if config
        .as_owner(host, op, &sh("[ ! -e \"$1\" ]", &[&aside]), None, small)
        .await
        .is_err()
    {
        return Err(Error::new(
            ErrorKind::Conflict,
            op,
            &aside,
            "a previous recovery left the data directory it replaced here",
        )
        .with_hint("if that recovery failed, move it back to the data directory; otherwise remove it; then recover again"));
    }

    // Passed to pg_ctl's `-o` below, which splits on spaces: refused before anything stops.
    for path in [&node.socket_dir, &node.data_dir] {
        if path.chars().any(char::is_whitespace) {
            return Err(Error::invalid(
                op,
                path,
                "a socket or data directory with spaces cannot be passed to pg_ctl",
            ));
        }
    }
    let pg_ctl = config.pg_program("pg_ctl");
    patroni.set_paused(true).await?;
    // Until the data directory is moved aside nothing is lost: a failure only resumes Patroni, which starts
    // the PostgreSQL stopped here again.
    let stopped = async {
        patroni.wait_paused(true, Duration::from_secs(60)).await?;
        if foreign.is_some() {
            // Their data is the fresh server's database, about to be replaced; emptied, each clones the
            // restored leader when the pause ends (Patroni's way for a member without data).
            for other in config.nodes.iter().filter(|n| n.member != leader_name) {
                empty_member(host, config, other).await?;
            }
        }
        // pg_ctl status: 0 running, 3 not running, 4 no data directory. Anything else (a timeout under load
        // included) is an error, never "not running": the directory of a running server is never moved.
        let status = "\"$1\" status -D \"$2\" >/dev/null 2>&1; rc=$?; case $rc in 0) echo running;; \
            3|4) echo stopped;; *) echo \"pg_ctl status exited $rc\" >&2; exit 1;; esac";
        let out = config
            .as_owner(host, op, &sh(status, &[&pg_ctl, data]), None, small)
            .await?;
        let running = String::from_utf8_lossy(&out.stdout).trim() == "running";
        if running {
            config
                .as_owner(
                    host,
                    op,
                    &[
                        pg_ctl.clone(),
                        "stop".into(),
                        "-D".into(),
                        data.clone(),
                        "-m".into(),
                        "fast".into(),
                        "-w".into(),
                        "-t".into(),
                        "120".into(),
                    ],
                    None,
                    small,
                )
                .await?;
        }
        // The old data directory is moved aside whole (a rename: instant, and the way back if the restore
        // fails) and the backup restored into an empty one: measured faster than `--delta`, which reads and
        // checksums every file already there. Patroni wrote this member's configuration files into it; the backup
        // holds those of the member it was taken on (another port, other paths): they are copied back from it.
        // The script says which it did: whether there is a database to put back is decided by the move
        // itself, never by a later check whose own failure (a timeout under load) would read as "none".
        // A directory moved aside but not replaced is moved back, so a failure here changed nothing.
        let move_aside = "if [ -f \"$1/PG_VERSION\" ]; then mv -- \"$1\" \"$2\" || exit 1; \
            mkdir -m 0700 -- \"$1\" || { mv -- \"$2\" \"$1\"; exit 1; }; echo moved; \
            else rm -rf -- \"$1\" && mkdir -m 0700 -- \"$1\" || exit 1; fi";
        let out = config
            .as_owner(host, op, &sh(move_aside, &[data, &aside]), None, small)
            .await?;
        Ok::<_, Error>(String::from_utf8_lossy(&out.stdout).trim() == "moved")
    }
    .await;
    // From here the old data directory is aside: any failure puts it back and resumes Patroni, so a recovery
    // that cannot finish leaves the cluster as it found it, never without a database.
    let had_database = match stopped {
        Ok(moved) => moved,
        Err(e) => {
            return Err(resume(patroni, e, "nothing changed: Patroni runs the cluster again").await);
        }
    };
    let attempt = async {
        let restore_started = Instant::now();
        let mut args = vec!["restore".to_string(), format!("--pg1-path={data}")];
        args.push(format!("--set={chosen}"));
        args.extend(target.args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        config
            .backrest(host, op, &args, config.deadline)
            .await?;
        let member_files = "if [ -d \"$2\" ]; then for f in postgresql.conf postgresql.base.conf pg_hba.conf pg_ident.conf; do \
            if [ -f \"$2/$f\" ]; then cp -p -- \"$2/$f\" \"$1/$f\" || exit 1; fi; done; fi";
        config
            .as_owner(host, op, &sh(member_files, &[data, &aside]), None, small)
            .await?;
        let restore = restore_started.elapsed();
        if let Some(f) = &foreign {
            patroni
                .set_system_id(&f.etcd, &config.dcs_namespace, &f.scope, &f.system_id)
                .await?;
        }

        let replay_started = Instant::now();
        start_by_hand(host, config, &node, had_database).await?;
        let pg = cluster.member_postgres(&leader_name).await?;
        let leader_ref = &leader_name;
        let timeline = poll_until(op, "promotion", config.deadline, Duration::from_millis(200), || {
            let pg = pg.clone();
            let pg_ctl = pg_ctl.clone();
            async move {
                match pg.writing_timeline().await {
                    Ok(Some(timeline)) => return Ok(Ok(timeline)),
                    Ok(None) => return Ok(Err("replaying WAL".into())),
                    Err(_) => {}
                }
                // Not answering: replaying still, or stopped because the target was never reached.
                match config.as_owner(host, op, &[pg_ctl, "status".into(), "-D".into(), data.clone()], None, small).await {
                    Ok(_) => Ok(Err("not answering yet".into())),
                    Err(_) => Err(Error::new(ErrorKind::Failed, op, leader_ref, format!("PostgreSQL stopped before reaching {target}"))
                        .with_hint("the target may lie outside the archive (before the backup, after the last WAL, or a name never created); choose another and recover again")),
                }
            }
        })
        .await?;
        if foreign.is_some() {
            // Paused, Patroni compares the system id it cached before the restore: it takes the key only once
            // the pause ends and it reads the restored one. It must have seen the server running first.
            wait_member_running(patroni, &leader_name, Duration::from_secs(120)).await?;
            patroni.set_paused(false).await?;
            patroni.wait_paused(false, Duration::from_secs(60)).await?;
        }
        wait_leader_key(patroni, &leader_name, Some(timeline)).await?;
        if foreign.is_some() {
            // Unpaused, it may list the member as stopped for a cycle after taking the key. Two minutes is many
            // cycles: past them it will not adopt the server, and the recovery is undone.
            wait_leader_running(patroni, &leader_name, Duration::from_secs(120)).await?;
        }
        Ok::<_, Error>((restore, replay_started, timeline))
    }
    .await;
    let (restore, replay_started, timeline) = match attempt {
        Ok(done) => done,
        Err(e) => {
            if let Some(f) = &foreign {
                // The database put back below is the fresh server's own again.
                let _ = patroni.set_paused(true).await;
                let _ = patroni
                    .set_system_id(&f.etcd, &config.dcs_namespace, &f.scope, &f.own_system_id)
                    .await;
            }
            let undone = if had_database {
                put_back(host, config, patroni, &node, &aside, e).await
            } else {
                e.with_hint("there was no database to put back (the data directory was empty before the recovery); Patroni stays paused: fix the cause and recover again")
            };
            return Err(undone);
        }
    };
    let replay = replay_started.elapsed();
    let to_writable = started.elapsed();
    // The recovered database leads: the directory it replaced is no longer the way back.
    config
        .as_owner(
            host,
            op,
            &sh("rm -rf -- \"$1\"", &[&aside]),
            None,
            config.deadline,
        )
        .await?;

    let rebuild_started = Instant::now();
    let others: Vec<String> = patroni
        .cluster()
        .await?
        .into_iter()
        .map(|m| m.member.name)
        .filter(|n| *n != leader_name)
        .collect();
    // Onto a fresh server the others are empty already, but Patroni leaves a member whose data directory
    // holds only its `patroni.dynamic.json` waiting for exactly this.
    if let Err(e) = rebuild(patroni, &leader_name, timeline, &others, config.deadline).await {
        return Err(resume(
            patroni,
            e,
            &format!(
                "the recovered database leads on {leader_name}; Patroni runs the cluster again: rebuild {} with `patronictl reinit`",
                others.join(", ")
            ),
        )
        .await);
    }
    patroni.set_paused(false).await?;
    patroni.wait_paused(false, Duration::from_secs(60)).await?;
    if !others.is_empty() {
        cluster.wait_replicas_caught_up(config.deadline).await?;
    }
    Ok(RecoveryReport {
        target: target.to_string(),
        leader: leader_name,
        backup: chosen,
        rebuilt: others,
        restore,
        replay,
        rebuild: rebuild_started.elapsed(),
        to_writable,
        took: started.elapsed(),
    })
}

/// Rebuilds `others` from the recovered leader. Patroni refuses a rebuild while its view of the cluster has
/// no leader ("Cluster has no leader"), which a cycle of the leader's Patroni can cause for a moment: the
/// refusal waits for the key on the recovered timeline again and retries until `deadline`.
async fn rebuild(
    patroni: &crate::Patroni,
    leader: &str,
    timeline: u64,
    others: &[String],
    deadline: Duration,
) -> Result<()> {
    for m in others {
        poll_until(
            "pitr.recover",
            m,
            deadline,
            Duration::from_millis(500),
            || async {
                match patroni.reinitialize(m).await {
                    Ok(()) => Ok(Ok(())),
                    Err(e) if e.kind() == ErrorKind::Refused && e.message().contains("no leader") => {
                        wait_leader_key(patroni, leader, Some(timeline)).await?;
                        Ok(Err(e.to_string()))
                    }
                    Err(e) => Err(e),
                }
            },
        )
        .await?;
    }
    Ok(())
}
