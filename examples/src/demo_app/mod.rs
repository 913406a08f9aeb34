//! The demo app: the stand-in for the Connect web app in the end-to-end run.
//!
//! It answers `GET /api/health` (`{"status":"healthy","version":…}`, or 503 when unhealthy), `GET /version`, and
//! `GET /`, the main route, which makes one PostgreSQL query (`DATABASE_URL`) and one Redis call (`REDIS_URL`)
//! when they are configured and answers a page containing "Connect". Its [`Mode`] is set by `APP_MODE` at start
//! and by `POST /admin/mode` while it runs, so a test can make a release slow, unhealthy or erroring on demand.
//! `connect-demo-app migrate` applies SQL migrations and records them in a Prisma-style `_prisma_migrations`
//! table; `connect-demo-app healthcheck` is the container's `HEALTHCHECK` (a `FROM scratch` image has no curl).

mod migrate;
mod redis;
mod server;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use connect_core::{Error, ErrorKind, Result};

pub use migrate::{Applied, Migration, embedded_migrations, load_migrations, migrate};
pub use redis::RedisUrl;
pub use server::{App, connect_database as connect, healthcheck, serve};

/// How the app behaves, switched by `APP_MODE` or `POST /admin/mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything answers normally.
    Healthy,
    /// `/api/health` answers 503; the main route still works (the process is up, the health check says no).
    Unhealthy,
    /// Every route but `/admin/mode` answers after an added delay (`APP_SLOW_MS`, or `slow <ms>`), health too.
    Slow,
    /// Health answers 200, but the main route answers 500 and writes an `ERROR` line to stderr per request:
    /// a release that passes the health gate and must fail verification.
    Erroring,
}

impl Mode {
    /// The mode's name as `APP_MODE` and the admin endpoint spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Healthy => "healthy",
            Mode::Unhealthy => "unhealthy",
            Mode::Slow => "slow",
            Mode::Erroring => "erroring",
        }
    }

    /// Parses `healthy|unhealthy|slow|erroring`.
    pub fn parse(s: &str) -> Result<Mode> {
        match s.trim().to_ascii_lowercase().as_str() {
            "healthy" => Ok(Mode::Healthy),
            "unhealthy" => Ok(Mode::Unhealthy),
            "slow" => Ok(Mode::Slow),
            "erroring" => Ok(Mode::Erroring),
            other => Err(
                Error::invalid("parse mode", "demo app", format!("unknown mode {other:?}"))
                    .with_hint("use healthy, unhealthy, slow or erroring"),
            ),
        }
    }
}

/// The app's configuration, normally from the environment ([`Config::from_env`]).
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`BIND`, default 0.0.0.0 as a container needs).
    pub bind: IpAddr,
    /// Port to listen on (`PORT`, default 3000 as in the runbook).
    pub port: u16,
    /// The release's version (`APP_VERSION`, else the file `/app/VERSION`, else the crate's version).
    pub version: String,
    /// The mode at start (`APP_MODE`, default healthy).
    pub mode: Mode,
    /// The delay added in slow mode (`APP_SLOW_MS`, default 250).
    pub slow: Duration,
    /// Health answers 503 until this long after start (`APP_READY_AFTER_MS`, default 0): an app that takes
    /// time to warm up, as the benchmark's `app_ready_s` measures.
    pub ready_after: Duration,
    /// PostgreSQL for the main route (`DATABASE_URL`); none skips the query.
    pub database_url: Option<String>,
    /// Redis for the main route (`REDIS_URL`); none skips the call.
    pub redis_url: Option<RedisUrl>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 3000,
            version: env!("CARGO_PKG_VERSION").to_string(),
            mode: Mode::Healthy,
            slow: Duration::from_millis(250),
            ready_after: Duration::ZERO,
            database_url: None,
            redis_url: None,
        }
    }
}

/// Where a container image may put the release's version, so two releases differ by a layer.
pub const VERSION_FILE: &str = "/app/VERSION";

impl Config {
    /// Reads the configuration from the environment (see each field for its variable).
    pub fn from_env() -> Result<Config> {
        Config::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Reads the configuration through `var` (the environment, or a map in tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let d = Config::default();
        let ms = |name: &str, default: Duration| -> Result<Duration> {
            var(name).map_or(Ok(default), |v| {
                v.trim().parse::<u64>().map(Duration::from_millis).map_err(|_| {
                    Error::invalid("read configuration", name, format!("{v:?} is not milliseconds"))
                })
            })
        };
        Ok(Config {
            bind: match var("BIND") {
                Some(v) => v.trim().parse().map_err(|_| {
                    Error::invalid(
                        "read configuration",
                        "BIND",
                        format!("{v:?} is not an IP address"),
                    )
                })?,
                None => d.bind,
            },
            port: match var("PORT") {
                Some(v) => v.trim().parse().map_err(|_| {
                    Error::invalid("read configuration", "PORT", format!("{v:?} is not a port"))
                })?,
                None => d.port,
            },
            version: var("APP_VERSION")
                .or_else(|| {
                    std::fs::read_to_string(VERSION_FILE)
                        .ok()
                        .map(|v| v.trim().to_string())
                        .filter(|v| !v.is_empty())
                })
                .unwrap_or(d.version),
            mode: var("APP_MODE").map_or(Ok(d.mode), |m| Mode::parse(&m))?,
            slow: ms("APP_SLOW_MS", d.slow)?,
            ready_after: ms("APP_READY_AFTER_MS", d.ready_after)?,
            database_url: var("DATABASE_URL"),
            redis_url: var("REDIS_URL").map(|u| RedisUrl::parse(&u)).transpose()?,
        })
    }
}

/// Where `migrate` finds its migrations: the argument, else `MIGRATIONS_DIR`, else the embedded demo migration.
pub fn migrations_source(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("MIGRATIONS_DIR").map(PathBuf::from))
}

fn io_error(operation: &str, target: &str, e: std::io::Error) -> Error {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        std::io::ErrorKind::AddrInUse => ErrorKind::Conflict,
        std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, operation, target, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn configuration_comes_from_variables_with_runbook_defaults() {
        let c = config(&[]).unwrap();
        assert_eq!((c.port, c.mode), (3000, Mode::Healthy));
        assert!(c.database_url.is_none() && c.redis_url.is_none());
        let c = config(&[
            ("PORT", "3001"),
            ("APP_MODE", "slow"),
            ("APP_SLOW_MS", "40"),
            ("APP_VERSION", "v2"),
            ("REDIS_URL", "redis://127.0.0.1:6390/2"),
        ])
        .unwrap();
        assert_eq!(
            (c.port, c.mode, c.slow),
            (3001, Mode::Slow, Duration::from_millis(40))
        );
        assert_eq!(c.version, "v2");
        assert_eq!(c.redis_url.map(|r| r.db), Some(2));
    }

    #[test]
    fn bad_configuration_names_the_variable() {
        for (k, v) in [
            ("PORT", "x"),
            ("APP_MODE", "sleepy"),
            ("APP_SLOW_MS", "-1"),
            ("BIND", "host"),
        ] {
            let e = config(&[(k, v)]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains(k) || k == "APP_MODE", "{e}");
        }
    }
}
