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

The real backends plug into the same ``Deployer`` through ``Backends``::

    host = ops.SshHost("prod-host", user="deploy", key_file="/home/ci/.ssh/id_ed25519")
    backends = ops.Backends(
        host=host,
        runtime=ops.Docker(host=host),                       # the server's engine, over the SSH connection
        router=ops.Haproxy("be_app", socket="/run/haproxy/admin.sock", host=host),
        database=ops.PatroniCluster(["http://patroni1.internal:8008"], user="connect", dbname="connect"),
        cache=ops.Redis("redis.internal", 6379),
    )
"""

from __future__ import annotations

from ._connect_ops import (
    ERROR_KINDS,
    Backends,
    CommandOutput,
    DiskUsage,
    Docker,
    Haproxy,
    LocalHost,
    MemoryCache,
    MemoryCluster,
    MemoryHost,
    MemoryRouter,
    MemoryRuntime,
    MemoryStack,
    PatroniCluster,
    PgTarget,
    Redis,
    Release,
    SshHost,
    __version__,
    list_backups,
    logical_backup,
    restore_logical,
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
    ShipProgress,
    Shipped,
    StepWarning,
    TrafficSwitched,
)
from ._types import (
    CacheInfo,
    Check,
    CheckReport,
    Color,
    ContainerInfo,
    Journal,
    LockInfo,
    LogicalBackup,
    Member,
    ObservedSlot,
    OperationRecord,
    Outcome,
    RedisBackup,
    ReloadReport,
    RestorePoint,
    RestoreReport,
    ServerStatus,
    SlotRecord,
    Status,
    StepRecord,
    SwitchReport,
)

__all__ = [
    "Backends",
    "CacheInfo",
    "Check",
    "CheckReport",
    "Color",
    "CommandOutput",
    "ConflictError",
    "ConnectError",
    "ContainerInfo",
    "CorruptError",
    "Deployer",
    "DiskUsage",
    "Docker",
    "DriftError",
    "ERRORS_BY_KIND",
    "ERROR_KINDS",
    "EVENTS_BY_NAME",
    "Event",
    "EventCallback",
    "FailedError",
    "Haproxy",
    "HealthAttempt",
    "InvalidInputError",
    "Journal",
    "LocalHost",
    "LockInfo",
    "LogicalBackup",
    "Member",
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
    "PatroniCluster",
    "PermissionDeniedError",
    "PgTarget",
    "Redis",
    "RedisBackup",
    "RefusedError",
    "Release",
    "ReloadReport",
    "RestorePoint",
    "RestoreReport",
    "ServerStatus",
    "SlotRecord",
    "SshHost",
    "Status",
    "StepFailed",
    "StepFinished",
    "StepRecord",
    "StepSkipped",
    "StepStarted",
    "ShipProgress",
    "Shipped",
    "StepWarning",
    "TrafficSwitched",
    "SwitchReport",
    "TimeoutError",
    "UnavailableError",
    "UnhealthyError",
    "UnsupportedError",
    "list_backups",
    "logical_backup",
    "restore_logical",
    "__version__",
]
