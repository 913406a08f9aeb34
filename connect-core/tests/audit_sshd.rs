//! The hardening audit's sshd checks and `--fix` against Debian's OpenSSH server on 127.0.0.1: planted
//! weaknesses are found, a hardened config yields none, the fix keeps the old session and a new one logs in,
//! and a fix that would lock the deploy user out is reverted.
#![cfg(feature = "ssh")]

use std::time::Duration;

use connect_core::audit::fix::{BEGIN_MARK, SshdFix, apply_safe_fixes};
use connect_core::audit::{AuditCheck, AuditReport, FindingStatus, HostAuditConfig, Severity, audit};
use connect_core::host::{Command, HostExt};
use connect_core::ssh::SshHost;
use connect_core::testing::Sshd;

const SSHD_CHECKS: [AuditCheck; 4] = [
    AuditCheck::SshdPasswordAuthentication,
    AuditCheck::SshdKbdInteractiveAuthentication,
    AuditCheck::SshdPermitRootLogin,
    AuditCheck::SshdPubkeyAuthentication,
];

fn config_path(sshd: &Sshd) -> String {
    sshd.dir().join("sshd_config").display().to_string()
}

/// Puts `lines` first in the server's config: sshd keeps the first value of a keyword.
fn plant(sshd: &Sshd, lines: &str) {
    let path = sshd.dir().join("sshd_config");
    let config = std::fs::read_to_string(&path).expect("read sshd_config");
    std::fs::write(&path, format!("{lines}{config}")).expect("write sshd_config");
}

fn host_config(sshd: &Sshd) -> HostAuditConfig {
    let mut config = HostAuditConfig::default();
    config.sshd_config = Some(config_path(sshd));
    config
}

fn sshd_findings(report: &AuditReport) -> Vec<AuditCheck> {
    let mut checks: Vec<AuditCheck> = report
        .findings
        .iter()
        .filter(|f| SSHD_CHECKS.contains(&f.check))
        .map(|f| f.check)
        .collect();
    checks.sort();
    checks
}

fn plan(sshd: &Sshd) -> SshdFix {
    let mut fix = SshdFix::default();
    fix.config_path = config_path(sshd);
    fix.reload = vec!["kill".into(), "-HUP".into(), sshd.pid().to_string()];
    fix.probe_deadline = Duration::from_secs(10);
    fix
}

#[tokio::test]
async fn every_planted_sshd_weakness_is_found_and_a_hardened_config_yields_none() {
    let Some(sshd) = Sshd::start("audit_sshd_weak").await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    // The harness's own config is hardened.
    let report = audit(&host, &host_config(&sshd), &[]).await;
    assert_eq!(sshd_findings(&report), vec![], "{}", report.text());

    plant(
        &sshd,
        "PasswordAuthentication yes\nKbdInteractiveAuthentication yes\nPermitRootLogin yes\nPubkeyAuthentication no\n",
    );
    let report = audit(&host, &host_config(&sshd), &[]).await;
    assert_eq!(sshd_findings(&report), SSHD_CHECKS.to_vec(), "{}", report.text());
    for f in report.findings.iter().filter(|f| SSHD_CHECKS.contains(&f.check)) {
        assert_eq!(f.status, FindingStatus::Weak);
        assert!(f.severity >= Severity::Medium && f.safe_fix.is_some(), "{f:?}");
    }
    assert!(report.into_result(Severity::High).is_err());
}

#[tokio::test]
async fn sshd_that_cannot_be_read_is_not_checked_never_a_pass() {
    let Some(sshd) = Sshd::start("audit_sshd_missing").await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let mut config = HostAuditConfig::default();
    config.sshd_config = Some(sshd.dir().join("no-such-config").display().to_string());
    let report = audit(&host, &config, &[]).await;
    let not_checked: Vec<_> = report
        .findings
        .iter()
        .filter(|f| SSHD_CHECKS.contains(&f.check))
        .collect();
    assert_eq!(not_checked.len(), 4, "{}", report.text());
    assert!(
        not_checked
            .iter()
            .all(|f| f.status == FindingStatus::NotChecked && f.severity == Severity::Medium)
    );
}

#[tokio::test]
async fn fix_hardens_sshd_and_keeps_the_session() {
    let Some(sshd) = Sshd::start("audit_sshd_fix").await else {
        return;
    };
    plant(
        &sshd,
        "PasswordAuthentication yes\nKbdInteractiveAuthentication yes\nPermitRootLogin yes\n",
    );
    use std::os::unix::fs::PermissionsExt;
    let config_file = sshd.dir().join("sshd_config");
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // sshd re-reads its config only on SIGHUP; the planted lines must be what the daemon runs with.
    sshd.reload().await;
    let old = SshHost::connect(sshd.config()).await.expect("connect");
    let config = host_config(&sshd);
    let report = audit(&old, &config, &[]).await;
    assert_eq!(sshd_findings(&report).len(), 3, "{}", report.text());

    let probe = sshd.config();
    let fixes = apply_safe_fixes(&old, &report, &plan(&sshd), Some(&probe)).await;
    let fix = fixes
        .iter()
        .find(|f| f.checks.contains(&AuditCheck::SshdPasswordAuthentication))
        .expect("an sshd fix");
    assert!(fix.applied, "{fix:?}");

    // The old connection is the same one (never reopened) and still runs programs.
    let out = old
        .run_checked(&Command::new(["echo", "still here"]))
        .await
        .expect("old session");
    assert_eq!(out.stdout_text().trim(), "still here");
    assert_eq!(old.connections_opened(), 1);
    // A new one logs in.
    let new = SshHost::connect(sshd.config())
        .await
        .expect("a new connection after the fix");
    new.run_checked(&Command::new(["true"]))
        .await
        .expect("new session runs");
    // The daemon re-read the file (sshd -T reads what the daemon reads) and the audit is clean.
    let after = audit(&old, &config, &[]).await;
    assert_eq!(sshd_findings(&after), vec![], "{}", after.text());
    let text = std::fs::read_to_string(sshd.dir().join("sshd_config")).expect("read");
    assert!(text.starts_with(BEGIN_MARK), "{text}");
    let mode = std::fs::metadata(&config_file)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the changed config keeps the original's mode");
}

#[tokio::test]
async fn a_fix_that_would_lock_the_user_out_is_reverted() {
    let Some(sshd) = Sshd::start("audit_sshd_lockout").await else {
        return;
    };
    if sshd.user() != "root" {
        // The lockout is simulated by `PermitRootLogin no` for a deploy user who is root.
        assert!(
            !connect_core::testing::real_tests_required(),
            "CONNECT_REAL_TESTS=1: the lockout test needs to run as root"
        );
        eprintln!("SKIP (real test) a_fix_that_would_lock_the_user_out_is_reverted: needs root");
        return;
    }
    plant(&sshd, "PermitRootLogin yes\n");
    sshd.reload().await;
    let before = std::fs::read_to_string(sshd.dir().join("sshd_config")).expect("read");
    let old = SshHost::connect(sshd.config()).await.expect("connect");
    let report = audit(&old, &host_config(&sshd), &[]).await;
    assert_eq!(sshd_findings(&report), vec![AuditCheck::SshdPermitRootLogin]);

    // `no` locks out the deploy user, who logs in as root: the new connection fails, the old one reverts.
    let mut locking = plan(&sshd);
    locking.permit_root_login = "no".into();
    locking.probe_deadline = Duration::from_secs(3);
    let probe = sshd.config();
    let fixes = apply_safe_fixes(&old, &report, &locking, Some(&probe)).await;
    let fix = &fixes[0];
    assert!(!fix.applied, "{fix:?}");
    assert!(
        fix.detail.contains("reverted, a new connection works again"),
        "{fix:?}"
    );
    assert!(
        fix.detail.contains("the server refused key"),
        "the new login was the one refused: {fix:?}"
    );
    let after = std::fs::read_to_string(sshd.dir().join("sshd_config")).expect("read");
    assert_eq!(after, before, "the original config is back");
    assert_eq!(old.connections_opened(), 1);
    old.run_checked(&Command::new(["true"]))
        .await
        .expect("old session");
    let new = SshHost::connect(sshd.config())
        .await
        .expect("new connections work again");
    new.run_checked(&Command::new(["true"]))
        .await
        .expect("new session runs");
}

#[tokio::test]
async fn fix_without_a_way_to_open_a_new_connection_changes_nothing() {
    let Some(sshd) = Sshd::start("audit_sshd_no_probe").await else {
        return;
    };
    plant(&sshd, "PasswordAuthentication yes\n");
    let before = std::fs::read_to_string(sshd.dir().join("sshd_config")).expect("read");
    let host = connect_core::LocalHost::new();
    let report = audit(&host, &host_config(&sshd), &[]).await;
    let fixes = apply_safe_fixes(&host, &report, &plan(&sshd), None).await;
    let fix = fixes
        .iter()
        .find(|f| f.checks.contains(&AuditCheck::SshdPasswordAuthentication))
        .expect("sshd fix");
    assert!(!fix.applied && fix.detail.contains("not applied"), "{fix:?}");
    let after = std::fs::read_to_string(sshd.dir().join("sshd_config")).expect("read");
    assert_eq!(after, before);
}

/// `sshd -T` shows no `Match` block: a block that lets passwords and root back in for some addresses, in an
/// included file, is found through `sshd -T -C` and named by its file and line; a `Group` block is a note.
#[tokio::test]
async fn a_match_block_that_weakens_sshd_for_some_connections_is_found() {
    let Some(sshd) = Sshd::start("audit_sshd_match").await else {
        return;
    };
    let host = SshHost::connect(sshd.config()).await.expect("connect");
    let included = sshd.dir().join("sshd_config.d");
    std::fs::create_dir_all(&included).expect("mkdir");
    std::fs::write(
        included.join("50-office.conf"),
        "Match Address 192.0.2.0/24 User deploy\n    PasswordAuthentication yes\n    PermitRootLogin yes\n",
    )
    .expect("write the included file");
    let path = sshd.dir().join("sshd_config");
    let config = std::fs::read_to_string(&path).expect("read sshd_config");
    std::fs::write(
        &path,
        format!(
            "{config}Include {}/*.conf\nMatch Group wheel\n    PasswordAuthentication yes\n",
            included.display()
        ),
    )
    .expect("write sshd_config");
    let report = audit(&host, &host_config(&sshd), &[]).await;
    let weak: Vec<(AuditCheck, &str)> = report
        .findings
        .iter()
        .filter(|f| f.status == FindingStatus::Weak)
        .map(|f| (f.check, f.subject.as_str()))
        .collect();
    let block = format!(
        "{}:1 Match Address 192.0.2.0/24 User deploy",
        included.join("50-office.conf").display()
    );
    let mut want = vec![
        (AuditCheck::SshdPasswordAuthentication, block.as_str()),
        (AuditCheck::SshdPermitRootLogin, block.as_str()),
    ];
    want.sort();
    let mut got: Vec<_> = weak
        .into_iter()
        .filter(|(c, _)| SSHD_CHECKS.contains(c))
        .collect();
    got.sort();
    assert_eq!(got, want, "{}", report.text());
    for f in report.findings.iter().filter(|f| f.subject == block) {
        assert!(
            f.safe_fix.is_none() && f.fix.starts_with("in this Match block"),
            "{f:?}"
        );
        assert!(
            f.message.contains("user=deploy") && f.message.contains("addr=192.0.2.0"),
            "{f:?}"
        );
    }
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.status == FindingStatus::Note && f.subject.ends_with("Match Group wheel")),
        "{}",
        report.text()
    );
}
