//! Patroni and PostgreSQL together: the runbook's database cluster.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connect_core::database::{BackupRecord, DatabaseCluster, DatabaseFigures, Member, RestorePoint, Role};
use connect_core::host::Host;
use connect_core::migrations::MigrationTable;
use connect_core::model::BackupPolicy;
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};

use crate::backup::{BackupConfig, logical_backup, prune_backups};
use crate::patroni::{BasicAuth, Patroni};
use crate::postgres::{PgTarget, Postgres, pg_error, validate_restore_point_name};

/// Members and switchover from Patroni; restore points and the check query on the leader's PostgreSQL,
/// found through Patroni at each call so a failover never leaves it talking to a replica.
#[derive(Debug, Clone)]
pub struct PatroniCluster {
    patroni: Patroni,
    login: PgTarget,
    check_sql: String,
    via: Option<Arc<dyn Host>>,
    backups: Option<(Arc<dyn Host>, BackupConfig)>,
}

impl PatroniCluster {
    /// A cluster reached through the Patroni nodes' REST addresses; `login` gives the user, password and app
    /// database (its host and port are replaced by the leader's).
    pub fn new<S: AsRef<str>>(patroni_nodes: &[S], login: PgTarget) -> Result<PatroniCluster> {
        Ok(PatroniCluster {
            patroni: Patroni::new(patroni_nodes)?,
            login,
            check_sql: "SELECT COUNT(*) FROM users".into(),
            via: None,
            backups: None,
        })
    }

    /// Uses another check query (one integer column) instead of the runbook's `SELECT COUNT(*) FROM users`.
    pub fn with_check_query(mut self, sql: &str) -> PatroniCluster {
        self.check_sql = sql.into();
        self
    }

    /// Reaches Patroni's REST API and every member's PostgreSQL through `host`'s byte streams (e.g. the one
    /// SSH connection to the server): the addresses Patroni lists are then used as the server sees them.
    pub fn through(mut self, host: Arc<dyn Host>) -> PatroniCluster {
        self.patroni = self.patroni.through(host.clone());
        self.via = Some(host);
        self
    }

    /// Takes the deploy's backups (`DatabaseCluster::backup`) with `pg_dump` on `host` (the server) into
    /// `config.dir`, from the leader as `host` reaches it; the deploy policy's `keep` and deadline replace
    /// `config`'s. Without it the cluster takes no backups, and a deploy whose policy asks for one stops
    /// before its migration.
    pub fn with_backups(mut self, host: Arc<dyn Host>, config: BackupConfig) -> PatroniCluster {
        self.backups = Some((host, config));
        self
    }

    /// Sends Patroni's `restapi.authentication` credentials (see [`Patroni::with_auth`]).
    pub fn with_patroni_auth(mut self, auth: BasicAuth) -> Result<PatroniCluster> {
        self.patroni = self.patroni.with_auth(auth)?;
        Ok(self)
    }

    /// Checks the Patroni nodes' HTTPS certificates against this CA file (see [`Patroni::with_ca_file`]).
    pub fn with_patroni_ca_file(mut self, path: impl AsRef<std::path::Path>) -> Result<PatroniCluster> {
        self.patroni = self.patroni.with_ca_file(path)?;
        Ok(self)
    }

    /// The Patroni client.
    pub fn patroni(&self) -> &Patroni {
        &self.patroni
    }

    /// The login used on every member.
    pub fn login(&self) -> &PgTarget {
        &self.login
    }

    /// The leader's PostgreSQL.
    pub async fn leader_postgres(&self) -> Result<Postgres> {
        let leader = self.patroni.leader().await?;
        let target = self.member_target(&leader.member.name, leader.host, leader.port)?;
        Ok(self.postgres(target))
    }

    /// A member's PostgreSQL, by name.
    pub async fn member_postgres(&self, name: &str) -> Result<Postgres> {
        let m = self
            .patroni
            .cluster()
            .await?
            .into_iter()
            .find(|m| m.member.name == name)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "cluster.member", name, "no such member"))?;
        let target = self.member_target(name, m.host, m.port)?;
        Ok(self.postgres(target))
    }

    fn postgres(&self, target: PgTarget) -> Postgres {
        match &self.via {
            Some(host) => Postgres::new(target).through(host.clone()),
            None => Postgres::new(target),
        }
    }

    fn member_target(&self, name: &str, host: Option<String>, port: Option<u16>) -> Result<PgTarget> {
        match (host, port) {
            (Some(h), Some(p)) => Ok(self.login.clone().at(&h, p)),
            _ => Err(Error::new(
                ErrorKind::Unhealthy,
                "cluster.member",
                name,
                "Patroni lists no PostgreSQL address",
            )
            .with_hint("set postgresql.connect_address in Patroni's configuration")),
        }
    }

    /// The check query's number, on the leader.
    pub async fn check_query_count(&self) -> Result<i64> {
        self.leader_postgres().await?.check_query(&self.check_sql).await
    }

    /// Waits until every replica Patroni lists has replayed the leader's WAL up to where it was at the call:
    /// what a restore or migration wrote on the leader has reached them. (Patroni's own lag figure is a loop
    /// old, so it is not used for this.)
    pub async fn wait_replicas_caught_up(&self, deadline: Duration) -> Result<Vec<Member>> {
        let op = "cluster.wait_replicas";
        let leader = self.leader_postgres().await?;
        let client = leader.connect().await?;
        let target: String = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| pg_error(op, leader.target(), e))?
            .get(0);
        poll_until(op, &target, deadline, Duration::from_millis(50), || async {
            let members = match self.patroni.members().await {
                Ok(m) => m,
                Err(e) if e.is_retryable() => return Ok(Err(e.to_string())),
                Err(e) => return Err(e),
            };
            let replicas = members.iter().filter(|m| m.role == Role::Replica).count() as i64;
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE replay_lsn >= $1::text::pg_lsn), count(*) FROM pg_stat_replication",
                    &[&target],
                )
                .await
                .map_err(|e| pg_error(op, leader.target(), e))?;
            let (done, streaming): (i64, i64) = (row.get(0), row.get(1));
            if replicas > 0 && done >= replicas {
                Ok(Ok(members))
            } else {
                Ok(Err(format!("{done} of {replicas} replicas replayed to {target} ({streaming} connected)")))
            }
        })
        .await
    }
}

#[async_trait]
impl DatabaseCluster for PatroniCluster {
    async fn members(&self) -> Result<Vec<Member>> {
        self.patroni.members().await
    }

    async fn switchover(&self, candidate: Option<&str>) -> Result<Member> {
        let leader = self.patroni.switchover(candidate).await?;
        // "Done" includes the new leader taking writes, which Patroni's "running" can precede briefly.
        let pg = self.leader_postgres().await?;
        poll_until(
            "cluster.switchover",
            &leader.name,
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let pg = pg.clone();
                async move {
                    match pg.is_in_recovery().await {
                        Ok(false) => Ok(Ok(())),
                        Ok(true) => Ok(Err("still in recovery".into())),
                        Err(e) if e.is_retryable() => Ok(Err(e.to_string())),
                        Err(e) => Err(e),
                    }
                }
            },
        )
        .await?;
        Ok(leader)
    }

    async fn restore_point(&self, name: &str) -> Result<RestorePoint> {
        validate_restore_point_name(name)?;
        self.leader_postgres().await?.restore_point(name).await
    }

    async fn check_query(&self) -> Result<i64> {
        self.check_query_count().await
    }

    async fn backup(&self, label: &str, policy: &BackupPolicy) -> Result<Option<BackupRecord>> {
        let Some((host, config)) = &self.backups else {
            return Ok(None);
        };
        let config = BackupConfig {
            keep: policy.keep,
            deadline: policy.deadline,
            ..config.clone()
        };
        let source = self.leader_postgres().await?.target().clone();
        let backup = logical_backup(host.as_ref(), &source, label, &config).await?;
        let pruned = prune_backups(host.as_ref(), &config, &source.dbname).await?;
        Ok(Some(BackupRecord {
            path: backup.path,
            bytes: backup.bytes,
            sha256: backup.sha256,
            entries: backup.toc_entries,
            took_ms: backup.took.as_millis().try_into().unwrap_or(u64::MAX),
            pruned,
        }))
    }

    async fn figures(&self) -> Result<DatabaseFigures> {
        self.leader_postgres().await?.figures().await
    }

    async fn migration_tables(&self) -> Result<Option<Vec<MigrationTable>>> {
        let pg = self.leader_postgres().await?;
        let client = pg.connect().await?;
        Ok(Some(
            crate::migrations::read_migration_tables(&client, pg.target()).await?,
        ))
    }
}
