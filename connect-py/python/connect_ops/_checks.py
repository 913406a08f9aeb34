"""The verdicts of a preflight or a post-deploy verification (``CheckReport``), shared by the deploy's results
and the recovery's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

from ._data import Data
from ._kinds import CheckStatus


@dataclass(frozen=True)
class Check(Data):
    """One check of a preflight or post-deploy report."""

    name: str
    status: CheckStatus
    detail: str


@dataclass(frozen=True, repr=False)
class CheckReport(Data):
    """The checks of a preflight (runbook §1) or a post-deploy verification (runbook §5), in order."""

    checks: Tuple[Check, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """Whether no check failed (warnings do not stop a deploy)."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def failures(self) -> Tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def warnings(self) -> Tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "warn")

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        listing = "; ".join(f"{c.name} {c.status}" for c in self.checks)
        return f"<CheckReport {verdict}: {listing}>"

    def __str__(self) -> str:
        return "\n".join(f"{c.status.upper():<4} {c.name:<20} {c.detail}" for c in self.checks)


__all__ = ["Check", "CheckReport"]
