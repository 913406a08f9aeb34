//! What a recovery does to the members by hand while Patroni is paused: starting a restored PostgreSQL with
//! `pg_ctl`, waiting for the leader key, emptying a member, putting the old data directory back after a
//! failure, resuming Patroni with what was done in the error's hint; and recognising a fresh server, whose
//! repository holds another cluster's database.

use std::time::Duration;

use connect_core::database::Role;
use connect_core::host::Host;
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};

use super::{PitrConfig, PitrNode};

/// A recovery from another cluster's repository: its system id, and where to reset Patroni's.
pub(super) struct Foreign {
    pub(super) system_id: String,
    pub(super) own_system_id: String,
    pub(super) scope: String,
    pub(super) etcd: String,
}

/// `Some` when the repository's database is not the one this cluster runs (a fresh server bootstrapped its
/// own): refused up front without `etcd`, since Patroni keeps the old system id there and would not let the
/// restored database lead.
pub(super) async fn foreign_system(
    patroni: &crate::Patroni,
    members: &[crate::PatroniMember],
    leader: &str,
    repository: &super::BackrestInfo,
    config: &PitrConfig,
) -> Result<Option<Foreign>> {
    let op = "pitr.recover";
    let Some(backup_id) = &repository.system_id else {
        return Ok(None);
    };
    let Some(url) = members
        .iter()
        .find(|m| m.member.name == leader)
        .and_then(|m| m.api_url.clone())
    else {
        return Ok(None);
    };
    let status = patroni.node_status(&url).await?;
    let own = status["database_system_identifier"].as_str().unwrap_or_default();
    if own.is_empty() || own == backup_id {
        return Ok(None);
    }
    let Some(etcd) = config.etcd.clone() else {
        return Err(Error::new(
            ErrorKind::Conflict,
            op,
            &config.stanza,
            format!("the repository backs up database system {backup_id}, this cluster runs {own} (a fresh server?)"),
        )
        .with_hint("set [database.pitr] etcd = \"http://127.0.0.1:2379\" (Patroni's etcd) so the recovery can reset the cluster's system id; nothing was changed"));
    };
    let scope = status["patroni"]["scope"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::new(ErrorKind::Unsupported, op, &url, "GET /patroni names no scope")
                .with_hint("Patroni 2.1 or later names its scope; nothing was changed")
        })?;
    Ok(Some(Foreign {
        system_id: backup_id.clone(),
        own_system_id: own.to_string(),
        scope: scope.to_string(),
        etcd,
    }))
}

/// Stops a member's PostgreSQL (Patroni paused) and empties its data directory.
pub(super) async fn empty_member(host: &dyn Host, config: &PitrConfig, node: &PitrNode) -> Result<()> {
    let op = "pitr.recover";
    let small = Duration::from_secs(120);
    let stop = [
        config.pg_program("pg_ctl"),
        "stop".into(),
        "-D".into(),
        node.data_dir.clone(),
        "-m".into(),
        "fast".into(),
        "-w".into(),
    ];
    // Fails when it does not run: nothing to stop.
    let _ = config.as_owner(host, op, &stop, None, small).await;
    let empty = "rm -rf -- \"$1\" && mkdir -m 0700 -- \"$1\"";
    config
        .as_owner(host, op, &sh(empty, &[&node.data_dir]), None, small)
        .await
        .map(drop)
}

/// Undoes a recovery that failed after the data directory was moved aside: the PostgreSQL it started (if
/// any) is stopped, the directory it replaced put back, Patroni resumed. Returns `failure` with what was done.
pub(super) async fn put_back(
    host: &dyn Host,
    config: &PitrConfig,
    patroni: &crate::Patroni,
    node: &PitrNode,
    aside: &String,
    failure: Error,
) -> Error {
    let op = "pitr.recover";
    let data = &node.data_dir;
    let small = Duration::from_secs(120);
    let why = failure.hint().map(|h| format!("; {h}")).unwrap_or_default();
    // Fails when nothing runs on the restored files, which is the usual case.
    let stop = [
        config.pg_program("pg_ctl"),
        "stop".into(),
        "-D".into(),
        data.clone(),
        "-m".into(),
        "immediate".into(),
        "-w".into(),
    ];
    let _ = config.as_owner(host, op, &stop, None, small).await;
    let restore_old = "rm -rf -- \"$1\" && mv -- \"$2\" \"$1\"";
    if let Err(e) = config
        .as_owner(host, op, &sh(restore_old, &[data, aside]), None, small)
        .await
    {
        return failure.with_hint(format!(
            "putting the data directory from before the recovery back failed ({e}): it is at {aside}; move it to {data} and resume Patroni (patronictl resume){why}"
        ));
    }
    // Started here, as it was, and leading again before Patroni resumes: paused, Patroni dropped the key of the
    // member in recovery, and if no one holds it when the pause ends the replica takes it (a failover the
    // recovery would have caused; seen in its test under load).
    let started = match start_by_hand(host, config, node, true).await {
        Ok(()) => wait_leader_key(patroni, &node.member, None).await,
        Err(e) => Err(e),
    };
    if let Err(e) = started {
        return resume(
            patroni,
            failure,
            &format!("the data directory from before the recovery is back, but starting it failed ({e}); Patroni runs the cluster again and may have failed over to the replica"),
        )
        .await;
    }
    resume(
        patroni,
        failure,
        "nothing changed: the data directory from before the recovery is back and Patroni runs the cluster again",
    )
    .await
}

/// Starts the member's PostgreSQL with `pg_ctl` (Patroni paused) and waits until it accepts connections: the
/// port and socket directory of this member, whatever the data directory's files say; the output goes to a
/// log file, so the host's call ends when pg_ctl does while the server runs on. Without `own_files` (the data
/// directory was lost, so its configuration files are the backup's, written for the member the backup was
/// taken on) `pg_hba.conf` and `pg_ident.conf` are read from the data directory instead of that member's paths.
pub(super) async fn start_by_hand(
    host: &dyn Host,
    config: &PitrConfig,
    node: &PitrNode,
    own_files: bool,
) -> Result<()> {
    let op = "pitr.recover";
    let log = format!(
        "{}/log/postgres-{}.log",
        config.state_dir,
        crate::names::file_component(&node.member)
    );
    let start = [
        config.pg_program("pg_ctl"),
        "start".into(),
        "-D".into(),
        node.data_dir.clone(),
        "-l".into(),
        log.clone(),
        "-w".into(),
        "-t".into(),
        config.deadline.as_secs().to_string(),
        "-o".into(),
        options(node, own_files),
    ];
    match config.as_owner(host, op, &start, None, config.deadline).await {
        Ok(_) => Ok(()),
        Err(e) => Err(with_log(host, e, &log).await),
    }
}

/// `pg_ctl -o`: split on spaces by pg_ctl, which is why `recover` refuses paths with whitespace up front.
pub(super) fn options(node: &PitrNode, own_files: bool) -> String {
    let mut o = format!("-p {} -c unix_socket_directories={}", node.port, node.socket_dir);
    if !own_files {
        let d = &node.data_dir;
        o.push_str(&format!(
            " -c hba_file={d}/pg_hba.conf -c ident_file={d}/pg_ident.conf"
        ));
    }
    o
}

/// Waits until Patroni (paused) lists `member` as the leader: it lets a running primary whose system id is
/// the cluster's take the key. With `timeline`, only a running leader on that timeline counts: the key the
/// member held before its PostgreSQL was stopped outlives the stop until Patroni's next cycle, and a rebuild
/// started on that stale key is refused ("Cluster has no leader") once the cycle drops it.
pub(super) async fn wait_leader_key(
    patroni: &crate::Patroni,
    member: &str,
    timeline: Option<u64>,
) -> Result<()> {
    poll_until(
        "pitr.recover",
        "leader key",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || async {
            Ok(match patroni.cluster().await {
                Ok(ms) => match ms.iter().find(|m| m.member.role == Role::Leader) {
                    Some(m)
                        if m.member.name == member
                            && timeline
                                .is_none_or(|t| m.member.timeline == Some(t) && m.member.is_running()) =>
                    {
                        Ok(())
                    }
                    other => Err(format!(
                        "leader {:?}",
                        other.map(|m| (&m.member.name, m.member.timeline, &m.member.state))
                    )),
                },
                Err(e) => Err(e.to_string()),
            })
        },
    )
    .await
}

/// Waits until Patroni lists `member` as the leader and running.
pub(super) async fn wait_leader_running(
    patroni: &crate::Patroni,
    member: &str,
    deadline: Duration,
) -> Result<()> {
    wait_running(patroni, member, true, deadline).await
}

/// Waits until Patroni, paused, lists `member` as running. Patroni takes over a PostgreSQL it did not start
/// only in a paused cycle, where it sets the member's state from the postmaster it finds (`ha.py`,
/// `handle_starting_instance`). Resumed before such a cycle ran (under load, the replay can end before one
/// does), it keeps the member "stopped" for good, and the recovery would wait for a leader that never runs.
pub(super) async fn wait_member_running(
    patroni: &crate::Patroni,
    member: &str,
    deadline: Duration,
) -> Result<()> {
    wait_running(patroni, member, false, deadline).await
}

async fn wait_running(
    patroni: &crate::Patroni,
    member: &str,
    leading: bool,
    deadline: Duration,
) -> Result<()> {
    let what = if leading {
        "leader running"
    } else {
        "member running"
    };
    poll_until(
        "pitr.recover",
        what,
        deadline,
        Duration::from_millis(250),
        || async {
            Ok(match patroni.cluster().await {
                Ok(ms) => match ms.iter().find(|m| {
                    if leading {
                        m.member.role == Role::Leader
                    } else {
                        m.member.name == member
                    }
                }) {
                    Some(m) if m.member.name == member && m.member.is_running() => Ok(()),
                    other => Err(format!(
                        "{} {:?}",
                        if leading { "leader" } else { "member" },
                        other.map(|m| (&m.member.name, &m.member.state))
                    )),
                },
                Err(e) => Err(e.to_string()),
            })
        },
    )
    .await
}

/// Lifts the pause after a failed recovery; `failure` comes back with `done` (or why resuming failed) in its
/// hint, before the hint it had.
pub(super) async fn resume(patroni: &crate::Patroni, failure: Error, done: &str) -> Error {
    let why = failure.hint().map(|h| format!("; {h}")).unwrap_or_default();
    let resumed = match patroni.set_paused(false).await {
        Ok(()) => patroni.wait_paused(false, Duration::from_secs(60)).await,
        Err(e) => Err(e),
    };
    match resumed {
        Ok(()) => failure.with_hint(format!("{done}{why}")),
        Err(e) => failure.with_hint(format!(
            "{done}, but resuming Patroni failed ({e}): run `patronictl resume`{why}"
        )),
    }
}

pub(super) fn sh(script: &str, args: &[&String]) -> Vec<String> {
    let mut v = vec!["sh".to_string(), "-c".into(), script.into(), "connect-ops".into()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// Adds the tail of PostgreSQL's log to a failed start.
pub(super) async fn with_log(host: &dyn Host, e: Error, log: &str) -> Error {
    use connect_core::host::HostExt;
    let tail = match host.read_file(log).await {
        Ok(Some(bytes)) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(8)..].join("\n")
        }
        _ => String::new(),
    };
    Error::new(
        e.kind(),
        e.operation(),
        e.target(),
        format!("{}\n{tail}", e.message()),
    )
}
