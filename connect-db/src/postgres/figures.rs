//! What PostgreSQL counts of its use, for the metrics: three reads of the statistics views on one connection.

use std::collections::BTreeMap;

use connect_core::Result;
use connect_core::database::{DatabaseFigures, ReplicaLag};

use super::{Postgres, pg_error};

/// Client connections by state (a role without `pg_read_all_stats` sees other roles' states as NULL:
/// counted as `unknown`).
const CONNECTIONS: &str = "SELECT coalesce(state, 'unknown'), count(*)::bigint FROM pg_stat_activity \
                           WHERE backend_type = 'client backend' GROUP BY 1";
/// The app's database's transactions, and the connection limit.
const DATABASE: &str = "SELECT current_setting('max_connections')::bigint, xact_commit, xact_rollback \
                        FROM pg_stat_database WHERE datname = current_database()";
/// Each streaming replica's lag behind this leader; a replica whose position this role may not read
/// (`pg_monitor`) is left out rather than shown as caught up.
const REPLICAS: &str = "SELECT application_name, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, \
                        (extract(epoch FROM replay_lag) * 1000)::bigint \
                        FROM pg_stat_replication WHERE replay_lsn IS NOT NULL ORDER BY 1";

impl Postgres {
    /// Connections by state, the database's commits and rollbacks, `max_connections`, and each streaming
    /// replica's lag (on a leader; a replica has none to show).
    pub async fn figures(&self) -> Result<DatabaseFigures> {
        let op = "postgres.figures";
        let client = self.connect().await?;
        let err = |e| pg_error(op, &self.target, e);
        let mut connections = BTreeMap::new();
        for row in client.query(CONNECTIONS, &[]).await.map_err(err)? {
            let count: i64 = row.get(1);
            connections.insert(row.get::<_, String>(0), count.max(0) as u64);
        }
        let row = client.query_one(DATABASE, &[]).await.map_err(err)?;
        let (max_connections, commits, rollbacks): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let replicas = client
            .query(REPLICAS, &[])
            .await
            .map_err(err)?
            .iter()
            .map(|row| ReplicaLag {
                name: row.get(0),
                lag_bytes: row.get::<_, i64>(1).max(0) as u64,
                replay_lag_ms: row.get::<_, Option<i64>>(2).map(|ms| ms.max(0) as u64),
            })
            .collect();
        Ok(DatabaseFigures {
            connections,
            max_connections: max_connections.max(0) as u64,
            commits: commits.max(0) as u64,
            rollbacks: rollbacks.max(0) as u64,
            replicas,
        })
    }
}
