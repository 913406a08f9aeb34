//! PostgreSQL with TLS, against a real server with `ssl = on` and test certificates (a CA and a server
//! certificate for 127.0.0.1 only): every `sslmode` the SDK's own connections take, directly and through a
//! host, and the same settings reaching `pg_dump` on the host; and a server without TLS refusing
//! `sslmode=require` clearly. With `CONNECT_REAL_TESTS=1` a missing PostgreSQL or openssl fails.

use std::sync::Arc;

use connect_core::ErrorKind;
use connect_core::host::Host;
use connect_core::local::LocalHost;
use connect_db::backup::{BackupConfig, logical_backup};
use connect_db::testing::{TestPostgres, pg_bin};
use connect_db::{PgTarget, Postgres, SslMode};

/// Whether the connection `pg` opens is encrypted, as the server sees it.
async fn encrypted(pg: &Postgres) -> connect_core::Result<bool> {
    let client = pg.connect().await?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .expect("pg_stat_ssl");
    Ok(row.get(0))
}

/// The same login directly and through a host (the SSH path, here `LocalHost`): TLS then runs here, on the
/// host's byte stream.
fn both_ways(target: &PgTarget) -> [(&'static str, Postgres); 2] {
    let host: Arc<dyn Host> = Arc::new(LocalHost::new());
    [
        ("direct", Postgres::new(target.clone())),
        ("through a host", Postgres::new(target.clone()).through(host)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sslmode_connects_or_refuses_as_libpq_would() {
    let Some(server) = TestPostgres::start_with_tls("pg_tls_modes").await else {
        return;
    };
    let certs = server.certs.clone().expect("a TLS server has certificates");
    let login = server.login();

    // What connects, and whether it is encrypted.
    let cases = [
        ("disable", login.clone(), false),
        ("prefer", login.clone().ssl_mode(SslMode::Prefer), true),
        ("require", login.clone().ssl_mode(SslMode::Require), true),
        (
            "verify-full, the right CA",
            login
                .clone()
                .ssl_mode(SslMode::VerifyFull)
                .ssl_root_cert(&certs.ca),
            true,
        ),
        (
            // The certificate names 127.0.0.1 only; verify-ca does not look at the name.
            "verify-ca by another name",
            login
                .clone()
                .at("localhost", server.port)
                .ssl_mode(SslMode::VerifyCa)
                .ssl_root_cert(&certs.ca),
            true,
        ),
    ];
    for (case, target, tls) in cases {
        for (way, pg) in both_ways(&target) {
            let got = encrypted(&pg)
                .await
                .unwrap_or_else(|e| panic!("{case} ({way}) connects: {e}"));
            assert_eq!(got, tls, "{case} ({way}): encrypted");
        }
    }

    // What is refused, and what the error says to fix.
    let wrong_name = login
        .clone()
        .at("localhost", server.port)
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(&certs.ca);
    let wrong_ca = login
        .clone()
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(&certs.other_ca);
    // libpq's rule: `require` with a root CA checks the chain, so another CA is refused.
    let require_wrong_ca = login
        .clone()
        .ssl_mode(SslMode::Require)
        .ssl_root_cert(&certs.other_ca);
    let refusals = [
        (
            "verify-full by a name the certificate lacks",
            wrong_name,
            "not valid for \"localhost\"",
            "subjectAltName",
        ),
        (
            "verify-full with another CA",
            wrong_ca,
            "not signed by the CA in ssl_root_cert",
            "set ssl_root_cert",
        ),
        (
            "require with another CA",
            require_wrong_ca,
            "not signed by the CA in ssl_root_cert",
            "set ssl_root_cert",
        ),
    ];
    for (case, target, says, fix) in refusals {
        for (way, pg) in both_ways(&target) {
            let e = encrypted(&pg).await.expect_err(case);
            assert_eq!(e.kind(), ErrorKind::Refused, "{case} ({way}): {e}");
            assert!(
                !e.is_retryable(),
                "{case} ({way}): the same certificate comes back"
            );
            assert!(e.message().contains(says), "{case} ({way}): {e}");
            assert!(e.hint().unwrap_or("").contains(fix), "{case} ({way}): {e}");
        }
    }
    let no_ca = login.clone().ssl_mode(SslMode::VerifyFull);
    let e = encrypted(&Postgres::new(no_ca))
        .await
        .expect_err("verify-full without a CA");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("ssl_root_cert"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_refuses_require_clearly() {
    let Some(server) = TestPostgres::start("pg_tls_plain_server").await else {
        return;
    };
    let require = server.login().ssl_mode(SslMode::Require);
    for (way, pg) in both_ways(&require) {
        let e = encrypted(&pg).await.expect_err("require against ssl = off");
        assert_eq!(e.kind(), ErrorKind::Refused, "{way}: {e}");
        assert!(e.message().contains("does not accept TLS"), "{way}: {e}");
        assert!(e.hint().unwrap_or("").contains("turn ssl on"), "{way}: {e}");
    }
    // prefer falls back to plain, as libpq does.
    for (way, pg) in both_ways(&server.login().ssl_mode(SslMode::Prefer)) {
        assert!(
            !encrypted(&pg).await.expect(way),
            "{way}: prefer connects in plain"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let e = logical_backup(&LocalHost::new(), &require, "plain", &backup_config(&dir))
        .await
        .expect_err("pg_dump with sslmode=require against ssl = off");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    assert!(e.hint().unwrap_or("").contains("does not accept TLS"), "{e}");
}

fn backup_config(dir: &tempfile::TempDir) -> BackupConfig {
    let bin = pg_bin("pg_dump");
    BackupConfig::new(dir.path().to_str().expect("utf-8 temp dir"))
        .bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"))
}

/// `pg_dump` on the host gets the same `sslmode` and root CA (in its conninfo): it dumps over TLS with the
/// right CA, and refuses the server with another one or by a name the certificate lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_on_the_host_checks_the_server_as_the_sdk_does() {
    let Some(server) = TestPostgres::start_with_tls("pg_tls_pg_dump").await else {
        return;
    };
    let certs = server.certs.clone().expect("certificates");
    let host = LocalHost::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = backup_config(&dir);
    let full = server
        .login()
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(&certs.ca);
    let dump = logical_backup(&host, &full, "tls", &config)
        .await
        .expect("pg_dump with verify-full and the right CA");
    assert!(dump.bytes > 0);
    // The server logs each connection (`log_connections`); only pg_dump connected over TLS here.
    let log = std::fs::read_to_string(server.dir().join("postgres.log")).expect("server log");
    assert!(
        log.lines()
            .any(|l| l.contains("connection authorized") && l.contains("SSL enabled")),
        "pg_dump's session was encrypted: {log}"
    );

    let cases = [
        (
            "another CA",
            server
                .login()
                .ssl_mode(SslMode::VerifyFull)
                .ssl_root_cert(&certs.other_ca),
            "ssl_root_cert",
        ),
        (
            "a name the certificate lacks",
            full.clone().at("localhost", server.port),
            "does not name this host",
        ),
        (
            "a root CA missing on the host",
            full.clone().host_ssl_root_cert("/nonexistent/ca.pem"),
            "host_ssl_root_cert",
        ),
    ];
    for (case, target, fix) in cases {
        let e = logical_backup(&host, &target, "tls", &config)
            .await
            .expect_err(case);
        assert_eq!(e.kind(), ErrorKind::Refused, "{case}: {e}");
        assert!(e.hint().unwrap_or("").contains(fix), "{case}: {e}");
    }
}
