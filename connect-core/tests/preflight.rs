//! Preflight checks on a real host: LocalHost always, SshHost against a test sshd; a fake Docker daemon on a
//! unix socket answers `/_ping`.

use connect_core::LocalHost;
use connect_core::engine::CheckStatus;
use connect_core::host::Host;
use connect_core::preflight::{HostCheckKind, PreflightConfig, preflight};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fake_docker(path: &std::path::Path) {
    let listener = tokio::net::UnixListener::bind(path).expect("bind");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nApi-Version: 1.43\r\nContent-Length: 2\r\n\r\nOK")
                    .await;
            });
        }
    });
}

async fn check_host(host: &dyn Host, dir: &std::path::Path) {
    let sock = dir.join("docker.sock");
    fake_docker(&sock);
    let dir_s = dir.to_str().expect("utf-8").to_string();
    let mut config = PreflightConfig::default();
    config.disk_paths = vec![dir_s.clone()];
    config.docker_socket = Some(sock.to_str().expect("utf-8").into());
    config.disk_warn_percent = 100;
    config.disk_fail_percent = 100;
    config.min_free_inodes_percent = 0;
    let report = preflight(host, &config).await;
    let kinds: Vec<_> = report.checks.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            HostCheckKind::Reachable,
            HostCheckKind::DiskUsage,
            HostCheckKind::FreeInodes,
            HostCheckKind::Docker,
            HostCheckKind::ClockSkew
        ],
        "{report:#?}"
    );
    assert!(report.passed(), "{report:#?}");
    let skew = report
        .checks
        .last()
        .and_then(|c| c.measured)
        .expect("skew measured");
    assert!(skew.abs() < 2000.0, "same machine, same clock: {skew} ms");

    // A 0 % threshold fails the disk; a dead docker socket fails the docker check.
    let mut strict = config;
    strict.disk_fail_percent = 0;
    strict.disk_warn_percent = 0;
    strict.docker_socket = Some(format!("{dir_s}/no-docker.sock"));
    let report = preflight(host, &strict).await;
    let failed: Vec<_> = report.failures().map(|c| c.kind).collect();
    assert_eq!(
        failed,
        [HostCheckKind::DiskUsage, HostCheckKind::Docker],
        "{report:#?}"
    );
    let docker = report
        .checks
        .iter()
        .find(|c| c.kind == HostCheckKind::Docker)
        .expect("docker");
    assert!(docker.detail.contains("start the daemon"), "{}", docker.detail);
    assert!(
        report
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Fail || !c.detail.is_empty())
    );
}

#[tokio::test]
async fn preflight_on_the_local_host() {
    let dir = tempfile::tempdir().expect("temp");
    check_host(&LocalHost::new(), dir.path()).await;
}

#[cfg(feature = "ssh")]
#[tokio::test]
async fn preflight_over_ssh() {
    let Some(sshd) = connect_core::testing::Sshd::start("preflight_over_ssh").await else {
        return;
    };
    let host = connect_core::ssh::SshHost::connect(sshd.config())
        .await
        .expect("connect");
    let dir = sshd.dir().join("preflight");
    std::fs::create_dir(&dir).expect("mkdir");
    check_host(&host, &dir).await;
}

#[tokio::test]
async fn an_unreachable_host_stops_the_preflight_with_one_failure() {
    let host = connect_core::memory::MemoryHost::new("down");
    host.faults()
        .fail("host.run", connect_core::ErrorKind::Unavailable);
    let report = preflight(&host, &PreflightConfig::default()).await;
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.checks[0].kind, HostCheckKind::Reachable);
    assert_eq!(report.checks[0].status, CheckStatus::Fail);
}
