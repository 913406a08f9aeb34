//! Starts the real programs on 127.0.0.1 for tests: etcd, a two-node Patroni cluster of PostgreSQL 15, a
//! single PostgreSQL, Redis.
//!
//! Every program runs in its own temp dir on free ports. Programs are spawned from one long-lived thread with
//! `setpriv --pdeathsig`, so they end with the test binary even when a shared cluster is never dropped; when
//! run as root, PostgreSQL and Patroni run as the `postgres` user, as they must.

mod cluster;
mod process;
mod redis;
mod single;

pub use cluster::{PatroniNode, TestCluster, TestClusterConfig};
pub use process::{ServerProcess, pg_bin};
pub use redis::TestRedis;
pub use single::TestPostgres;

/// The superuser password of the test servers.
pub const PG_PASSWORD: &str = "connect-test-secret";
