//! One PostgreSQL 15 server made with initdb: for benchmarks and tests that need no cluster.

use std::time::Duration;

use connect_core::Result;
use connect_core::testing::{free_port, require_program};

use super::PG_PASSWORD;
use super::certs::TestCerts;
use super::process::{ServerProcess, accepting, initdb, pg_bin};
use crate::PgTarget;

/// A PostgreSQL server in its own temp dir, superuser `postgres` with [`PG_PASSWORD`] over TCP.
#[derive(Debug)]
pub struct TestPostgres {
    /// Its port.
    pub port: u16,
    /// With [`TestPostgres::start_with_tls`]: the certificates of its `ssl = on`.
    pub certs: Option<TestCerts>,
    process: Option<ServerProcess>,
    dir: tempfile::TempDir,
}

impl TestPostgres {
    /// initdb and start. `None` after a loud SKIP when PostgreSQL is missing and real tests are not required.
    pub async fn start(test: &str) -> Option<TestPostgres> {
        require_program(test, "initdb", &[pg_bin("initdb").to_str().unwrap_or("")])?;
        require_program(test, "setpriv", &[])?;
        let dir = Self::temp_dir(test);
        Some(
            Self::try_start(dir, None)
                .await
                .unwrap_or_else(|e| panic!("{test}: starting postgres: {e}")),
        )
    }

    /// Like [`TestPostgres::start`], with `ssl = on` and a certificate for 127.0.0.1 signed by a test CA
    /// (see [`TestCerts`]); plain connections are still accepted, as `sslmode` is the client's choice.
    pub async fn start_with_tls(test: &str) -> Option<TestPostgres> {
        require_program(test, "initdb", &[pg_bin("initdb").to_str().unwrap_or("")])?;
        require_program(test, "setpriv", &[])?;
        let dir = Self::temp_dir(test);
        let certs = TestCerts::generate(test, &dir.path().join("certs"))?;
        Some(
            Self::try_start(dir, Some(certs))
                .await
                .unwrap_or_else(|e| panic!("{test}: starting postgres: {e}")),
        )
    }

    fn temp_dir(test: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("connect-db-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{test}: a temp dir: {e}"))
    }

    async fn try_start(dir: tempfile::TempDir, certs: Option<TestCerts>) -> Result<TestPostgres> {
        let root = dir.path();
        let data = initdb(root, &["--auth-local=trust", "--auth-host=scram-sha-256"])?;
        let port = free_port();
        let mut tls = Vec::new();
        if let Some(c) = &certs {
            // Each connection is logged with whether it is encrypted, so a test can see what a client
            // program on the host did.
            for setting in [
                "ssl=on".to_string(),
                "log_connections=on".to_string(),
                format!("ssl_cert_file={}", c.server_cert.display()),
                format!("ssl_key_file={}", c.server_key.display()),
            ] {
                tls.extend(["-c".to_string(), setting]);
            }
        }
        let process = ServerProcess::start(
            "postgres",
            &[
                pg_bin("postgres").display().to_string(),
                "-D".into(),
                data.display().to_string(),
                "-p".into(),
                port.to_string(),
                "-c".into(),
                "listen_addresses=127.0.0.1".into(),
                "-c".into(),
                format!("unix_socket_directories={}", root.display()),
                "-c".into(),
                "shared_buffers=256MB".into(),
                "-c".into(),
                "max_wal_size=4GB".into(),
                "-c".into(),
                "wal_level=replica".into(),
            ]
            .into_iter()
            .chain(tls)
            .collect::<Vec<String>>(),
            &root.join("postgres.log"),
            true,
            "TERM",
        )?;
        let pg = TestPostgres {
            port,
            certs,
            process: Some(process),
            dir,
        };
        accepting(pg.login()).await?;
        Ok(pg)
    }

    /// The superuser login on database `postgres`.
    pub fn login(&self) -> PgTarget {
        PgTarget::new("postgres", "postgres")
            .at("127.0.0.1", self.port)
            .password(PG_PASSWORD)
    }

    /// Its directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            // SIGINT is PostgreSQL's fast shutdown; SIGTERM waits for clients.
            p.stop_with("INT", Duration::from_secs(15));
        }
    }
}
