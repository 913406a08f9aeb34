//! A PostgreSQL server in a network namespace of its own, reached only through its unix socket: it may
//! listen on `*` (a planted weakness for the hardening audit) and still reach nothing but the namespace's
//! own loopback, which is down. Needs root (`unshare --net`).

use std::time::Duration;

use connect_core::Result;
use connect_core::testing::{real_tests_required, require_program};

use super::PG_PASSWORD;
use super::process::{ServerProcess, accepting, give_to_postgres, initdb, io, pg_bin, running_as_root};
use crate::PgTarget;

/// The port in the socket's name (`.s.PGSQL.5432`): no TCP port is bound outside the namespace.
const PORT: u16 = 5432;

/// initdb's server with a `pg_hba.conf` and `listen_addresses` of the test's choosing.
#[derive(Debug)]
pub struct IsolatedPostgres {
    process: Option<ServerProcess>,
    dir: tempfile::TempDir,
}

impl IsolatedPostgres {
    /// initdb (superuser `postgres`, password [`PG_PASSWORD`]), `hba` as the whole `pg_hba.conf`, started
    /// with `listen_addresses` in a new network namespace. `None` after a loud SKIP when PostgreSQL,
    /// `unshare` or root is missing and real tests are not required.
    pub async fn start(test: &str, listen_addresses: &str, hba: &str) -> Option<IsolatedPostgres> {
        require_program(test, "initdb", &[pg_bin("initdb").to_str().unwrap_or("")])?;
        require_program(test, "unshare", &[])?;
        if !running_as_root() {
            let msg = format!("{test}: a network namespace of its own needs root");
            assert!(!real_tests_required(), "{msg}; CONNECT_REAL_TESTS=1 requires it");
            eprintln!("SKIP (real test) {msg}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("connect-db-isolated-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{test}: a temp dir: {e}"));
        Some(
            Self::try_start(dir, listen_addresses, hba)
                .await
                .unwrap_or_else(|e| panic!("{test}: starting postgres: {e}")),
        )
    }

    async fn try_start(dir: tempfile::TempDir, listen: &str, hba: &str) -> Result<IsolatedPostgres> {
        let root = dir.path();
        // Local connections trust by default: the test's `hba` replaces the whole file anyway.
        let data = initdb(root, &[])?;
        let hba_path = data.join("pg_hba.conf");
        std::fs::write(&hba_path, hba).map_err(|e| io("testing.postgres", &hba_path, e))?;
        give_to_postgres(&hba_path)?;
        // unshare needs root; the server then drops to postgres (setpriv's own death signal, since changing
        // user clears the outer one).
        let argv: Vec<String> = [
            "unshare",
            "--net",
            "setpriv",
            "--reuid",
            "postgres",
            "--regid",
            "postgres",
            "--init-groups",
            "--pdeathsig",
            "INT",
        ]
        .into_iter()
        .map(str::to_string)
        .chain([
            pg_bin("postgres").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            PORT.to_string(),
            "-c".into(),
            format!("listen_addresses={listen}"),
            "-c".into(),
            format!("unix_socket_directories={}", root.display()),
        ])
        .collect();
        let process = ServerProcess::start("postgres", &argv, &root.join("postgres.log"), false, "INT")?;
        let pg = IsolatedPostgres {
            process: Some(process),
            dir,
        };
        accepting(pg.login()).await?;
        Ok(pg)
    }

    /// The superuser login over the unix socket.
    pub fn login(&self) -> PgTarget {
        PgTarget::new("postgres", "postgres")
            .at(&self.dir.path().display().to_string(), PORT)
            .password(PG_PASSWORD)
    }

    /// Another role's login over the unix socket.
    pub fn login_as(&self, user: &str, password: &str) -> PgTarget {
        PgTarget::new(user, "postgres")
            .at(&self.dir.path().display().to_string(), PORT)
            .password(password)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for IsolatedPostgres {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop_with("INT", Duration::from_secs(15));
        }
    }
}
