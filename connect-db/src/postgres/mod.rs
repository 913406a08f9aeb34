//! PostgreSQL: readiness, the check query, replication lag, the WAL archiver, restore points.

mod errors;
mod figures;
mod ssl;
mod target;

use std::sync::Arc;

use connect_core::database::RestorePoint;
use connect_core::host::Host;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

pub(crate) use errors::{pg_error, quote_ident};
pub use ssl::SslMode;
pub(crate) use ssl::tls_failure;
pub use target::PgTarget;

/// What `pg_isready` would say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// The server accepts connections (exit 0), even if our login would be refused.
    Accepting,
    /// It answers but refuses connections: starting up, shutting down, in recovery without hot standby (exit 1).
    Rejecting,
    /// Nothing answers (exit 2).
    NoResponse,
}

/// One replica as the primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLag {
    /// `application_name`: Patroni sets it to the member name.
    pub name: String,
    /// `streaming`, `catchup`…
    pub state: String,
    /// Bytes of WAL the replica has not replayed yet.
    pub replay_lag_bytes: u64,
}

/// `pg_stat_archiver`: whether WAL segments reach the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiverStatus {
    /// `archive_mode` (`on`, `off`, `always`).
    pub archive_mode: String,
    /// Segments archived since the statistics were reset.
    pub archived_count: i64,
    /// The last segment archived.
    pub last_archived_wal: Option<String>,
    /// Unix time of the last success.
    pub last_archived_unix: Option<f64>,
    /// Failed attempts.
    pub failed_count: i64,
    /// The last segment that failed.
    pub last_failed_wal: Option<String>,
    /// Unix time of the last failure.
    pub last_failed_unix: Option<f64>,
}

impl ArchiverStatus {
    /// Archiving is on and its latest attempt succeeded.
    pub fn is_healthy(&self) -> bool {
        self.archive_mode != "off"
            && match (self.last_failed_unix, self.last_archived_unix) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(f), Some(a)) => a >= f,
            }
    }
}

/// A PostgreSQL server: one connection per call, so a leader change never leaves a dead connection behind.
#[derive(Debug, Clone)]
pub struct Postgres {
    target: PgTarget,
    via: Option<Arc<dyn Host>>,
}

impl Postgres {
    /// A client for `target`, connecting from this machine.
    pub fn new(target: PgTarget) -> Postgres {
        Postgres { target, via: None }
    }

    /// Connects through `host`'s byte streams instead (e.g. the one SSH connection): `target`'s address is
    /// then as the server sees it, typically 127.0.0.1 or a unix socket directory.
    pub fn through(mut self, host: Arc<dyn Host>) -> Postgres {
        self.via = Some(host);
        self
    }

    /// The host connections go through, when not direct.
    pub fn via(&self) -> Option<&Arc<dyn Host>> {
        self.via.as_ref()
    }

    /// Where it connects.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// Connects, with errors sorted into wrong credentials, no such database, not answering.
    pub async fn connect(&self) -> Result<Client> {
        connect_via(&self.target, self.via.as_deref()).await
    }

    /// Like `pg_isready`: whether the server accepts connections at all.
    pub async fn readiness(&self) -> Readiness {
        let attempt = match &self.via {
            None => {
                let Ok(tls) = self.target.tls_connector("postgres.readiness") else {
                    // A login that cannot be tried (no CA) says nothing about the server.
                    return Readiness::NoResponse;
                };
                connect_direct(self.target.config(), tls).await.map(|_| ())
            }
            Some(host) => {
                let t = &self.target;
                let Ok(stream) =
                    crate::via_host::pg_stream(host.as_ref(), &t.host, t.port, t.connect_timeout).await
                else {
                    return Readiness::NoResponse;
                };
                let Ok(Ok(stream)) =
                    tokio::time::timeout(t.connect_timeout, ssl::negotiate("postgres.readiness", t, stream))
                        .await
                else {
                    return Readiness::NoResponse;
                };
                match tokio::time::timeout(t.connect_timeout, t.raw_config().connect_raw(stream, NoTls)).await
                {
                    Ok(r) => r.map(|_| ()),
                    Err(_) => return Readiness::NoResponse,
                }
            }
        };
        match attempt {
            Ok(()) => Readiness::Accepting,
            Err(e) => match e.code() {
                Some(c) if *c == SqlState::CANNOT_CONNECT_NOW => Readiness::Rejecting,
                Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS || *c == SqlState::ADMIN_SHUTDOWN => {
                    Readiness::Rejecting
                }
                // It answered with a login or database error: it is up.
                Some(_) => Readiness::Accepting,
                None => Readiness::NoResponse,
            },
        }
    }

    /// Runs a query that returns one number (the runbook's `SELECT COUNT(*) FROM users`).
    pub async fn check_query(&self, sql: &str) -> Result<i64> {
        let client = self.connect().await?;
        let row = client
            .query_one(sql, &[])
            .await
            .map_err(|e| pg_error("postgres.check_query", &self.target, e))?;
        let bad = || {
            Error::invalid(
                "postgres.check_query",
                sql,
                "the check query must return one integer column",
            )
            .with_hint("e.g. SELECT COUNT(*) FROM users")
        };
        if row.is_empty() {
            return Err(bad());
        }
        row.try_get::<_, i64>(0)
            .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
            .map_err(|_| bad())
    }

    /// Whether this server is a replica (`pg_is_in_recovery()`).
    pub async fn is_in_recovery(&self) -> Result<bool> {
        let client = self.connect().await?;
        let row = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| pg_error("postgres.is_in_recovery", &self.target, e))?;
        Ok(row.get(0))
    }

    /// The timeline this server writes on, as Patroni computes it (from the WAL file of the current
    /// position); `None` while it is a replica (in recovery it writes nothing).
    pub async fn writing_timeline(&self) -> Result<Option<u64>> {
        let client = self.connect().await?;
        let row = client
            .query_one(
                "SELECT CASE WHEN pg_is_in_recovery() THEN NULL \
                 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END",
                &[],
            )
            .await
            .map_err(|e| pg_error("postgres.writing_timeline", &self.target, e))?;
        Ok(row
            .get::<_, Option<i64>>(0)
            .map(|t| u64::try_from(t).unwrap_or(0)))
    }

    /// The replicas streaming from this primary and how far each is behind.
    pub async fn replication(&self) -> Result<Vec<ReplicaLag>> {
        let client = self.connect().await?;
        let rows = client
            .query(
                "SELECT application_name, coalesce(state, ''), \
                 coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::int8 \
                 FROM pg_stat_replication ORDER BY application_name",
                &[],
            )
            .await
            .map_err(|e| pg_error("postgres.replication", &self.target, e))?;
        Ok(rows
            .iter()
            .map(|r| ReplicaLag {
                name: r.get(0),
                state: r.get(1),
                replay_lag_bytes: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
            .collect())
    }

    /// A setting's current value (`current_setting(name)`).
    pub async fn setting(&self, name: &str) -> Result<String> {
        let client = self.connect().await?;
        let r = client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .map_err(|e| pg_error("postgres.setting", &self.target, e))?;
        Ok(r.get(0))
    }

    /// The WAL archiver's health.
    pub async fn archiver(&self) -> Result<ArchiverStatus> {
        let client = self.connect().await?;
        let r = client
            .query_one(
                "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, \
                 extract(epoch FROM last_archived_time)::float8, failed_count, last_failed_wal, \
                 extract(epoch FROM last_failed_time)::float8 FROM pg_stat_archiver",
                &[],
            )
            .await
            .map_err(|e| pg_error("postgres.archiver", &self.target, e))?;
        Ok(ArchiverStatus {
            archive_mode: r.get(0),
            archived_count: r.get(1),
            last_archived_wal: r.get(2),
            last_archived_unix: r.get(3),
            failed_count: r.get(4),
            last_failed_wal: r.get(5),
            last_failed_unix: r.get(6),
        })
    }

    /// `pg_create_restore_point(name)` with its LSN and the timeline it was made on.
    pub async fn restore_point(&self, name: &str) -> Result<RestorePoint> {
        validate_restore_point_name(name)?;
        let client = self.connect().await?;
        // The timeline is the one of the WAL file the point lands in: right after a promotion the last
        // checkpoint may still be on the old timeline.
        let row = client
            .query_one(
                "SELECT lsn::text, ('x' || substr(pg_walfile_name(lsn), 1, 8))::bit(32)::int8 \
                 FROM pg_create_restore_point($1) AS lsn",
                &[&name],
            )
            .await
            .map_err(|e| {
                pg_error("postgres.restore_point", &self.target, e)
                    .with_hint("restore points are made on the leader, with wal_level replica or logical")
            })?;
        Ok(RestorePoint {
            name: name.to_string(),
            lsn: row.get(0),
            timeline: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        })
    }
}

/// Refuses names PostgreSQL would refuse or truncate (it keeps 63 bytes).
pub(crate) fn validate_restore_point_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(
            Error::invalid("postgres.restore_point", name, "the restore point name is empty")
                .with_hint("name it after the deploy, e.g. deploy-20251013-1400"),
        );
    }
    if name.len() > 63 {
        return Err(Error::invalid(
            "postgres.restore_point",
            name,
            "longer than 63 bytes",
        ));
    }
    Ok(())
}

pub(crate) async fn connect(target: &PgTarget) -> Result<Client> {
    connect_via(target, None).await
}

/// Connects directly, or through `via`'s byte stream with the same login (`connect_raw`).
pub(crate) fn connect_via<'a>(
    target: &'a PgTarget,
    via: Option<&'a dyn Host>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Client>> + Send + 'a>> {
    Box::pin(connect_via_inner(target, via))
}

/// tokio-postgres' own connect (name resolution, every address, unix sockets), as a future whose `Send` the
/// compiler can prove: awaited inline with a TLS connector, the borrow of the `Config` trips its
/// higher-ranked `Send` check.
type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::result::Result<
                    (
                        Client,
                        tokio_postgres::Connection<
                            tokio_postgres::Socket,
                            <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
                        >,
                    ),
                    tokio_postgres::Error,
                >,
            > + Send,
    >,
>;

fn connect_direct(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Connecting {
    Box::pin(async move { config.connect(tls).await })
}

async fn connect_via_inner(target: &PgTarget, via: Option<&dyn Host>) -> Result<Client> {
    let op = "postgres.connect";
    target.validate(op)?;
    let Some(host) = via else {
        let tls = target.tls_connector(op)?;
        let (client, connection) = connect_direct(target.config(), tls)
            .await
            .map_err(|e| pg_error(op, target, e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        return Ok(client);
    };
    // The TLS runs here, end to end through the host's stream, checked against the target's host name.
    let stream = crate::via_host::pg_stream(host, &target.host, target.port, target.connect_timeout).await?;
    let stream = tokio::time::timeout(target.connect_timeout, ssl::negotiate(op, target, stream))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Timeout,
                op,
                target.to_string(),
                "no TLS answer in time",
            )
            .with_retryable(true)
        })??;
    let (client, connection) = tokio::time::timeout(
        target.connect_timeout,
        target.raw_config().connect_raw(stream, NoTls),
    )
    .await
    .map_err(|_| {
        Error::new(
            ErrorKind::Timeout,
            op,
            target.to_string(),
            "no login answer in time",
        )
        .with_retryable(true)
    })?
    .map_err(|e| pg_error(op, target, e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection through the host ended");
        }
    });
    Ok(client)
}
