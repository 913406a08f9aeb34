"""The words Connect Ops shares with its engine, as ``Literal`` types: a typo in a script's comparison
(``record.outcome.result == "succeded"``) is a mypy error instead of a branch that never runs.

They are the engine's own spellings (``connect_core::vocabulary``, ``connect_core::ErrorKind``); a newer
engine may send a word this version does not list, which then arrives unchanged as a ``str``.
"""

from __future__ import annotations

from typing import Literal, Tuple, get_args

#: What went wrong (``ConnectError.kind``); each has its exception class in ``ERRORS_BY_KIND``.
ErrorKind = Literal[
    "invalid_input",
    "not_found",
    "conflict",
    "refused",
    "permission_denied",
    "unavailable",
    "timeout",
    "unhealthy",
    "corrupt",
    "drift",
    "failed",
    "unsupported",
]

#: The two app slots behind HAProxy: blue is the runbook's app1, green its app2.
Color = Literal["blue", "green"]

#: A step of a deploy or rollback, in the runbook's order.
StepName = Literal[
    "lock",
    "reconcile",
    "preflight",
    "ship",
    "stage_image",
    "check_migrations",
    "backup",
    "restore_point",
    "migrate",
    "start_idle",
    "health_gate",
    "canary",
    "switch",
    "drain",
    "verify",
    "watch",
    "switch_back",
    "balance",
    "retire",
    "prune",
    "hook",
    "maintenance",
    "record",
]

#: How one step ended.
StepStatus = Literal["ok", "skipped", "failed"]

#: What an operation was (``maintenance``: the lock held by a script, ``Deployer.lock()``).
OperationKind = Literal[
    "deploy", "instant_rollback", "full_rollback", "adopt", "retire", "prune", "maintenance"
]

#: How an operation ended (``Outcome.result``).
OutcomeResult = Literal["succeeded", "failed", "rolled_back", "interrupted"]

#: The verdict of one check of a preflight or verification.
CheckStatus = Literal["pass", "warn", "fail"]

#: A HAProxy server's administrative state.
AdminState = Literal["ready", "drain", "maint"]

#: Every value of each ``Literal``, for scripts that validate their own input.
ERROR_KIND_NAMES: Tuple[ErrorKind, ...] = get_args(ErrorKind)
STEP_NAMES: Tuple[StepName, ...] = get_args(StepName)

__all__ = [
    "AdminState",
    "CheckStatus",
    "Color",
    "ERROR_KIND_NAMES",
    "ErrorKind",
    "OperationKind",
    "OutcomeResult",
    "STEP_NAMES",
    "StepName",
    "StepStatus",
]
