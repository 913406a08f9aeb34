//! What pgBackRest is given: the repository, the members' data directories, retention, how to become the
//! database's owner; and running its programs as that owner.

use std::time::Duration;

use connect_core::host::{Command, Host, Output};
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::pg_tools::run_bounded;
use crate::util::stderr_tail;

/// One Patroni member's PostgreSQL as pgBackRest reaches it on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitrNode {
    /// The Patroni member name (`patroni1`).
    pub member: String,
    /// Its data directory (`postgresql.data_dir`).
    pub data_dir: String,
    /// Its PostgreSQL port.
    pub port: u16,
    /// Its unix socket directory (`unix_socket_directories`; pgBackRest connects through it).
    pub socket_dir: String,
}

/// Where the repository is, which nodes it backs up, and how long it keeps what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitrConfig {
    /// pgBackRest's stanza: the name of this cluster's backups (`connect`).
    pub stanza: String,
    /// The repository (the runbook's secondary disk: `/mnt/backup/pgbackrest`).
    pub repo_path: String,
    /// pgBackRest's own files: its configuration, lock, log and spool directories.
    pub state_dir: String,
    /// The members, each with its data directory.
    pub nodes: Vec<PitrNode>,
    /// Full backups kept; older ones, and the WAL only they need, are expired after each backup.
    pub retention_full: u32,
    /// PostgreSQL's `archive_timeout`: a segment is archived at least this often while anything is written,
    /// so a lost server loses at most this much.
    pub archive_timeout: Duration,
    /// The `pgbackrest` program.
    pub pgbackrest: String,
    /// PostgreSQL's programs (`pg_ctl`).
    pub bin_dir: String,
    /// Prefix of every program run: how to become the database's owner (`["runuser", "-u", "postgres",
    /// "--"]` as root, `["sudo", "-n", "-u", "postgres", "--"]` otherwise); empty when the host already logs
    /// in as that user.
    pub run_as: Vec<String>,
    /// Parallel processes for backup and restore.
    pub process_max: u32,
    /// How long one backup or restore may take.
    pub deadline: Duration,
    /// etcd's client URL as the server reaches it (`http://127.0.0.1:2379`): only a recovery onto a fresh
    /// server needs it, to reset the cluster's system id that Patroni keeps there (see
    /// [`recover`](super::recover())). `None`: such a recovery is refused before anything stops.
    #[serde(default)]
    pub etcd: Option<String>,
    /// Patroni's `namespace` in etcd (`/service`, Patroni's default).
    #[serde(default = "default_namespace")]
    pub dcs_namespace: String,
}

fn default_namespace() -> String {
    "/service".into()
}

impl PitrConfig {
    /// Stanza `connect`, repository `repo_path`, pgBackRest's own files in `state_dir`, two full backups kept,
    /// a segment archived at least every 60 s, PostgreSQL 15's programs, two processes, 2 h per backup.
    pub fn new(repo_path: &str, state_dir: &str, nodes: Vec<PitrNode>) -> PitrConfig {
        PitrConfig {
            stanza: "connect".into(),
            repo_path: repo_path.trim_end_matches('/').into(),
            state_dir: state_dir.trim_end_matches('/').into(),
            nodes,
            retention_full: 2,
            archive_timeout: Duration::from_secs(60),
            pgbackrest: "pgbackrest".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            run_as: Vec::new(),
            process_max: 2,
            deadline: Duration::from_secs(2 * 3600),
            etcd: None,
            dcs_namespace: default_namespace(),
        }
    }

    /// The configuration file pgBackRest is given (`--config`), in `state_dir`.
    pub fn config_path(&self) -> String {
        format!("{}/pgbackrest.conf", self.state_dir)
    }

    /// Refuses what would say more than it should in the configuration file or in `archive_command`.
    pub fn validate(&self) -> Result<()> {
        let op = "pitr.config";
        let stanza_ok = !self.stanza.is_empty()
            && self
                .stanza
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !stanza_ok {
            return Err(
                Error::invalid(op, &self.stanza, "a stanza is letters, digits, '-', '_' and '.'")
                    .with_hint("name the stanza like `connect`"),
            );
        }
        let mut paths = vec![
            ("repo_path", &self.repo_path),
            ("state_dir", &self.state_dir),
            ("pgbackrest", &self.pgbackrest),
            ("bin_dir", &self.bin_dir),
        ];
        for n in &self.nodes {
            paths.push(("data_dir", &n.data_dir));
            paths.push(("socket_dir", &n.socket_dir));
        }
        for (what, p) in paths {
            // One line of the configuration file each, and single-quoted inside `archive_command`, whose `%`
            // PostgreSQL would expand.
            if p.is_empty() || p.chars().any(|c| c.is_control() || matches!(c, '\'' | '%')) {
                return Err(Error::invalid(
                    op,
                    p,
                    format!("{what} must be a path without quotes, '%' or control characters"),
                ));
            }
        }
        if self.nodes.is_empty() || self.nodes.len() > 8 {
            return Err(
                Error::invalid(op, "nodes", "pgBackRest takes one to eight members")
                    .with_hint("list each Patroni member with its data directory, port and socket directory"),
            );
        }
        for n in &self.nodes {
            crate::names::check_port(op, &n.member, n.port)?;
            if n.member.is_empty() || n.member.chars().any(char::is_control) {
                return Err(Error::invalid(
                    op,
                    &n.member,
                    "a member name without control characters",
                ));
            }
        }
        if self.process_max == 0 || self.archive_timeout.as_secs() == 0 {
            return Err(Error::invalid(
                op,
                "process_max",
                "process_max and archive_timeout must be above zero",
            ));
        }
        Ok(())
    }

    /// pgBackRest's configuration: the repository with its retention, pgBackRest's own directories, and one
    /// `pgN-*` group per member (pgBackRest finds the primary among them for each backup).
    pub fn render(&self) -> String {
        let s = &self.state_dir;
        let mut out = format!(
            "# Written by Connect Ops; changes are overwritten.\n[global]\nrepo1-path={repo}\n\
             repo1-retention-full={keep}\nlog-path={s}/log\nlock-path={s}/lock\nspool-path={s}/spool\n\
             log-level-console=warn\nlog-level-file=info\nstart-fast=y\ncompress-type=lz4\n\
             process-max={pm}\n\n[{stanza}]\n",
            repo = self.repo_path,
            keep = self.retention_full,
            pm = self.process_max,
            stanza = self.stanza,
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let k = i + 1;
            out.push_str(&format!(
                "pg{k}-path={}\npg{k}-port={}\npg{k}-socket-path={}\n",
                n.data_dir, n.port, n.socket_dir
            ));
        }
        out
    }

    /// PostgreSQL's `archive_command`: `archive-push` of the segment into the repository.
    ///
    /// `%p` is relative to the data directory of the PostgreSQL archiving, and pgBackRest resolves it against
    /// `pg1-path`, which the configuration sets to the FIRST member's: after a failover the new primary's
    /// segments were looked for in the old one's directory and never archived (exit 32, found by a failed
    /// recovery's test). PostgreSQL runs the command in its data directory, so `$(pwd)` is its own.
    pub fn archive_command(&self) -> String {
        format!(
            "'{}' --config='{}' --stanza={} --pg1-path=\"$(pwd)\" archive-push \"%p\"",
            self.pgbackrest,
            self.config_path(),
            self.stanza
        )
    }

    /// The member of that name.
    pub fn node(&self, member: &str) -> Result<&PitrNode> {
        self.nodes.iter().find(|n| n.member == member).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "pitr.node",
                member,
                "the continuous backup configuration lists no such member",
            )
            .with_hint("add the member with its data directory to the configuration's nodes")
        })
    }

    fn argv(&self, program: &str, args: &[String]) -> Vec<String> {
        let mut v = self.run_as.clone();
        v.push(program.into());
        v.extend(args.iter().cloned());
        v
    }

    /// Runs `pgbackrest --config --stanza <args>` as the database's owner within `deadline`.
    pub(crate) async fn backrest(
        &self,
        host: &dyn Host,
        op: &str,
        args: &[&str],
        deadline: Duration,
    ) -> Result<Output> {
        let mut full = vec![
            format!("--config={}", self.config_path()),
            format!("--stanza={}", self.stanza),
        ];
        full.extend(args.iter().map(|a| a.to_string()));
        let command = Command::new(self.argv(&self.pgbackrest, &full));
        let out = run_bounded(host, &command, op, &self.stanza, deadline).await?;
        if out.success() {
            return Ok(out);
        }
        Err(program_failure(op, &self.stanza, "pgbackrest", &out))
    }

    /// Runs a program as the database's owner, failing on a non-zero exit.
    pub(crate) async fn as_owner(
        &self,
        host: &dyn Host,
        op: &str,
        argv: &[String],
        stdin: Option<String>,
        deadline: Duration,
    ) -> Result<Output> {
        let mut command = Command::new(self.argv(&argv[0], &argv[1..]));
        if let Some(s) = stdin {
            command = command.stdin(s);
        }
        let out = run_bounded(host, &command, op, &self.stanza, deadline).await?;
        if out.success() {
            return Ok(out);
        }
        Err(program_failure(op, &self.stanza, &argv[0], &out))
    }

    /// `pgbackrest ARGS…` (the owner's prefix is added by [`PitrConfig::as_owner`]).
    pub(crate) fn program_argv(&self, args: &[String]) -> Vec<String> {
        let mut v = vec![self.pgbackrest.clone()];
        v.extend(args.iter().cloned());
        v
    }

    /// A PostgreSQL program of `bin_dir`.
    pub(crate) fn pg_program(&self, name: &str) -> String {
        format!("{}/{name}", self.bin_dir.trim_end_matches('/'))
    }
}

/// A failed program as an error: not found (127/126, or pgBackRest's missing-file codes) or failed, with the
/// tail of its stderr (pgBackRest writes `ERROR: [NNN]: …` there).
fn program_failure(op: &str, target: &str, program: &str, out: &Output) -> Error {
    let mut tail = stderr_tail(out, 4);
    if tail.trim().is_empty() {
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<&str> = text.lines().collect();
        tail = v[v.len().saturating_sub(4)..].join("\n");
    }
    match out.status {
        Some(127) | Some(126) => Error::new(ErrorKind::NotFound, op, program, format!("the host cannot run {program}: {tail}"))
            .with_hint("install pgbackrest and PostgreSQL's server programs on the server (Debian: apt-get install pgbackrest), or set the program paths"),
        status => Error::new(
            ErrorKind::Failed,
            op,
            target,
            format!("{program} exited {}: {tail}", status.map_or("by a signal".into(), |s| s.to_string())),
        )
        .with_hint(hint_for(&tail)),
    }
}

fn hint_for(stderr: &str) -> &'static str {
    if stderr.contains("[055]") || stderr.contains("unable to open missing file") {
        "pgBackRest's configuration is missing: run the continuous backup setup (configure) first"
    } else if stderr.contains("[103]") || stderr.contains("stanza") && stderr.contains("does not exist") {
        "the stanza does not exist in the repository: run the continuous backup setup (stanza-create) first"
    } else if stderr.contains("[082]") || stderr.contains("archive") {
        "WAL archiving does not reach the repository: check archive_command (the setup sets it through Patroni) and pgbackrest's log in state_dir/log"
    } else if stderr.contains("Permission denied") || stderr.contains("[041]") {
        "the repository, data directories and state_dir must belong to the database's owner: set run_as, or chown them"
    } else {
        "see pgBackRest's log in state_dir/log"
    }
}
