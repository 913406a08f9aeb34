//! Connect Ops for the runbook's data tier: the Patroni cluster, PostgreSQL and Redis.
//!
//! - [`Patroni`]: the REST API (members, leader, health endpoints, history, switchover and failover that wait
//!   until done, restart, reload); Patroni's refusals become [`connect_core::ErrorKind::Refused`] errors
//!   carrying its own message.
//! - [`Postgres`]: readiness like `pg_isready`, the app's check query, replication lag, WAL archiver health,
//!   restore points.
//! - [`PatroniCluster`]: both together, implementing [`connect_core::DatabaseCluster`].
//! - [`migrations`]: reads Prisma's, sqlx's and Flyway's migration tables and refuses to go on while one is
//!   unfinished or failed; lints migration SQL for changes that break the old color (expand/contract).
//! - [`backup`]: a restore point unique to the deploy plus a checked `pg_dump -Fc`, run through a
//!   [`connect_core::Host`]; [`restore`] restores one into a fresh database and swaps it in by rename.
//! - [`pitr`]: continuous backups with pgBackRest (WAL archived through Patroni's configuration, base
//!   backups with retention) and point-in-time recovery with the replicas rebuilt.
//! - [`Redis`]: PING, INFO, BGSAVE-and-wait, backup and restore of `dump.rdb`; implements
//!   [`connect_core::Cache`].
//!
//! - The hardening audit's checks that need these clients: [`Postgres`] (`listen_addresses`, `pg_hba` trust
//!   lines), [`Patroni`] (REST auth) and [`Redis`] (protected mode, password, bind) implement
//!   [`connect_core::audit::AuditSource`]; their judges are private, the findings are what a caller reads.
//!
//! - TLS, on rustls: Patroni over `https://` with [`Patroni::with_ca_file`] and basic auth
//!   ([`BasicAuth`]); PostgreSQL with libpq's [`SslMode`] and a root CA on [`PgTarget`], for the SDK's
//!   connections and the client programs on the host alike.
//!
//! Each client talks to its server directly by default; `.through(host)` carries it over a
//! [`connect_core::Host`]'s byte streams instead (the one SSH connection to the server), with the addresses as
//! the server sees them.
//!
//! ```no_run
//! use connect_core::database::DatabaseClusterExt;
//! use connect_db::{PatroniCluster, PgTarget};
//!
//! # async fn run() -> connect_core::Result<()> {
//! let cluster = PatroniCluster::new(
//!     &["http://patroni1.internal:8008", "http://patroni2.internal:8008"],
//!     PgTarget::new("postgres", "connect").password("secret"),
//! )?;
//! let leader = cluster.leader().await?;
//! println!("{} leads; users: {}", leader.name, cluster.check_query_count().await?);
//! # Ok(())
//! # }
//! ```

mod audit;
pub mod backup;
mod cluster;
mod failpoint;
pub mod migrations;
mod names;
mod patroni;
mod pg_tools;
pub mod pitr;
mod postgres;
mod redis_cache;
pub mod restore;
#[cfg(feature = "testing")]
pub mod testing;
mod tls;
mod util;
mod via_host;

pub use cluster::PatroniCluster;
pub use patroni::{BasicAuth, HealthCheck, Patroni, PatroniHistoryEntry, PatroniMember, RestAccess};
pub use postgres::{ArchiverStatus, PgTarget, Postgres, Readiness, ReplicaLag, SslMode};
pub use redis_cache::{Redis, RedisBackup, RedisRestore};
