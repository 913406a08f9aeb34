//! Patroni's REST API and PostgreSQL reached through one SSH connection (connect-core's `SshHost` to a
//! real sshd on 127.0.0.1), as a deploy from a CI runner reaches a server whose ports are not exposed.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use crate::common::{LEADERSHIP, app_database, cluster};
use connect_core::ErrorKind;
use connect_core::database::Role;
use connect_core::ssh::SshHost;
use connect_core::testing::{Sshd, free_port};
use connect_db::backup::{BackupConfig, logical_backup};
use connect_db::restore::{RestoreOptions, restore_logical};
use connect_db::{HealthCheck, Postgres, Readiness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_and_postgres_answer_through_one_ssh_connection() {
    let test = "patroni_and_postgres_through_ssh";
    let Some(c) = cluster(test).await else {
        return;
    };
    let Some(sshd) = Sshd::start(test).await else {
        return;
    };
    let _g = LEADERSHIP.read().await;
    let direct = app_database(c, "via_ssh", 42).await;
    let host = SshHost::connect(sshd.config()).await.expect("ssh connect");
    let remote = c.client("via_ssh").through(Arc::new(host.clone()));

    let leader = remote.patroni().leader().await.expect("leader through ssh");
    assert_eq!(
        leader.member.name,
        direct.patroni().leader().await.expect("leader").member.name
    );
    let members = remote.patroni().members().await.expect("members");
    assert_eq!(members.len(), 2, "{members:?}");
    assert_eq!(members.iter().filter(|m| m.role == Role::Leader).count(), 1);
    let api = leader.api_url.clone().expect("api_url");
    assert!(
        remote
            .patroni()
            .health(&api, HealthCheck::Primary)
            .await
            .expect("health")
    );
    assert!(
        !remote
            .patroni()
            .health(&api, HealthCheck::Replica)
            .await
            .expect("health")
    );
    assert_eq!(
        remote.patroni().history().await.expect("history through ssh"),
        direct.patroni().history().await.expect("history")
    );

    let pg = remote.leader_postgres().await.expect("leader postgres");
    assert!(pg.via().is_some());
    assert_eq!(pg.readiness().await, Readiness::Accepting);
    assert_eq!(remote.check_query_count().await.expect("check query"), 42);
    assert!(!pg.is_in_recovery().await.expect("recovery"));

    // A port where nothing listens on the server: no response, an Unavailable error, and the SSH connection
    // survives the refused channel.
    let nowhere =
        Postgres::new(remote.login().clone().at("127.0.0.1", free_port())).through(Arc::new(host.clone()));
    assert_eq!(nowhere.readiness().await, Readiness::NoResponse);
    let e = nowhere.connect().await.expect_err("nothing listens");
    assert!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Refused),
        "{e}"
    );

    // A Patroni node that does not answer (first in the list, as a crashed leader would be) is skipped
    // through the host as it is directly.
    let mut urls = vec![format!("http://127.0.0.1:{}", free_port())];
    urls.extend(c.rest_urls());
    let with_dead_node = connect_db::PatroniCluster::new(&urls, remote.login().clone())
        .expect("urls")
        .through(Arc::new(host.clone()));
    assert_eq!(
        with_dead_node
            .patroni()
            .leader()
            .await
            .expect("the live nodes answer")
            .member
            .name,
        leader.member.name
    );

    assert_eq!(remote.check_query_count().await.expect("check query again"), 42);

    // A backup and a restore over the same connection: the wrapper's quoting and the password on stdin
    // survive the remote shell; the dump is private there.
    let dir = tempfile::tempdir().expect("temp dir");
    let backups = dir.path().join("ssh-backups");
    let bin = connect_db::testing::pg_bin("pg_dump");
    let cfg = BackupConfig::new(backups.to_str().expect("utf-8"))
        .bin_dir(bin.parent().and_then(|p| p.to_str()).expect("bin dir"));
    let target = pg.target().clone();
    let b = logical_backup(&host, &target, "ssh1", &cfg)
        .await
        .expect("backup over ssh");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&backups), 0o700);
    assert_eq!(mode(std::path::Path::new(&b.path)), 0o600);
    restore_logical(&host, &target, &b.path, &cfg, &RestoreOptions::default())
        .await
        .expect("restore over ssh");
    assert_eq!(remote.check_query_count().await.expect("after the restore"), 42);
    assert_eq!(host.connections_opened(), 1);
    assert_eq!(
        sshd.accepted_connections(),
        1,
        "everything went over one SSH connection"
    );
}
