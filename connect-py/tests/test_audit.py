"""``connect_ops.audit``: the same hardening audit as ``connect-ops audit``, typed, on this machine as the server
(``host = "local"``), against files and an sshd config the test plants in its own directory."""

import os
import stat
from pathlib import Path

import pytest

import connect_ops as ops


def _config(tmp_path: Path) -> Path:
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "connect-1.dump").write_text("rows")
    os.chmod(backups, 0o755)
    os.chmod(backups / "connect-1.dump", 0o644)
    sshd_config = tmp_path / "sshd_config"
    sshd_config.write_text("PasswordAuthentication yes\n")
    free = tmp_path / "nothing-listens-here"
    config = tmp_path / "connect.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[server]\n"
        'host = "local"\n'
        "[docker]\n"
        f'socket = "{free}.docker.sock"\n'
        "[haproxy]\n"
        f'admin_socket = "{free}.admin.sock"\n'
        "[database]\n"
        f'backup_dir = "{backups}"\n'
        'patroni = ["http://127.0.0.1:1"]\n'
        "port = 1\n"
        "[redis]\n"
        "port = 1\n"
        "[app]\n"
        'image = "connect"\n'
        "[audit]\n"
        f'sshd_config = "{sshd_config}"\n'
    )
    return config


def test_audit_reports_planted_weaknesses_with_their_fix_and_unreachable_services_as_not_checked(
    tmp_path: Path,
) -> None:
    report = ops.audit(_config(tmp_path))
    assert isinstance(report, ops.AuditReport)
    by_check = {(f.check, f.status) for f in report.findings}
    assert ("files.backups", "weak") in by_check, report
    assert ("sshd.password_authentication", "weak") in by_check, report
    for check in ("patroni.rest_auth", "postgres.hba_trust", "redis.requirepass"):
        assert (check, "not_checked") in by_check, report
    backups = next(f for f in report.findings if f.check == "files.backups")
    assert backups.severity == "high" and backups.safe_fix == "remove_mode_bits" and "chmod" in backups.fix
    assert backups in report.failing("high")
    assert all(f.severity in ("high", "critical") for f in report.failing("high"))
    assert report.fixes == ()
    assert report.to_dict()["findings"][0]["check"] == report.findings[0].check


def test_fix_tightens_modes_and_leaves_sshd_alone_without_a_second_login(tmp_path: Path) -> None:
    config = _config(tmp_path)
    sshd_before = (tmp_path / "sshd_config").read_text()
    report = ops.audit(config, fix=True)
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((tmp_path / "backups" / "connect-1.dump").stat().st_mode) & 0o077 == 0
    assert "files.backups" not in {f.check for f in report.findings}
    sshd = next(x for x in report.fixes if "sshd.password_authentication" in x.checks)
    assert not sshd.applied and "not applied" in sshd.detail
    assert (tmp_path / "sshd_config").read_text() == sshd_before


def test_a_broken_config_raises_before_anything_is_audited(tmp_path: Path) -> None:
    config = tmp_path / "connect.toml"
    config.write_text('[server]\nhost = "local"\n[app]\nimage = "connect"\n[audit]\nfail_on = "severe"\n')
    with pytest.raises(ops.InvalidInputError, match=r"connect\.toml:6"):
        ops.audit(config)
