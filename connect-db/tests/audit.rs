//! The hardening audit's database checks against the real servers, started by the tests: PostgreSQL 15 with
//! planted weaknesses (trust lines, `listen_addresses = '*'` inside a network namespace of its own), Redis 7
//! with protected mode off and no password, a Patroni cluster with an open and a guarded REST API. Each
//! planted weakness is found; a hardened config yields none of them; a check that cannot run says so.

use connect_core::audit::{AuditCheck, AuditSource, Finding, FindingStatus, Severity};
use connect_db::testing::{IsolatedPostgres, TestCluster, TestClusterConfig, TestRedis};
use connect_db::{Postgres, Redis};

fn of(findings: &[Finding], check: AuditCheck) -> Vec<&Finding> {
    findings.iter().filter(|f| f.check == check).collect()
}

#[tokio::test]
async fn postgres_trust_lines_and_listen_star_are_found() {
    let hba = "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 scram-sha-256\n";
    let Some(pg) = IsolatedPostgres::start("audit_pg_weak", "*", hba).await else {
        return;
    };
    let findings = Postgres::new(pg.login()).audit().await;
    let listen = of(&findings, AuditCheck::PostgresListenAddresses);
    assert_eq!(listen.len(), 1, "{findings:#?}");
    assert_eq!(
        (listen[0].status, listen[0].severity),
        (FindingStatus::Weak, Severity::High)
    );
    assert!(listen[0].message.contains("'*'"), "{:?}", listen[0]);
    let trust = of(&findings, AuditCheck::PostgresHbaTrust);
    let lines: Vec<(&str, Severity)> = trust
        .iter()
        .map(|f| (f.subject.rsplit(':').next().unwrap_or(""), f.severity))
        .collect();
    assert_eq!(
        lines,
        [("1", Severity::Medium), ("2", Severity::High)],
        "{findings:#?}"
    );
}

#[tokio::test]
async fn a_hardened_postgres_yields_no_finding_and_a_plain_role_cannot_vouch_for_pg_hba() {
    let hba = "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n";
    let Some(pg) = IsolatedPostgres::start("audit_pg_hard", "", hba).await else {
        return;
    };
    let admin = Postgres::new(pg.login());
    let findings = admin.audit().await;
    assert_eq!(findings, vec![], "{}", pg.log());

    let client = admin.connect().await.expect("connect");
    client
        .batch_execute("CREATE ROLE app LOGIN PASSWORD 'app-secret'")
        .await
        .expect("create role");
    let app = Postgres::new(pg.login_as("app", "app-secret"));
    let findings = app.audit().await;
    let hba = of(&findings, AuditCheck::PostgresHbaTrust);
    assert_eq!(hba.len(), 1, "{findings:#?}");
    assert_eq!(
        (hba[0].status, hba[0].severity),
        (FindingStatus::NotChecked, Severity::Medium)
    );
    assert!(hba[0].fix.contains("superuser"), "{:?}", hba[0]);
    assert!(
        of(&findings, AuditCheck::PostgresListenAddresses).is_empty(),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn redis_without_protected_mode_or_password_is_found_and_a_hardened_one_is_clean() {
    let Some(weak) = TestRedis::start("audit_redis_weak", None, false).await else {
        return;
    };
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}/", weak.port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("protected-mode")
        .arg("no")
        .query_async::<()>(&mut conn)
        .await
        .expect("plant protected-mode no");
    let findings = weak.client().audit().await;
    let mut checks: Vec<AuditCheck> = findings.iter().map(|f| f.check).collect();
    checks.sort();
    assert_eq!(
        checks,
        [AuditCheck::RedisProtectedMode, AuditCheck::RedisRequirepass],
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f.status == FindingStatus::Weak && f.severity == Severity::Medium)
    );

    let Some(hard) = TestRedis::start("audit_redis_hard", Some("a-long-redis-secret"), false).await else {
        return;
    };
    assert_eq!(hard.client().audit().await, vec![]);
    // The wrong password: the audit cannot look, and says so for each of its checks.
    let wrong = Redis::new("127.0.0.1", hard.port, Some("wrong")).expect("client");
    let findings = wrong.audit().await;
    assert_eq!(findings.len(), 3, "{findings:#?}");
    assert!(findings.iter().all(|f| f.status == FindingStatus::NotChecked));
}

#[tokio::test]
async fn patroni_without_rest_auth_is_found_and_a_guarded_api_is_clean() {
    let Some(open) = TestCluster::start("audit_patroni_open", TestClusterConfig::default()).await else {
        return;
    };
    let findings = open.patroni().expect("client").audit().await;
    assert_eq!(findings.len(), open.nodes.len(), "{findings:#?}");
    assert!(
        findings
            .iter()
            .all(|f| f.check == AuditCheck::PatroniRestAuth && f.severity == Severity::High)
    );
    // Probing changed nothing: the cluster still has its leader and its configuration.
    open.wait_leader(std::time::Duration::from_secs(10))
        .await
        .expect("leader");
    drop(open);

    let config = TestClusterConfig {
        scope: "connect-audit-secure".into(),
        secure: true,
        ..TestClusterConfig::default()
    };
    let Some(secure) = TestCluster::start("audit_patroni_secure", config).await else {
        return;
    };
    // Credentials or not, the probe goes without them: a guarded API refuses it.
    assert_eq!(secure.patroni().expect("client").audit().await, vec![]);
}
