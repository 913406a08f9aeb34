//! Backup and restore of `dump.rdb` through a [`Host`].

use std::time::{Duration, Instant, SystemTime};

use connect_core::cache::Cache;
use connect_core::host::{Command, Host, PutOptions};
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use super::Redis;
use super::rdb::{RdbSummary, parse_check_rdb, verify_loaded};
use crate::backup::ensure_private_dir;
use crate::pg_tools::run_bounded;
use crate::util::{sha256_file, stderr_tail, utc_stamp_millis};

/// A checked copy of `dump.rdb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisBackup {
    /// The copy on the host.
    pub path: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Keys in all databases just before the save (`INFO keyspace`), for the record: a restore checks the
    /// file itself, since keys with a TTL may expire before it.
    pub keys: u64,
    /// `LASTSAVE` of the save it copies.
    pub last_save_unix: i64,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisRestore {
    /// Keys after the restart: the file's, less those whose TTL ran out since the backup.
    pub keys: u64,
    /// Stop, place, start and load, measured.
    pub took: Duration,
}

impl Redis {
    /// Saves, copies `dump.rdb` into `dest_dir` on `host` (made 0700; the copy is 0600: it holds every
    /// session) and checks the copy with `redis-check-rdb`.
    pub async fn backup(&self, host: &dyn Host, dest_dir: &str) -> Result<RedisBackup> {
        let op = "redis.backup";
        let keys = self.total_keys().await?;
        let saved = self.save().await?;
        let src = self.rdb_path().await?;
        ensure_private_dir(host, dest_dir.trim_end_matches('/'), self.deadline).await?;
        let dest = format!(
            "{}/redis-{}.rdb",
            dest_dir.trim_end_matches('/'),
            utc_stamp_millis(SystemTime::now())
        );
        let reader = host.get_file(&src).await?;
        host.put_file(
            &dest,
            reader,
            PutOptions {
                mode: 0o600,
                create_new: false,
            },
        )
        .await?;
        self.check_rdb_file(host, &dest).await.map_err(|e| {
            Error::new(e.kind(), op, &dest, e.message().to_string()).with_hint("take the backup again")
        })?;
        let (sha256, bytes) = sha256_file(host, &dest).await?;
        Ok(RedisBackup {
            path: dest,
            sha256,
            bytes,
            keys,
            last_save_unix: saved.last_save_unix,
        })
    }

    /// Runs `redis-check-rdb` on a file on the host: [`ErrorKind::Corrupt`] unless it passes.
    pub async fn check_rdb_file(&self, host: &dyn Host, path: &str) -> Result<()> {
        self.check_rdb_summary(host, path).await.map(|_| ())
    }

    /// [`Redis::check_rdb_file`], with the counts the check printed (`None` from a version that prints none).
    async fn check_rdb_summary(&self, host: &dyn Host, path: &str) -> Result<Option<RdbSummary>> {
        let command = Command::new([self.check_rdb.as_str(), path]);
        let out = run_bounded(host, &command, "redis.check_rdb", path, self.deadline).await?;
        let text = out.stdout_text();
        if !out.success() || !text.contains("RDB looks OK") {
            let why = text
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
                .filter(|l| l.contains("--- RDB ERROR") || l.contains("Error") || l.contains("error"))
                .take(3)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::new(
                ErrorKind::Corrupt,
                "redis.check_rdb",
                path,
                format!("redis-check-rdb: {why}"),
            )
            .with_hint("this file is not a readable RDB snapshot"));
        }
        Ok(parse_check_rdb(&text))
    }

    /// Puts a backup in place of `dump.rdb`: refuses when AOF is on (Redis would load the AOF, not the RDB),
    /// checks the file, stops Redis with `SHUTDOWN NOSAVE`, places the file, runs `start` on the host
    /// (`systemctl start redis-server`, `docker start redis`…, bounded by `deadline`), waits until Redis
    /// answers and has loaded, and checks it loaded that file: the keys its load read (loaded + dropped as
    /// expired, Redis 7) must be the file's, so keys whose TTL ran out since the backup are no false alarm.
    pub async fn restore(
        &self,
        host: &dyn Host,
        backup: &RedisBackup,
        start: &Command,
    ) -> Result<RedisRestore> {
        let op = "redis.restore";
        let started = Instant::now();
        let persistence = self.info_fields(&["persistence"]).await?;
        if persistence.get("aof_enabled").map(String::as_str) == Some("1") {
            return Err(Error::new(ErrorKind::Refused, op, &self.target, "AOF is on: Redis would load the AOF and ignore dump.rdb")
                .with_hint("`CONFIG SET appendonly no` (and in redis.conf) before restoring an RDB, or restore the AOF directory instead"));
        }
        let (sha, _) = sha256_file(host, &backup.path).await?;
        if sha != backup.sha256 {
            return Err(Error::new(
                ErrorKind::Corrupt,
                op,
                &backup.path,
                format!("SHA-256 {sha} is not the recorded {}", backup.sha256),
            )
            .with_hint("the backup changed since it was taken; restore another one"));
        }
        let file = self.check_rdb_summary(host, &backup.path).await?;
        let dest = self.rdb_path().await?;

        // SHUTDOWN NOSAVE closes the connection instead of answering.
        let mut conn = self.conn(op).await?;
        let _ = redis::cmd("SHUTDOWN")
            .arg("NOSAVE")
            .query_async::<()>(&mut conn)
            .await;
        drop(conn);
        poll_until(
            op,
            &self.target,
            self.deadline,
            Duration::from_millis(50),
            || async {
                Ok(match self.ping().await {
                    Ok(()) => Err("still answering after SHUTDOWN".to_string()),
                    Err(_) => Ok(()),
                })
            },
        )
        .await?;

        let reader = host.get_file(&backup.path).await?;
        host.put_file(
            &dest,
            reader,
            PutOptions {
                mode: 0o600,
                create_new: false,
            },
        )
        .await?;
        let out = run_bounded(host, start, op, &start.to_string(), self.deadline).await?;
        if !out.success() {
            return Err(
                Error::new(ErrorKind::Failed, op, start.to_string(), stderr_tail(&out, 5))
                    .with_hint("start Redis by hand; dump.rdb is in place"),
            );
        }
        let loaded = poll_until(
            op,
            &self.target,
            self.deadline,
            Duration::from_millis(50),
            || async {
                match self.info_fields(&["persistence"]).await {
                    Ok(f) if f.get("loading").map(String::as_str) == Some("0") => Ok(Ok(f)),
                    Ok(_) => Ok(Err("loading".into())),
                    Err(e) => Ok(Err(e.to_string())),
                }
            },
        )
        .await?;
        let keys = self.total_keys().await?;
        verify_loaded(op, &self.target, file, &loaded, keys)?;
        Ok(RedisRestore {
            keys,
            took: started.elapsed(),
        })
    }
}
