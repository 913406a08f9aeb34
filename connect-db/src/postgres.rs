//! PostgreSQL: readiness, the check query, replication lag, the WAL archiver, restore points.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use connect_core::database::RestorePoint;
use connect_core::host::Host;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// Where and as whom to connect. The password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Host name or address (`127.0.0.1`), or a unix socket directory.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role to log in as.
    pub user: String,
    /// Its password, when the server asks for one.
    pub password: Option<String>,
    /// The app's database.
    pub dbname: String,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .finish()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgresql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

impl PgTarget {
    /// `user` on `dbname` at 127.0.0.1:5432; change the address with [`PgTarget::at`].
    pub fn new(user: &str, dbname: &str) -> PgTarget {
        PgTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            user: user.into(),
            password: None,
            dbname: dbname.into(),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The same login at another address.
    pub fn at(mut self, host: &str, port: u16) -> PgTarget {
        self.host = host.into();
        self.port = port;
        self
    }

    /// With a password.
    pub fn password(mut self, password: &str) -> PgTarget {
        self.password = Some(password.into());
        self
    }

    /// The same login on another database of the same server.
    pub fn database(&self, dbname: &str) -> PgTarget {
        let mut t = self.clone();
        t.dbname = dbname.into();
        t
    }

    fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("connect-ops")
            .connect_timeout(self.connect_timeout);
        if let Some(p) = &self.password {
            c.password(p);
        }
        c
    }
}

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
            None => self.target.config().connect(NoTls).await.map(|_| ()),
            Some(host) => {
                let t = &self.target;
                let Ok(stream) =
                    crate::via_host::pg_stream(host.as_ref(), &t.host, t.port, t.connect_timeout).await
                else {
                    return Readiness::NoResponse;
                };
                match tokio::time::timeout(t.connect_timeout, t.config().connect_raw(stream, NoTls)).await {
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
pub(crate) async fn connect_via(target: &PgTarget, via: Option<&dyn Host>) -> Result<Client> {
    let op = "postgres.connect";
    let Some(host) = via else {
        let (client, connection) = target
            .config()
            .connect(NoTls)
            .await
            .map_err(|e| pg_error(op, target, e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        return Ok(client);
    };
    let stream = crate::via_host::pg_stream(host, &target.host, target.port, target.connect_timeout).await?;
    let (client, connection) =
        tokio::time::timeout(target.connect_timeout, target.config().connect_raw(stream, NoTls))
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

/// Sorts PostgreSQL's failures into kinds a caller acts on, keeping the server's own message.
pub(crate) fn pg_error(op: &str, target: &PgTarget, e: tokio_postgres::Error) -> Error {
    let target_s = target.to_string();
    let Some(db) = e.as_db_error() else {
        let msg = e.to_string();
        let kind = if msg.contains("timed out") {
            ErrorKind::Timeout
        } else {
            ErrorKind::Unavailable
        };
        return Error::new(kind, op, target_s, format!("{msg}: {}", source_text(&e)))
            .with_hint("is PostgreSQL running and listening on that address?")
            .with_retryable(true);
    };
    let code = db.code().clone();
    let msg = format!("{} ({}): {}", db.severity(), code.code(), db.message());
    let (kind, hint) =
        if code == SqlState::INVALID_PASSWORD || code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            (
                ErrorKind::PermissionDenied,
                Some("check the user and password (and pg_hba.conf)"),
            )
        } else if code == SqlState::INSUFFICIENT_PRIVILEGE {
            (
                ErrorKind::PermissionDenied,
                Some("this needs a role with more privileges"),
            )
        } else if code == SqlState::INVALID_CATALOG_NAME || code == SqlState::UNDEFINED_TABLE {
            (ErrorKind::NotFound, None)
        } else if code == SqlState::CANNOT_CONNECT_NOW || code == SqlState::ADMIN_SHUTDOWN {
            (
                ErrorKind::Unavailable,
                Some("the server is starting or stopping; retry"),
            )
        } else if code == SqlState::READ_ONLY_SQL_TRANSACTION
            || code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
        {
            (ErrorKind::Refused, Some("this must run on the leader"))
        } else if code == SqlState::OBJECT_IN_USE {
            (ErrorKind::Conflict, None)
        } else if code.code().starts_with("42") || code.code().starts_with("22") {
            (ErrorKind::InvalidInput, None)
        } else {
            (ErrorKind::Failed, None)
        };
    let err = Error::new(kind, op, target_s, msg);
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

fn source_text(e: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    e.source().map(|s| s.to_string()).unwrap_or_default()
}

/// Quotes an SQL identifier (`"my db"`).
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
