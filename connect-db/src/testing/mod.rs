//! Starts the real programs on 127.0.0.1 for tests: etcd, a two-node Patroni cluster of PostgreSQL 15, a
//! single PostgreSQL, Redis.
//!
//! Every program runs in its own temp dir on free ports. Programs are spawned from one long-lived thread with
//! `setpriv --pdeathsig`, so they end with the test binary even when a shared cluster is never dropped; when
//! run as root, PostgreSQL and Patroni run as the `postgres` user, as they must.

mod certs;
mod cluster;
mod hostile;
mod isolated;
mod node;
mod pitr;
mod process;
mod redis;
mod single;

/// Stops the next restore of a database at a named point, as a crash would: `arm("restore.offline", "shop")`
/// returns a receiver that fires when the restore of `shop` reaches the point, after which it never goes on;
/// drop its future then. Points: `restore.restoring` (the fresh database created, not filled),
/// `restore.offline` (the live database refuses connections, not yet renamed), `restore.renamed_aside` (the
/// live name is free, the fresh database not yet renamed in).
pub use crate::failpoint::arm as arm_failpoint;
pub use certs::TestCerts;
pub use cluster::{REST_USER, TestCluster, TestClusterConfig};
pub use hostile::OpenUmaskHost;
pub use isolated::IsolatedPostgres;
pub use node::{Frozen, PatroniNode};
pub use process::{ServerProcess, pg_bin};
pub use redis::TestRedis;
pub use single::TestPostgres;

/// The superuser password of the test servers.
pub const PG_PASSWORD: &str = "connect-test-secret";

/// A connection to the leader of `cluster`, logged in to its database: for a test's own SQL.
pub async fn leader_client(cluster: &crate::PatroniCluster) -> connect_core::Result<tokio_postgres::Client> {
    cluster.leader_postgres().await?.connect().await
}

/// Waits until a member other than `old` leads on a later timeline: Patroni lists the new leader a loop before
/// it reports the new timeline, and the dead leader's key outlives it by the ttl.
pub async fn wait_promotion(
    db: &crate::PatroniCluster,
    old: &connect_core::database::Member,
    deadline: std::time::Duration,
) -> connect_core::Result<connect_core::database::Member> {
    use connect_core::database::DatabaseClusterExt;
    connect_core::wait::poll_until(
        "testing.promotion",
        &old.name,
        deadline,
        std::time::Duration::from_millis(250),
        || async {
            Ok(match db.leader().await {
                Ok(l) if l.name != old.name && l.timeline > old.timeline => Ok(l),
                Ok(l) => Err(format!("{} still listed as leader", l.name)),
                Err(e) => Err(e.to_string()),
            })
        },
    )
    .await
}
