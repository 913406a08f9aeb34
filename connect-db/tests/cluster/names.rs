//! A database name is a name. Given to pg_dump/pg_restore it is never read as a connection
//! string (which would redirect the connection, and the password with it); used in a file name it stays in
//! the backup directory; hosts and URLs from configuration carry no credentials.

use std::path::Path;

use connect_core::ErrorKind;
use connect_core::local::LocalHost;
use connect_db::backup::{BackupConfig, list_backups, logical_backup};
use connect_db::restore::{RestoreOptions, restore_logical};
use connect_db::testing::pg_bin;
use connect_db::{Patroni, PgTarget, Postgres, Redis};

use crate::common::{LEADERSHIP, cluster, leader_target};

fn config(dir: &tempfile::TempDir) -> BackupConfig {
    let bin = pg_bin("pg_dump");
    BackupConfig::new(dir.path().to_str().expect("utf-8"))
        .bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"))
}

/// Creates database `name` (any bytes PostgreSQL takes) holding one row that says `name`.
async fn named_database(admin: &Postgres, name: &str) -> PgTarget {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let client = admin.connect().await.expect("connect");
    for sql in [
        format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"),
        format!("CREATE DATABASE {quoted}"),
    ] {
        client.batch_execute(&sql).await.expect("create database");
    }
    let target = admin.target().database(name);
    let db = Postgres::new(target.clone())
        .connect()
        .await
        .expect("connect to the odd name");
    db.execute("CREATE TABLE whoami (name text)", &[])
        .await
        .expect("table");
    db.execute("INSERT INTO whoami VALUES ($1)", &[&name])
        .await
        .expect("row");
    target
}

async fn whoami(target: &PgTarget) -> String {
    let db = Postgres::new(target.clone()).connect().await.expect("connect");
    db.query_one("SELECT name FROM whoami", &[])
        .await
        .expect("select")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_name_is_never_read_as_a_connection_string() {
    let Some(c) = cluster("names_are_names").await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let admin_cluster = c.client("postgres");
    let admin = Postgres::new(leader_target(&admin_cluster).await);
    let port = admin.target().port;
    // The database such a name would redirect to, if it were parsed.
    let victim = named_database(&admin, "names_victim").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir);
    let host = LocalHost::new();

    for odd in [
        "dbname=names_victim".to_string(),
        format!("host=127.0.0.1 port={port} dbname=names_victim"),
        format!("postgresql://127.0.0.1:{port}/names_victim"),
        "postgres://127.0.0.1:1/x".to_string(),
        "../../etc/o'brien \\ db".to_string(),
    ] {
        let target = named_database(&admin, &odd).await;
        let b = logical_backup(&host, &target, "n1", &cfg)
            .await
            .unwrap_or_else(|e| panic!("{odd}: {e}"));
        assert_eq!(b.database, odd, "pg_dump dumped the database named {odd:?}");
        assert_eq!(
            Path::new(&b.path).parent(),
            Some(dir.path()),
            "{} stays in the backup directory",
            b.path
        );
        assert_eq!(
            list_backups(&host, &cfg, &odd).await.expect("list"),
            vec![b.path.clone()]
        );
        // And pg_restore restores into (and renames to) that name, not another.
        restore_logical(&host, &target, &b.path, &cfg, &RestoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{odd}: {e}"));
        assert_eq!(whoami(&target).await, odd);
    }
    assert_eq!(
        whoami(&victim).await,
        "names_victim",
        "the victim was never touched"
    );
}

#[tokio::test]
async fn labels_hosts_and_urls_that_would_say_more_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = config(&dir);
    let target = PgTarget::new("postgres", "shop").at("127.0.0.1", 1);
    for label in ["..", "../x", "a/b", ".hidden", "a\0b"] {
        let e = logical_backup(&LocalHost::new(), &target, label, &cfg)
            .await
            .expect_err(label);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{label:?}: {e}");
    }
    for host in ["127.0.0.1,127.0.0.9", "user:pw@db", "db?sslmode=disable", "db/x"] {
        let t = PgTarget::new("postgres", "shop").at(host, 5432);
        let e = logical_backup(&LocalHost::new(), &t, "d1", &cfg)
            .await
            .expect_err(host);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{host}: {e}");
        assert_eq!(
            Postgres::new(t).connect().await.expect_err(host).kind(),
            ErrorKind::InvalidInput
        );
    }
    for url in [
        "http://admin:secret@127.0.0.1:8008",
        "http://127.0.0.1:8008/x?y",
        "ftp://127.0.0.1",
    ] {
        let e = Patroni::new(&[url]).expect_err(url);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{url}: {e}");
    }
    for host in ["user:pw@127.0.0.1", "redis://127.0.0.1", "127.0.0.1/0", ""] {
        let e = Redis::new(host, 6379, None).expect_err(host);
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{host}: {e}");
    }
    assert_eq!(
        Redis::new("127.0.0.1", 0, None).expect_err("port 0").kind(),
        ErrorKind::InvalidInput
    );
    assert!(
        std::fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0) == 0,
        "nothing was written"
    );
}
