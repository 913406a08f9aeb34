//! Redis: PING, INFO, BGSAVE-and-wait, and backup/restore of `dump.rdb`.

mod backup;
mod rdb;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connect_core::cache::{Cache, CacheFigures, CacheInfo};
use connect_core::host::{Endpoint, Host};
use connect_core::wait::poll_until;
use connect_core::{Error, ErrorKind, Result};
use redis::aio::MultiplexedConnection;

pub use backup::{RedisBackup, RedisRestore};

use crate::names::{check_host, check_port};

/// A Redis server. Each call opens its own connection: cheap on loopback, and a restart never leaves a dead
/// one behind.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    target: String,
    endpoint: Endpoint,
    /// When set, connections are `host.connect` streams instead of TCP connections from here.
    via: Option<Arc<dyn Host>>,
    /// How long a BGSAVE, a restart or a program run for a backup (`redis-check-rdb`, the start command) may
    /// take.
    pub deadline: Duration,
    /// How long connecting, and each command's answer, may take (a Redis stuck in a slow command, paused, or
    /// a network that drops packets): [`ErrorKind::Timeout`] after it.
    pub timeout: Duration,
    /// The `redis-check-rdb` program, run on the host.
    pub check_rdb: String,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis").field("target", &self.target).finish()
    }
}

impl Redis {
    /// A client for the server at `host` (a host name or an IP address, nothing else: a URL or `user@host`
    /// is refused, so no credentials can come in with it) and `port`, with an optional password.
    pub fn new(host: &str, port: u16, password: Option<&str>) -> Result<Redis> {
        let target = format!("redis://{host}:{port}");
        check_host("redis.new", host, false)?;
        check_port("redis.new", &target, port)?;
        use redis::IntoConnectionInfo;
        let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .map_err(|e| Error::invalid("redis.new", &target, e.to_string()).with_source(e))?;
        let info = match password {
            Some(p) => info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(p)),
            None => info,
        };
        let client = redis::Client::open(info).map_err(|e| {
            Error::invalid("redis.new", &target, e.to_string())
                .with_hint("give a host and port, e.g. 127.0.0.1 6379")
                .with_source(e)
        })?;
        Ok(Redis {
            client,
            target,
            endpoint: Endpoint::Tcp {
                host: host.to_string(),
                port,
            },
            via: None,
            deadline: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            check_rdb: "redis-check-rdb".into(),
        })
    }

    /// Connects through `host`'s byte streams (e.g. the one SSH connection) to the address as the server
    /// sees it, instead of from this machine.
    pub fn through(mut self, host: Arc<dyn Host>) -> Redis {
        self.via = Some(host);
        self
    }

    /// Where it connects.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Sets [`Redis::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Redis {
        self.timeout = timeout;
        self
    }

    pub(crate) async fn conn(&self, op: &str) -> Result<MultiplexedConnection> {
        // Every answer, the handshake's included, within `timeout` (redis-rs' own default is 500 ms, too
        // short for INFO on a busy server, and the host's stream has none).
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let Some(host) = &self.via else {
            return self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| redis_error(op, &self.target, e));
        };
        let connecting = async {
            let stream = host
                .connect(&self.endpoint)
                .await
                .map_err(|e| e.with_hint("is Redis running and listening on that address on the server?"))?;
            let settings = self.client.get_connection_info().redis_settings();
            MultiplexedConnection::new_with_config(settings, stream, config)
                .await
                .map_err(|e| redis_error(op, &self.target, e))
        };
        let (conn, driver) = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    op,
                    &self.target,
                    format!("no connection within {:?}", self.timeout),
                )
                .with_hint("is Redis stuck, or the server slow to open the stream?")
                .with_retryable(true)
            })??;
        tokio::spawn(driver);
        Ok(conn)
    }

    pub(crate) async fn query<T: redis::FromRedisValue>(&self, op: &str, cmd: &redis::Cmd) -> Result<T> {
        let mut conn = self.conn(op).await?;
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| redis_error(op, &self.target, e))
    }

    /// `INFO` sections as `field -> value`.
    pub async fn info_fields(&self, sections: &[&str]) -> Result<HashMap<String, String>> {
        let mut cmd = redis::cmd("INFO");
        for s in sections {
            cmd.arg(*s);
        }
        let text: String = self.query("redis.info", &cmd).await?;
        Ok(parse_info(&text))
    }

    /// Keys in all databases (`INFO keyspace`).
    pub async fn total_keys(&self) -> Result<u64> {
        Ok(keyspace_total(&self.info_fields(&["keyspace"]).await?))
    }

    pub(crate) async fn config_get(&self, key: &str) -> Result<String> {
        let pairs: Vec<String> = self
            .query("redis.config_get", redis::cmd("CONFIG").arg("GET").arg(key))
            .await?;
        pairs.get(1).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                "redis.config_get",
                &self.target,
                format!("no setting {key}"),
            )
        })
    }

    /// Where Redis writes its RDB file (`CONFIG GET dir` + `dbfilename`).
    pub async fn rdb_path(&self) -> Result<String> {
        let dir = self.config_get("dir").await?;
        let file = self.config_get("dbfilename").await?;
        // Redis itself refuses a dbfilename with a slash; one that has it is not a Redis we understand, and a
        // restore writes to this path.
        if !dir.starts_with('/') || file.is_empty() || file.contains('/') || file == ".." {
            return Err(Error::new(
                ErrorKind::Refused,
                "redis.rdb_path",
                &self.target,
                format!("unexpected RDB location: dir {dir:?}, dbfilename {file:?}"),
            ));
        }
        Ok(format!("{}/{file}", dir.trim_end_matches('/')))
    }

    async fn server_time(&self) -> Result<(i64, i64)> {
        let t: (String, String) = self.query("redis.time", &redis::cmd("TIME")).await?;
        let parse = |s: &str| s.parse::<i64>().unwrap_or(0);
        Ok((parse(&t.0), parse(&t.1)))
    }
}

#[async_trait]
impl Cache for Redis {
    async fn ping(&self) -> Result<()> {
        let pong: String = self.query("redis.ping", &redis::cmd("PING")).await?;
        if pong != "PONG" {
            return Err(Error::new(
                ErrorKind::Unhealthy,
                "redis.ping",
                &self.target,
                format!("answered {pong:?}"),
            ));
        }
        Ok(())
    }

    async fn info(&self) -> Result<CacheInfo> {
        let f = self.info_fields(&["persistence", "replication"]).await?;
        let last_save: i64 = self.query("redis.lastsave", &redis::cmd("LASTSAVE")).await?;
        let keys: u64 = self.query("redis.dbsize", &redis::cmd("DBSIZE")).await?;
        Ok(CacheInfo {
            role: f.get("role").cloned().unwrap_or_default(),
            last_save_unix: last_save,
            bgsave_in_progress: f.get("rdb_bgsave_in_progress").map(String::as_str) == Some("1"),
            last_bgsave_ok: f.get("rdb_last_bgsave_status").map(String::as_str) == Some("ok"),
            aof_enabled: f.get("aof_enabled").map(String::as_str) == Some("1"),
            keys,
        })
    }

    async fn figures(&self) -> Result<CacheFigures> {
        // One INFO with three sections: one round trip per sample.
        let f = self.info_fields(&["stats", "memory", "clients"]).await?;
        let num = |key: &str| f.get(key).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(CacheFigures {
            keyspace_hits: num("keyspace_hits"),
            keyspace_misses: num("keyspace_misses"),
            used_memory_bytes: num("used_memory"),
            max_memory_bytes: Some(num("maxmemory")).filter(|m| *m > 0),
            connected_clients: num("connected_clients"),
            evicted_keys: num("evicted_keys"),
        })
    }

    async fn save(&self) -> Result<CacheInfo> {
        let op = "redis.save";
        let before: i64 = self.query(op, &redis::cmd("LASTSAVE")).await?;
        // LASTSAVE counts whole seconds: a save finishing in the second of the previous one would not move
        // it. Wait (by the server's own clock, to the microsecond) for the next second before saving.
        let (now, micros) = self.server_time().await?;
        if now <= before {
            let wait = (before - now) as u64 * 1_000_000 + (1_000_000 - micros.clamp(0, 999_999) as u64);
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
        let saves_before = self
            .info_fields(&["persistence"])
            .await?
            .get("rdb_saves")
            .and_then(|v| v.parse::<u64>().ok());
        poll_until(
            op,
            &self.target,
            self.deadline,
            Duration::from_millis(20),
            || async {
                match self.query::<String>(op, &redis::cmd("BGSAVE")).await {
                    Ok(_) => Ok(Ok(())),
                    // Someone else's save is running: ours starts when it ends.
                    Err(e) if e.message().contains("already in progress") => Ok(Err(e.message().to_string())),
                    Err(e) => Err(e),
                }
            },
        )
        .await?;
        poll_until(
            op,
            &self.target,
            self.deadline,
            Duration::from_millis(20),
            || async {
                let f = self.info_fields(&["persistence"]).await?;
                if f.get("rdb_bgsave_in_progress").map(String::as_str) != Some("0") {
                    return Ok(Err("BGSAVE in progress".into()));
                }
                let saves = f.get("rdb_saves").and_then(|v| v.parse::<u64>().ok());
                let last: i64 = self.query(op, &redis::cmd("LASTSAVE")).await?;
                let status = f.get("rdb_last_bgsave_status").cloned().unwrap_or_default();
                if status != "ok" && saves != saves_before {
                    return Err(Error::new(
                        ErrorKind::Failed,
                        op,
                        &self.target,
                        format!("rdb_last_bgsave_status:{status}"),
                    )
                    .with_hint("see Redis's log: disk full, or dir not writable"));
                }
                if last <= before {
                    return Ok(Err(format!("LASTSAVE still {last}")));
                }
                Ok(Ok(()))
            },
        )
        .await?;
        self.info().await
    }
}

fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn keyspace_total(fields: &HashMap<String, String>) -> u64 {
    fields
        .iter()
        .filter(|(k, _)| k.starts_with("db"))
        .filter_map(|(_, v)| v.split(',').find_map(|p| p.strip_prefix("keys=")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

fn redis_error(op: &str, target: &str, e: redis::RedisError) -> Error {
    let msg = e.to_string();
    // A response timeout is also an I/O error: it is told apart first.
    let (kind, hint) = if e.is_timeout() {
        (
            ErrorKind::Timeout,
            "Redis did not answer in time: stuck in a slow command, paused, or unreachable",
        )
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || msg.contains("WRONGPASS")
        || msg.contains("NOAUTH")
    {
        (
            ErrorKind::PermissionDenied,
            "check the Redis password (requirepass / ACL user)",
        )
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        (
            ErrorKind::Unavailable,
            "is Redis running and listening on that address?",
        )
    } else {
        (ErrorKind::Failed, "see Redis's log")
    };
    Error::new(kind, op, target, msg).with_hint(hint).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_and_keyspace() {
        let f = parse_info(
            "# Persistence\r\nloading:0\r\nrdb_saves:3\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb2:keys=4,expires=1,avg_ttl=9\r\n",
        );
        assert_eq!(f["rdb_saves"], "3");
        assert_eq!(keyspace_total(&f), 7);
    }
}
