//! `connect-ops audit` as CI runs it, against real programs started here on 127.0.0.1: the test sshd as the
//! server (reached over SSH from the config file, as in production) with password and root login planted,
//! Redis without protected mode or password, an HAProxy-style admin socket and a backup directory others
//! can read, an app env file others can read; Patroni and PostgreSQL configured but not running. The audit
//! finds each weakness and exits 6; `--fix` hardens sshd (a new connection logs in while the command's own
//! stays open) and the modes, and leaves the rest reported.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use connect_core::host::{Command, HostExt};
use connect_core::ssh::SshHost;
use connect_core::testing::{Sshd, free_port};
use connect_db::testing::TestRedis;
use connect_examples::testing::connect_ops_in;
use serde_json::Value;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// The weak lines go first (sshd keeps a keyword's first value) and the daemon re-reads them.
async fn plant_weak_sshd(sshd: &Sshd) {
    let path = sshd.dir().join("sshd_config");
    let config = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        format!("PasswordAuthentication yes\nPermitRootLogin yes\n{config}"),
    )
    .expect("write");
    sshd.reload().await;
}

fn findings(report: &Value) -> Vec<(String, String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap_or("").to_string(),
                f["status"].as_str().unwrap_or("").to_string(),
                f["subject"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has(report: &Value, check: &str, status: &str) -> bool {
    findings(report).iter().any(|(c, s, _)| c == check && s == status)
}

#[tokio::test]
async fn audit_finds_the_planted_weaknesses_and_fix_hardens_what_is_safe_keeping_the_session() {
    let Some(sshd) = Sshd::start("audit_cli").await else {
        return;
    };
    let Some(redis) = TestRedis::start("audit_cli", None, false).await else {
        return;
    };
    plant_weak_sshd(&sshd).await;
    let planted = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CONFIG",
            "SET",
            "protected-mode",
            "no",
        ])
        .output()
        .expect("redis-cli runs");
    assert_eq!(String::from_utf8_lossy(&planted.stdout).trim(), "OK");

    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let backups = d.join("backups");
    std::fs::create_dir(&backups).expect("mkdir");
    std::fs::write(backups.join("connect-1.dump"), "rows").expect("dump");
    std::fs::set_permissions(&backups, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        backups.join("connect-1.dump"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let state = d.join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let admin = d.join("admin.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&admin).expect("bind admin socket");
    std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let env_file = d.join("app.env");
    std::fs::write(&env_file, "SECRET=x\n").expect("env file");
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (closed_pg, closed_patroni) = (free_port(), free_port());
    let config = format!(
        r#"state_dir = "{state}"
[server]
host = "127.0.0.1"
port = {port}
user = "{user}"
key_file = "{key}"
known_hosts = "{known}"
ssh_config = false
[docker]
socket = "{d}/no-docker.sock"
[haproxy]
admin_socket = "{admin}"
[database]
patroni = ["http://127.0.0.1:{closed_patroni}"]
port = {closed_pg}
backup_dir = "{backups}"
[redis]
port = {redis_port}
[app]
image = "connect"
env_file = "{env}"
[audit]
sshd_config = "{sshd_config}"
sshd_reload = ["kill", "-HUP", "{pid}"]
"#,
        state = state.display(),
        port = sshd.port(),
        user = sshd.user(),
        key = sshd.client_key().display(),
        known = sshd.known_hosts().display(),
        d = d.display(),
        admin = admin.display(),
        backups = backups.display(),
        redis_port = redis.port,
        env = env_file.display(),
        sshd_config = sshd.dir().join("sshd_config").display(),
        pid = sshd.pid(),
    );
    std::fs::write(d.join("connect.toml"), config).expect("config");

    let out = connect_ops_in(d, &["audit", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    for check in [
        "sshd.password_authentication",
        "sshd.permit_root_login",
        "redis.protected_mode",
        "redis.requirepass",
        "haproxy.admin_socket",
        "files.backups",
        "files.secrets",
    ] {
        assert!(has(&report, check, "weak"), "{check} not found: {report:#}");
    }
    // Configured but not running: not checked, never a silent pass.
    for check in [
        "patroni.rest_auth",
        "postgres.listen_addresses",
        "postgres.hba_trust",
    ] {
        assert!(has(&report, check, "not_checked"), "{check}: {report:#}");
    }
    for check in [
        "files.journal",
        "sshd.kbd_interactive_authentication",
        "redis.bind",
        "docker.socket",
    ] {
        assert!(
            !has(&report, check, "weak"),
            "{check} is not weak here: {report:#}"
        );
    }
    // Text for people, the same verdict.
    let text = connect_ops_in(d, &["audit"]);
    assert_eq!(text.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&text.stdout).contains("HIGH     sshd.password_authentication"));

    let fixed = connect_ops_in(d, &["--json", "audit", "--fix"]);
    assert_eq!(
        fixed.status.code(),
        Some(6),
        "Redis and the database are still reported"
    );
    let stdout = String::from_utf8_lossy(&fixed.stdout);
    let report: Value = serde_json::from_str(stdout.lines().next().unwrap_or("")).expect("the report first");
    let fixes = report["fixes"].as_array().expect("fixes");
    assert!(fixes.iter().all(|f| f["applied"] == true), "{report:#}");
    let sshd_fix = fixes
        .iter()
        .find(|f| {
            f["change"]
                .as_str()
                .unwrap_or("")
                .contains("PasswordAuthentication no")
        })
        .expect("the sshd fix");
    assert!(
        sshd_fix["detail"]
            .as_str()
            .unwrap_or("")
            .contains("a new connection logged in while this one stayed open"),
        "{sshd_fix:#}"
    );
    for check in [
        "sshd.password_authentication",
        "sshd.permit_root_login",
        "haproxy.admin_socket",
        "files.backups",
        "files.secrets",
    ] {
        assert!(
            !has(&report, check, "weak"),
            "{check} still reported after --fix: {report:#}"
        );
    }
    assert!(
        has(&report, "redis.requirepass", "weak"),
        "not a safe fix: reported, not changed"
    );
    assert_eq!(mode(&backups) & 0o077, 0);
    assert_eq!(mode(&backups.join("connect-1.dump")) & 0o077, 0);
    assert_eq!(mode(&admin) & 0o007, 0);
    assert_eq!(mode(&env_file) & 0o077, 0);
    // The server still takes new logins, by key.
    let host = SshHost::connect(sshd.config())
        .await
        .expect("a new login after --fix");
    host.run_checked(&Command::new(["true"])).await.expect("runs");
    let after = std::fs::read_to_string(sshd.dir().join("sshd_config")).expect("read");
    assert!(after.starts_with(connect_core::audit::fix::BEGIN_MARK), "{after}");

    // CI's threshold: nothing critical is left.
    let ci = connect_ops_in(d, &["audit", "--fail-on", "critical"]);
    assert_eq!(
        ci.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ci.stdout)
    );
}
