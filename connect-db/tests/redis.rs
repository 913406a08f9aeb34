//! Redis 7 on 127.0.0.1: the cache conformance suite, backup and restore of dump.rdb, and refusals.

use connect_core::host::{Command, HostExt, PutOptions};
use connect_core::local::LocalHost;
use connect_core::testing::free_port;
use connect_core::{Cache, ErrorKind};
use connect_db::Redis;
use connect_db::testing::TestRedis;

async fn fill(redis: &TestRedis, n: usize) {
    let client = redis::Client::open(match &redis.password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{}/", redis.port),
        None => format!("redis://127.0.0.1:{}/", redis.port),
    })
    .expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET")
            .arg(format!("session:{i}"))
            .arg(format!("user-{i}"))
            .ignore();
    }
    pipe.cmd("SELECT")
        .arg(2)
        .ignore()
        .cmd("SET")
        .arg("other-db")
        .arg("x")
        .ignore();
    pipe.query_async::<()>(&mut conn).await.expect("fill");
}

#[tokio::test]
async fn real_redis_passes_the_cache_conformance_suite() {
    let Some(r) = TestRedis::start("cache_conformance", None, false).await else {
        return;
    };
    connect_core::conformance::cache_suite(&r.client()).await;
}

#[tokio::test]
async fn saves_in_quick_succession_each_move_lastsave() {
    let Some(r) = TestRedis::start("cache_same_second", None, false).await else {
        return;
    };
    let c = r.client();
    let mut last = c.info().await.expect("info").last_save_unix;
    for _ in 0..3 {
        let info = c.save().await.expect("save");
        assert!(info.last_save_unix > last, "{last} -> {info:?}");
        assert!(info.last_bgsave_ok && !info.bgsave_in_progress);
        last = info.last_save_unix;
    }
}

#[tokio::test]
async fn backup_and_restore_bring_back_every_key() {
    let Some(r) = TestRedis::start("redis_backup_restore", Some("redis-secret"), false).await else {
        return;
    };
    let c = r.client();
    fill(&r, 250).await;
    let info = c.info().await.expect("info");
    assert_eq!(info.role, "master");
    assert_eq!(info.keys, 250, "DBSIZE of db 0");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = LocalHost::new();
    let backup = c
        .backup(&host, dir.path().to_str().expect("utf-8"))
        .await
        .expect("backup");
    assert_eq!(backup.keys, 251, "all databases");
    assert!(backup.bytes > 0 && backup.sha256.len() == 64);

    // Lose data, then restore: stop, place, start, compare.
    let mut conn = redis::Client::open(format!("redis://:redis-secret@127.0.0.1:{}/", r.port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut conn)
        .await
        .expect("flush");
    redis::cmd("SET")
        .arg("new-after-backup")
        .arg("1")
        .query_async::<()>(&mut conn)
        .await
        .expect("set");
    drop(conn);
    let restored = c
        .restore(&host, &backup, &r.start_command())
        .await
        .expect("restore");
    assert_eq!(restored.keys, 251);
    assert_eq!(c.info().await.expect("info").keys, 250, "DBSIZE matches again");
    assert_eq!(c.total_keys().await.expect("keys"), backup.keys);
}

#[tokio::test]
async fn restore_is_refused_when_aof_would_override_the_rdb() {
    let Some(r) = TestRedis::start("redis_aof", None, true).await else {
        return;
    };
    let c = r.client();
    fill(&r, 5).await;
    assert!(c.info().await.expect("info").aof_enabled);
    let dir = tempfile::tempdir().expect("temp dir");
    let backup = c
        .backup(&LocalHost::new(), dir.path().to_str().expect("utf-8"))
        .await
        .expect("backup");
    let e = c
        .restore(&LocalHost::new(), &backup, &r.start_command())
        .await
        .expect_err("AOF on");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.message().contains("AOF"), "{e}");
    c.ping().await.expect("Redis was not stopped");
}

#[tokio::test]
async fn a_corrupt_rdb_is_refused_before_redis_is_stopped() {
    let Some(r) = TestRedis::start("redis_corrupt", None, false).await else {
        return;
    };
    let c = r.client();
    fill(&r, 20).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let host = LocalHost::new();
    let mut backup = c
        .backup(&host, dir.path().to_str().expect("utf-8"))
        .await
        .expect("backup");
    let bytes = std::fs::read(&backup.path).expect("read");
    let bad = format!("{}/bad.rdb", dir.path().display());
    host.write_file(&bad, bytes[..bytes.len() / 2].to_vec(), PutOptions::default())
        .await
        .expect("write");
    assert_eq!(
        c.check_rdb_file(&host, &bad).await.unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    // Recorded checksum of the good file, content of the bad one.
    backup.path = bad;
    let e = c
        .restore(&host, &backup, &r.start_command())
        .await
        .expect_err("corrupt");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(c.total_keys().await.expect("still up"), 21);
}

#[tokio::test]
async fn wrong_password_and_no_server_are_told_apart() {
    let Some(r) = TestRedis::start("redis_bad_input", Some("right"), false).await else {
        return;
    };
    let wrong = Redis::new("127.0.0.1", r.port, Some("wrong")).expect("client");
    assert_eq!(
        wrong.ping().await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let none = Redis::new("127.0.0.1", r.port, None).expect("client");
    assert_eq!(none.ping().await.unwrap_err().kind(), ErrorKind::PermissionDenied);
    let gone = Redis::new("127.0.0.1", free_port(), None).expect("client");
    let e = gone.ping().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let failed_start = r
        .client()
        .restore(
            &LocalHost::new(),
            &connect_db::RedisBackup {
                path: "/nonexistent/dump.rdb".into(),
                sha256: String::new(),
                bytes: 0,
                keys: 0,
                last_save_unix: 0,
            },
            &Command::new(["true"]),
        )
        .await;
    assert_eq!(failed_start.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answers_through_one_ssh_connection() {
    let test = "redis_through_ssh";
    let Some(r) = TestRedis::start(test, Some("redis-secret"), false).await else {
        return;
    };
    let Some(sshd) = connect_core::testing::Sshd::start(test).await else {
        return;
    };
    fill(&r, 25).await;
    let host = connect_core::ssh::SshHost::connect(sshd.config())
        .await
        .expect("ssh connect");
    let remote = r.client().through(std::sync::Arc::new(host.clone()));
    remote.ping().await.expect("ping through ssh");
    assert_eq!(remote.total_keys().await.expect("keys"), 26);
    let info = remote.save().await.expect("save through ssh");
    assert!(info.last_bgsave_ok);
    let wrong = Redis::new("127.0.0.1", r.port, Some("wrong"))
        .expect("client")
        .through(std::sync::Arc::new(host.clone()));
    assert_eq!(
        wrong.ping().await.expect_err("wrong password").kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(host.connections_opened(), 1);
    assert_eq!(sshd.accepted_connections(), 1);
}

async fn raw(redis: &TestRedis) -> redis::aio::MultiplexedConnection {
    let url = match &redis.password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{}/", redis.port),
        None => format!("redis://127.0.0.1:{}/", redis.port),
    };
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Keys whose TTL runs out between the backup and the restore are dropped by the load;
/// that is no corruption.
#[tokio::test]
async fn keys_that_expire_between_backup_and_restore_are_no_false_corruption() {
    let Some(r) = TestRedis::start("redis_expiring_keys", None, false).await else {
        return;
    };
    let c = r.client();
    fill(&r, 50).await;
    let mut conn = raw(&r).await;
    let mut pipe = redis::pipe();
    for i in 0..30 {
        pipe.cmd("SET")
            .arg(format!("otp:{i}"))
            .arg("123456")
            .arg("PX")
            .arg(1500)
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await.expect("volatile keys");
    let dir = tempfile::tempdir().expect("temp dir");
    let host = LocalHost::new();
    let backup = c
        .backup(&host, dir.path().to_str().expect("utf-8"))
        .await
        .expect("backup");
    assert_eq!(backup.keys, 81);
    // The volatile keys run out before the restore.
    connect_core::wait::poll_until(
        "test.expire",
        "otp keys",
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(50),
        || async {
            Ok(match c.total_keys().await? {
                51 => Ok(()),
                n => Err(format!("{n} keys")),
            })
        },
    )
    .await
    .expect("expired");
    let restored = c
        .restore(&host, &backup, &r.start_command())
        .await
        .expect("no false Corrupt");
    assert_eq!(restored.keys, 51, "the persistent keys, none of the expired ones");
    assert_eq!(c.total_keys().await.expect("keys"), 51);
}

/// Bounded calls: a Redis that does not answer (here paused by CLIENT PAUSE, as a slow command or a
/// stuck server would) is a Timeout within the client's bound, directly and through a host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_does_not_answer_is_a_timeout_within_the_bound() {
    let Some(r) = TestRedis::start("redis_paused", Some("pw"), false).await else {
        return;
    };
    let bound = std::time::Duration::from_millis(700);
    let direct = r.client().with_timeout(bound);
    let through = r
        .client()
        .with_timeout(bound)
        .through(std::sync::Arc::new(LocalHost::new()));
    direct.ping().await.expect("answers before the pause");
    through.ping().await.expect("answers before the pause");
    for (how, c) in [("direct", &direct), ("through a host", &through)] {
        let mut conn = raw(&r).await;
        redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(2500)
            .arg("ALL")
            .query_async::<()>(&mut conn)
            .await
            .expect("pause");
        let t = std::time::Instant::now();
        let e = c.ping().await.expect_err("paused");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{how}: {e}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "{how}: {:?}",
            t.elapsed()
        );
        // CLIENT UNPAUSE is paused too: the pause is waited out.
        connect_core::wait::poll_until(
            "test.unpause",
            how,
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(100),
            || async { Ok(r.client().ping().await.map_err(|e| e.to_string())) },
        )
        .await
        .expect("the pause ends");
    }
    direct.ping().await.expect("answers again");
}

/// Private backups: the RDB copy holds every session: its directory is 0700 and the copy 0600, whatever
/// the server's umask.
#[tokio::test]
async fn redis_backups_are_private_under_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    let Some(r) = TestRedis::start("redis_private", None, false).await else {
        return;
    };
    fill(&r, 3).await;
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("cache-backups");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let host = connect_db::testing::OpenUmaskHost::new();
    let b = r
        .client()
        .backup(&host, dir.to_str().expect("utf-8"))
        .await
        .expect("backup");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(std::path::Path::new(&b.path)), 0o600);
}
