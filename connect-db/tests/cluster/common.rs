//! The cluster shared by the tests of one binary, started once.

#![allow(dead_code)]

use connect_db::testing::{TestCluster, TestClusterConfig, leader_client};
use connect_db::{PatroniCluster, PgTarget};
use tokio::sync::{OnceCell, RwLock};

static CLUSTER: OnceCell<Option<TestCluster>> = OnceCell::const_new();

/// Switchovers take the write side; tests that need a stable leader take the read side.
pub(crate) static LEADERSHIP: RwLock<()> = RwLock::const_new(());

/// The shared cluster (started by the first test that asks), or `None` when skipping.
pub(crate) async fn cluster(test: &str) -> Option<&'static TestCluster> {
    CLUSTER
        .get_or_init(|| async { TestCluster::start(test, TestClusterConfig::default()).await })
        .await
        .as_ref()
}

/// Creates a fresh database `name` with a `users` table of `rows` rows, on the leader.
pub(crate) async fn app_database(c: &TestCluster, name: &str, rows: i64) -> PatroniCluster {
    c.fresh_database(name).await.expect("create database");
    let app = c.client(name);
    let db = leader_client(&app).await.expect("connect app db");
    db.batch_execute(&format!(
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, created_at timestamptz DEFAULT now());
         INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, {rows}) g;"
    ))
    .await
    .expect("users table");
    app
}

/// The leader's login for `db`.
pub(crate) async fn leader_target(c: &PatroniCluster) -> PgTarget {
    c.leader_postgres().await.expect("leader").target().clone()
}
