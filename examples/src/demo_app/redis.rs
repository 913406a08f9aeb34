//! The one Redis call of the main route (`INCR`), over RESP by hand: a client crate would be most of the
//! binary for a single command. Connections are pooled so a loaded main route does not connect per request.

use std::sync::Mutex;
use std::time::Duration;

use connect_core::{Error, ErrorKind, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A parsed `redis://[:password@]host:port[/db]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address.
    pub host: String,
    /// Port (default 6379).
    pub port: u16,
    /// Password for `AUTH`, if any.
    pub password: Option<String>,
    /// Database index for `SELECT` (default 0).
    pub db: u32,
}

impl RedisUrl {
    /// Parses a `redis://` URL; TLS (`rediss://`) is refused, the demo app has no TLS.
    pub fn parse(url: &str) -> Result<RedisUrl> {
        let bad = |why: &str| {
            Error::invalid("parse REDIS_URL", url, why.to_string())
                .with_hint("write it as redis://[:password@]host:port[/db]")
        };
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| bad("only redis:// is supported"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = auth
            .map(|a| a.split_once(':').map_or(a, |(_, p)| p).to_string())
            .filter(|p| !p.is_empty());
        let (hostport, db) = match rest.split_once('/') {
            Some((h, d)) if !d.is_empty() => (h, d.parse().map_err(|_| bad("the database is not a number"))?),
            Some((h, _)) => (h, 0),
            None => (rest, 0),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad("the port is not a number"))?),
            None => (hostport, 6379),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            password,
            db,
        })
    }

    fn target(&self) -> String {
        format!("redis {}:{}", self.host, self.port)
    }
}

type Conn = BufReader<TcpStream>;

/// A small pool of Redis connections.
pub(crate) struct Redis {
    url: RedisUrl,
    idle: Mutex<Vec<Conn>>,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl Redis {
    pub(crate) fn new(url: RedisUrl) -> Redis {
        Redis {
            url,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// `INCR key`, returning the new value.
    pub(crate) async fn incr(&self, key: &str) -> Result<i64> {
        let target = self.url.target();
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().await?,
        };
        let reply = tokio::time::timeout(CALL_TIMEOUT, command(&mut conn, &["INCR", key]))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    "INCR",
                    &target,
                    format!("no reply in {CALL_TIMEOUT:?}"),
                )
            })??;
        let n = match reply {
            Reply::Integer(n) => n,
            Reply::Simple(s) | Reply::Other(s) => {
                return Err(Error::new(
                    ErrorKind::Failed,
                    "INCR",
                    &target,
                    format!("unexpected reply {s:?}"),
                ));
            }
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        Ok(n)
    }

    async fn connect(&self) -> Result<Conn> {
        let target = self.url.target();
        let stream = tokio::time::timeout(
            CALL_TIMEOUT,
            TcpStream::connect((self.url.host.as_str(), self.url.port)),
        )
        .await
        .map_err(|_| Error::new(ErrorKind::Timeout, "connect", &target, "no connection"))?
        .map_err(|e| super::io_error("connect", &target, e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| super::io_error("connect", &target, e))?;
        let mut conn = BufReader::new(stream);
        if let Some(password) = &self.url.password {
            expect_ok(command(&mut conn, &["AUTH", password]).await?, "AUTH", &target)?;
        }
        if self.url.db != 0 {
            expect_ok(
                command(&mut conn, &["SELECT", &self.url.db.to_string()]).await?,
                "SELECT",
                &target,
            )?;
        }
        Ok(conn)
    }
}

#[derive(Debug)]
enum Reply {
    Simple(String),
    Integer(i64),
    Other(String),
}

fn expect_ok(reply: Reply, op: &str, target: &str) -> Result<()> {
    match reply {
        Reply::Simple(s) if s == "OK" => Ok(()),
        other => Err(Error::new(ErrorKind::Refused, op, target, format!("{other:?}"))),
    }
}

async fn command(conn: &mut Conn, args: &[&str]) -> Result<Reply> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    let op = args.first().copied().unwrap_or("command");
    let target = conn
        .get_ref()
        .peer_addr()
        .map_or_else(|_| "redis".to_string(), |a| format!("redis {a}"));
    conn.get_mut()
        .write_all(out.as_bytes())
        .await
        .map_err(|e| super::io_error(op, &target, e))?;
    let mut line = String::new();
    if conn
        .read_line(&mut line)
        .await
        .map_err(|e| super::io_error(op, &target, e))?
        == 0
    {
        return Err(Error::new(
            ErrorKind::Unavailable,
            op,
            &target,
            "connection closed",
        ));
    }
    let line = line.trim_end();
    match line.split_at_checked(1) {
        Some(("+", s)) => Ok(Reply::Simple(s.to_string())),
        Some((":", n)) => n
            .parse()
            .map(Reply::Integer)
            .map_err(|_| Error::new(ErrorKind::Corrupt, op, &target, format!("integer reply {n:?}"))),
        Some(("-", e)) => Err(Error::new(ErrorKind::Refused, op, &target, e.to_string())),
        _ => Ok(Reply::Other(line.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_invalid_input() {
        assert_eq!(
            RedisUrl::parse("redis://:pw@cache.internal:6380/3").unwrap(),
            RedisUrl {
                host: "cache.internal".into(),
                port: 6380,
                password: Some("pw".into()),
                db: 3
            }
        );
        assert_eq!(RedisUrl::parse("redis://127.0.0.1").unwrap().port, 6379);
        assert_eq!(
            RedisUrl::parse("redis://u:p@h:1/").unwrap().password.as_deref(),
            Some("p")
        );
        for bad in [
            "rediss://h:1",
            "redis://h:x",
            "redis://h:1/x",
            "redis://",
            "http://h",
        ] {
            assert_eq!(
                RedisUrl::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }
}
