//! A locked-down cluster: etcd + two Patroni nodes whose REST API speaks HTTPS (a certificate for 127.0.0.1
//! signed by a test CA) and asks for basic auth (`restapi.authentication`), PostgreSQL with `ssl = on`.
//! One cluster start, one test, every check in turn (each cluster costs CI time). With
//! `CONNECT_REAL_TESTS=1` a missing etcd, Patroni, PostgreSQL or openssl fails.

use std::sync::Arc;

use connect_core::ErrorKind;
use connect_core::database::DatabaseCluster;
use connect_core::host::Host;
use connect_core::local::LocalHost;
use connect_db::testing::{PG_PASSWORD, REST_USER, TestCluster, TestClusterConfig};
use connect_db::{BasicAuth, Patroni, SslMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_basic_auth_on_patroni_and_tls_on_postgres() {
    let config = TestClusterConfig {
        scope: "connect-secure".into(),
        secure: true,
        ..TestClusterConfig::default()
    };
    // Starting it already read /cluster over HTTPS, checked against the test CA, until it was healthy.
    let Some(cluster) = TestCluster::start("patroni_tls", config).await else {
        return;
    };
    let certs = cluster.certs.clone().expect("a secure cluster has certificates");
    let urls = cluster.rest_urls();
    assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");
    let host: Arc<dyn Host> = Arc::new(LocalHost::new());
    let right = BasicAuth::new(REST_USER, PG_PASSWORD);
    let good = Patroni::new(&urls)
        .and_then(|p| p.with_ca_file(&certs.ca))
        .and_then(|p| p.with_auth(right.clone()))
        .expect("client");
    assert!(!format!("{good:?}").contains(PG_PASSWORD), "{good:?}");

    // Reads and an authenticated action, directly and through a host (TLS end to end over its stream).
    for (way, patroni) in [
        ("direct", good.clone()),
        ("through a host", good.clone().through(host.clone())),
    ] {
        let members = patroni
            .members()
            .await
            .unwrap_or_else(|e| panic!("{way}: members: {e}"));
        assert_eq!(members.len(), 2, "{way}: {members:?}");
        let leader = patroni
            .leader()
            .await
            .unwrap_or_else(|e| panic!("{way}: leader: {e}"));
        patroni
            .reload(&leader.member.name)
            .await
            .unwrap_or_else(|e| panic!("{way}: POST /reload with the right credentials: {e}"));
    }

    // A wrong password, or none, on an action Patroni guards: PermissionDenied naming the setting.
    let leader = good.leader().await.expect("leader").member.name;
    let wrong = good
        .clone()
        .with_auth(BasicAuth::new(REST_USER, "not-the-password"))
        .expect("client");
    let anonymous = Patroni::new(&urls)
        .and_then(|p| p.with_ca_file(&certs.ca))
        .expect("client");
    for (case, patroni) in [
        ("wrong password", wrong.clone()),
        ("wrong password through a host", wrong.through(host.clone())),
        ("no credentials", anonymous),
    ] {
        let e = patroni.reload(&leader).await.expect_err(case);
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{case}: {e}");
        assert!(e.hint().unwrap_or("").contains("patroni_password"), "{case}: {e}");
        assert!(!e.to_string().contains("not-the-password"), "{case}: {e}");
    }

    // A CA that did not sign Patroni's certificate: refused, the error names the CA setting.
    let stranger = Patroni::new(&urls)
        .and_then(|p| p.with_ca_file(&certs.other_ca))
        .and_then(|p| p.with_auth(right.clone()))
        .expect("client");
    for (case, patroni) in [
        ("unknown CA", stranger.clone()),
        ("unknown CA through a host", stranger.through(host.clone())),
    ] {
        let e = patroni.members().await.expect_err(case);
        assert_eq!(e.kind(), ErrorKind::Refused, "{case}: {e}");
        assert!(e.to_string().contains("patroni_ca_file"), "{case}: {e}");
        assert!(!e.is_retryable(), "{case}: {e}");
    }
    // Plain http to an HTTPS API is not Patroni answering: passed over like a dead node, then unavailable.
    let plain: Vec<String> = urls
        .iter()
        .map(|u| u.replacen("https://", "http://", 1))
        .collect();
    let e = Patroni::new(&plain)
        .expect("client")
        .members()
        .await
        .expect_err("http to https");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");

    // The cluster's PostgreSQL over TLS, checked fully, found through the HTTPS API: directly and through
    // the host.
    let login = cluster
        .login()
        .ssl_mode(SslMode::VerifyFull)
        .ssl_root_cert(&certs.ca);
    let db = connect_db::PatroniCluster::new(&urls, login)
        .and_then(|c| c.with_patroni_ca_file(&certs.ca))
        .and_then(|c| c.with_patroni_auth(right.clone()))
        .expect("cluster client")
        .with_check_query("SELECT count(*) FROM pg_stat_ssl WHERE ssl AND pid = pg_backend_pid()");
    assert_eq!(db.check_query().await.expect("check query over verify-full"), 1);
    let through = db.clone().through(host.clone());
    assert_eq!(through.check_query().await.expect("through a host"), 1);
}
