"""Typed results of the hardening audit (``connect_ops.audit``): each finding with its severity and fix, the
fixes ``fix=True`` applied, and the threshold check a CI job makes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Tuple

from ._data import Data, Raw

#: How bad a finding is, mildest first.
Severity = Literal["info", "low", "medium", "high", "critical"]
#: A weakness seen, a check that could not run, or a remark with nothing to judge.
FindingStatus = Literal["weak", "not_checked", "note"]

SEVERITIES: Tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class AuditFinding(Data):
    """What the audit saw: ``check`` is the dotted name (``sshd.password_authentication``, ``redis.bind``…)."""

    check: str
    severity: Severity
    status: FindingStatus
    subject: str
    """What it is about: a file, an address, a setting."""
    message: str
    fix: str
    safe_fix: Optional[str]
    """The kind of fix ``fix=True`` applies by itself (``sshd``, ``remove_mode_bits``), if any."""

    @classmethod
    def from_dict(cls, raw: Raw) -> AuditFinding:
        # Python is told the safe fix's kind; `fix=True` applies it.
        safe = raw.get("safe_fix")
        return super().from_dict({**raw, "safe_fix": None if safe is None else safe["kind"]})


@dataclass(frozen=True)
class AuditFix(Data):
    """A safe fix: what it changed (or would have), whether it is in place, and how it went."""

    checks: Tuple[str, ...]
    change: str
    applied: bool
    detail: str


@dataclass(frozen=True)
class AuditReport(Data):
    """Every finding, worst first, and the fixes applied (after ``fix=True`` the findings are what is left)."""

    findings: Tuple[AuditFinding, ...]
    fixes: Tuple[AuditFix, ...]

    def failing(self, severity: Severity = "medium") -> Tuple[AuditFinding, ...]:
        """The findings at or above ``severity``: what makes ``connect-ops audit --fail-on`` exit 6."""
        floor = SEVERITIES.index(severity)
        return tuple(f for f in self.findings if SEVERITIES.index(f.severity) >= floor)
