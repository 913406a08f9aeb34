"""Connect Ops for Python: zero-downtime blue-green deploys of the Connect service, with instant rollback.

The same engine as the Rust SDK (``connect-core``), with the same journal, lock, health gates and undo:

    import connect_ops as ops

    stack = ops.MemoryStack()                      # the whole server in memory; real backends plug in the same way
    stack.add_image("connect:20251014-0900")
    deployer = ops.Deployer(stack)
    print(deployer.preflight())                    # runbook §1
    record = deployer.deploy("connect:20251014-0900", on_event=print)
    print(deployer.verify())                       # runbook §5
    deployer.rollback()                            # one router call back to the warm standby

Every failure raises a subclass of :class:`ConnectError` naming the operation, the target and the fix.
Backups come with connect-db; the SSH/local hosts, Docker, HAProxy, Patroni and Redis backends appear here as
their crates land (``Backends`` then accepts them; ``Deployer`` does not change).
"""

from __future__ import annotations

from ._connect_ops import (
    ERROR_KINDS,
    Backends,
    MemoryCache,
    MemoryCluster,
    MemoryHost,
    MemoryRouter,
    MemoryRuntime,
    MemoryStack,
    Release,
    __version__,
)
from ._deployer import Deployer, EventCallback, OldColorPolicy, Operation
from ._errors import (
    ERRORS_BY_KIND,
    ConflictError,
    ConnectError,
    CorruptError,
    DriftError,
    FailedError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RefusedError,
    TimeoutError,
    UnavailableError,
    UnhealthyError,
    UnsupportedError,
)
from ._events import (
    EVENTS_BY_NAME,
    Event,
    HealthAttempt,
    OperationFinished,
    OperationStarted,
    OtherEvent,
    StepFailed,
    StepFinished,
    StepSkipped,
    StepStarted,
    StepWarning,
)
from ._types import (
    Check,
    CheckReport,
    Color,
    ContainerInfo,
    Journal,
    LockInfo,
    ObservedSlot,
    OperationRecord,
    Outcome,
    RestorePoint,
    ServerStatus,
    SlotRecord,
    Status,
    StepRecord,
)

__all__ = [
    "ERRORS_BY_KIND",
    "ERROR_KINDS",
    "EVENTS_BY_NAME",
    "Backends",
    "Check",
    "CheckReport",
    "Color",
    "ConflictError",
    "ConnectError",
    "ContainerInfo",
    "CorruptError",
    "Deployer",
    "DriftError",
    "Event",
    "EventCallback",
    "FailedError",
    "HealthAttempt",
    "InvalidInputError",
    "Journal",
    "LockInfo",
    "MemoryCache",
    "MemoryCluster",
    "MemoryHost",
    "MemoryRouter",
    "MemoryRuntime",
    "MemoryStack",
    "NotFoundError",
    "ObservedSlot",
    "OldColorPolicy",
    "Operation",
    "OperationFinished",
    "OperationRecord",
    "OperationStarted",
    "OtherEvent",
    "Outcome",
    "PermissionDeniedError",
    "RefusedError",
    "Release",
    "RestorePoint",
    "ServerStatus",
    "SlotRecord",
    "Status",
    "StepFailed",
    "StepFinished",
    "StepRecord",
    "StepSkipped",
    "StepStarted",
    "StepWarning",
    "TimeoutError",
    "UnavailableError",
    "UnhealthyError",
    "UnsupportedError",
    "__version__",
]
