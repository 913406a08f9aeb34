"""Type stubs of the extension module (Rust, pyo3). Scripts use these through ``connect_ops``."""

from os import PathLike
from types import TracebackType
from typing import Any, Awaitable, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Type, Union, final

from ._kinds import AdminState, ErrorKind
from ._types import (
    BackupListing,
    CacheInfo,
    ContainerInfo,
    DestructiveChange,
    ImageInfo,
    LogicalBackup,
    Member,
    RedisBackup,
    ReloadReport,
    RestorePoint,
    MigrationTable,
    PruneReport,
    RestoreReport,
    ServerStatus,
    ShipProgress,
    ShipReport,
    SwitchReport,
)

__all__ = [
    "Backends",
    "CommandOutput",
    "DiskUsage",
    "Docker",
    "ERROR_KINDS",
    "Haproxy",
    "LocalHost",
    "MemoryCache",
    "MemoryCluster",
    "MemoryHost",
    "MemoryRouter",
    "MemoryRuntime",
    "MemoryStack",
    "PatroniCluster",
    "PgTarget",
    "Redis",
    "Release",
    "SshHost",
    "_Deployer",
    "_Operation",
    "__version__",
    "check_migrations",
    "lint_sql",
    "list_backups",
    "logical_backup",
    "prune_backups",
    "refresh_logging",
    "restore_logical",
    "verify_backup",
]

__version__: str
#: Every error kind's name, as in ``ConnectError.kind`` and ``MemoryStack.fail(..., kind)``.
ERROR_KINDS: List[ErrorKind]


@final
class Release:
    """A release of the app: its version and the image that carries it. Immutable, hashable."""

    def __new__(cls, repository: str, version: str) -> Release: ...
    @staticmethod
    def from_image(image: str, version: Optional[str] = None) -> Release: ...
    @staticmethod
    def from_dict(data: Dict[str, Any]) -> Release: ...
    @property
    def version(self) -> str: ...
    @property
    def image(self) -> str: ...
    @property
    def repository(self) -> str: ...
    @property
    def digest(self) -> Optional[str]: ...
    def to_dict(self) -> Dict[str, Optional[str]]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class MemoryHost:
    """A server in memory: files in a map, disks whose usage a script sets."""

    def __new__(cls, name: str = "memory-host") -> MemoryHost: ...
    def fail(
        self,
        operation: str,
        kind: ErrorKind,
        *,
        target: Optional[str] = None,
        times: Optional[int] = None,
        after: Optional[int] = None,
    ) -> None: ...
    def clear_faults(self, operation: str) -> None: ...
    def set_disk_usage(self, path: str, percent: int) -> None: ...
    def files(self) -> List[str]: ...

@final
class MemoryRuntime:
    """Docker in memory."""

    def __new__(cls) -> MemoryRuntime: ...
    def fail(
        self,
        operation: str,
        kind: ErrorKind,
        *,
        target: Optional[str] = None,
        times: Optional[int] = None,
        after: Optional[int] = None,
    ) -> None: ...
    def clear_faults(self, operation: str) -> None: ...
    def add_image(
        self,
        release: Union[Release, str],
        *,
        ready_after: float = 1.5,
        healthy: bool = True,
        error_lines: int = 0,
        migration_exit: int = 0,
        migration_takes: float = 0.0,
    ) -> None: ...
    def remove_image(self, release: Union[Release, str]) -> None: ...
    def logs(self, name: str, since_seconds: float = 300.0) -> List[str]: ...
    def crash(self, container: str) -> None: ...
    def is_serving(self, container: str) -> bool: ...
    def container_names(self) -> List[str]: ...

@final
class MemoryRouter:
    """A HAProxy backend in memory."""

    def __new__(cls, backend: str = "be_app") -> MemoryRouter: ...
    def fail(
        self,
        operation: str,
        kind: ErrorKind,
        *,
        target: Optional[str] = None,
        times: Optional[int] = None,
        after: Optional[int] = None,
    ) -> None: ...
    def clear_faults(self, operation: str) -> None: ...
    def add_server(self, name: str, address: str) -> None: ...
    def add_sessions(self, server: str, count: int, seconds: float) -> None: ...

@final
class MemoryCluster:
    """A Patroni cluster in memory."""

    def __new__(cls, members: Optional[Sequence[str]] = None) -> MemoryCluster: ...
    def fail(
        self,
        operation: str,
        kind: ErrorKind,
        *,
        target: Optional[str] = None,
        times: Optional[int] = None,
        after: Optional[int] = None,
    ) -> None: ...
    def clear_faults(self, operation: str) -> None: ...
    def kill_leader(self) -> None: ...
    def restore_points(self) -> List[str]: ...

@final
class MemoryCache:
    """Redis in memory."""

    def __new__(cls) -> MemoryCache: ...
    def fail(
        self,
        operation: str,
        kind: ErrorKind,
        *,
        target: Optional[str] = None,
        times: Optional[int] = None,
        after: Optional[int] = None,
    ) -> None: ...
    def clear_faults(self, operation: str) -> None: ...

@final
class MemoryStack:
    """The runbook's whole server in memory: HAProxy's checks probe the blue and green containers."""

    def __new__(cls) -> MemoryStack: ...
    @property
    def host(self) -> MemoryHost: ...
    @property
    def runtime(self) -> MemoryRuntime: ...
    @property
    def router(self) -> MemoryRouter: ...
    @property
    def database(self) -> MemoryCluster: ...
    @property
    def cache(self) -> MemoryCache: ...
    def add_image(
        self,
        release: Union[Release, str],
        *,
        ready_after: float = 1.5,
        healthy: bool = True,
        error_lines: int = 0,
        migration_exit: int = 0,
        migration_takes: float = 0.0,
    ) -> None: ...
    def fail(
        self,
        operation: str,
        kind: ErrorKind,
        *,
        target: Optional[str] = None,
        times: Optional[int] = None,
        after: Optional[int] = None,
    ) -> None: ...
    def clear_faults(self, operation: str) -> None: ...
    def backends(self) -> Backends: ...

_Path = Union[str, "PathLike[str]"]

@final
class CommandOutput:
    """What a program printed and how it exited."""

    @property
    def status(self) -> Optional[int]: ...
    @property
    def stdout(self) -> bytes: ...
    @property
    def stderr(self) -> bytes: ...
    @property
    def success(self) -> bool: ...
    def stdout_text(self) -> str: ...

@final
class DiskUsage:
    """How full a file system is."""

    @property
    def total_bytes(self) -> int: ...
    @property
    def available_bytes(self) -> int: ...
    @property
    def total_inodes(self) -> int: ...
    @property
    def free_inodes(self) -> int: ...
    @property
    def used_percent(self) -> int: ...

@final
class LocalHost:
    """This machine as the server."""

    def __new__(cls, name: str = "local", *, connect_timeout: float = 10.0) -> LocalHost: ...
    @property
    def name(self) -> str: ...
    def run(self, argv: Sequence[str], *, stdin: Optional[bytes] = None, check: bool = False) -> CommandOutput: ...
    def read_file(self, path: str) -> Optional[bytes]: ...
    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, create_new: bool = False) -> int: ...
    def rename(self, from_: str, to: str) -> None: ...
    def remove_file(self, path: str) -> None: ...
    def disk_usage(self, path: str) -> DiskUsage: ...

@final
class SshHost:
    """A server over SSH: one connection carries every program, file and stream."""

    def __new__(
        cls,
        host: str,
        port: int = 22,
        *,
        user: str,
        key_file: Optional[_Path] = None,
        passphrase: Optional[str] = None,
        agent: Union[bool, _Path, None] = None,
        known_hosts: Optional[_Path] = None,
        trust_on_first_use: bool = False,
        connect_timeout: float = 10.0,
        auth_timeout: float = 10.0,
        keepalive_interval: float = 15.0,
        keepalive_max: int = 3,
        max_sessions: int = 10,
    ) -> SshHost: ...
    @property
    def name(self) -> str: ...
    def run(self, argv: Sequence[str], *, stdin: Optional[bytes] = None, check: bool = False) -> CommandOutput: ...
    def read_file(self, path: str) -> Optional[bytes]: ...
    def write_file(self, path: str, data: bytes, *, mode: int = 0o644, create_new: bool = False) -> int: ...
    def rename(self, from_: str, to: str) -> None: ...
    def remove_file(self, path: str) -> None: ...
    def disk_usage(self, path: str) -> DiskUsage: ...
    def connections_opened(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> SshHost: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc_value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool: ...

_RealHost = Union[LocalHost, SshHost]
_AnyHost = Union[LocalHost, SshHost, MemoryHost]

@final
class Haproxy:
    """One backend of a running HAProxy, through the runtime API."""

    def __new__(
        cls,
        backend: str = "be_app",
        *,
        socket: Optional[str] = None,
        address: Optional[str] = None,
        host: Optional[_RealHost] = None,
        timeout: float = 5.0,
        state_file: Optional[str] = None,
        master_socket: Optional[str] = None,
    ) -> Haproxy: ...
    @property
    def backend(self) -> str: ...
    def servers(self) -> List[ServerStatus]: ...
    def server(self, name: str) -> ServerStatus: ...
    def set_state(self, server: str, state: AdminState) -> None: ...
    def set_weight(self, server: str, weight: int) -> None: ...
    def set_address(self, server: str, address: str, port: int) -> None: ...
    def wait_live(self, server: str, deadline: float = 10.0) -> ServerStatus: ...
    def wait_drained(self, server: str, deadline: float = 30.0) -> ServerStatus: ...
    def switch(self, from_: Optional[str], to: str, deadline: float = 10.0) -> SwitchReport: ...
    def save_state(self) -> None: ...
    def reload(self, deadline: float = 10.0) -> ReloadReport: ...
    def servers_async(self) -> Awaitable[List[ServerStatus]]: ...
    def set_state_async(self, server: str, state: AdminState) -> Awaitable[None]: ...
    def switch_async(self, from_: Optional[str], to: str, deadline: float = 10.0) -> Awaitable[SwitchReport]: ...

@final
class Docker:
    """A Docker Engine through its API."""

    def __new__(
        cls,
        *,
        socket: Optional[str] = None,
        host: Optional[_RealHost] = None,
        network: Optional[str] = None,
        secrets_file: Optional[_Path] = None,
        health_probe: Union[Literal["host"], Sequence[str], None] = None,
        health_interval: float = 2.0,
        health_retries: int = 3,
    ) -> Docker: ...
    @property
    def location(self) -> str: ...
    @property
    def api_version(self) -> str: ...
    @property
    def secret_names(self) -> List[str]: ...
    def engine_version(self) -> str: ...
    def inspect(self, name: str) -> Optional[ContainerInfo]: ...
    def containers(self, labels: Optional[Mapping[str, str]] = None) -> List[ContainerInfo]: ...
    def logs(self, name: str, since_seconds: float = 300.0) -> List[str]: ...
    def build_release(self, context_dir: _Path, release: Union[Release, str]) -> ImageInfo: ...
    def image(self, reference: Union[Release, str]) -> Optional[ImageInfo]: ...
    def ship(
        self,
        dest: Docker,
        release: Union[Release, str],
        *,
        on_progress: Optional[Callable[[ShipProgress], object]] = None,
        compression: Optional[Literal["zstd", "gzip", "none"]] = None,
        fallback_to_whole: bool = True,
    ) -> ShipReport: ...
    def prune_releases(
        self, repository: str, *, keep: int = 3, protect: Optional[Sequence[Union[Release, str]]] = None
    ) -> PruneReport: ...
    def remove_image(self, reference: str, *, force: bool = False) -> None: ...

@final
class PgTarget:
    """Where and as whom to connect to PostgreSQL."""

    def __new__(
        cls,
        user: str,
        dbname: str,
        *,
        host: str = "127.0.0.1",
        port: int = 5432,
        password: Optional[str] = None,
        connect_timeout: float = 5.0,
    ) -> PgTarget: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def dbname(self) -> str: ...

@final
class PatroniCluster:
    """The Patroni cluster: Patroni's REST API and the leader's PostgreSQL."""

    def __new__(
        cls,
        patroni_urls: Sequence[str],
        *,
        user: str,
        dbname: str,
        password: Optional[str] = None,
        connect_timeout: float = 5.0,
        check_query: Optional[str] = None,
    ) -> PatroniCluster: ...
    def members(self) -> List[Member]: ...
    def leader(self) -> Member: ...
    def switchover(self, candidate: Optional[str] = None) -> Member: ...
    def check_query(self) -> int: ...
    def restore_point(self, name: str) -> RestorePoint: ...
    def leader_target(self) -> PgTarget: ...

@final
class Redis:
    """A Redis server."""

    def __new__(
        cls, host: str = "127.0.0.1", port: int = 6379, *, password: Optional[str] = None, deadline: float = 60.0
    ) -> Redis: ...
    @property
    def target(self) -> str: ...
    def ping(self) -> None: ...
    def info(self) -> CacheInfo: ...
    def save(self) -> CacheInfo: ...
    def backup(self, host: _AnyHost, dest_dir: str) -> RedisBackup: ...

def logical_backup(
    host: _AnyHost, source: PgTarget, label: str, *, dir: str, bin_dir: Optional[str] = None
) -> LogicalBackup: ...
def restore_logical(
    host: _AnyHost,
    target: PgTarget,
    dump: str,
    *,
    dir: str,
    bin_dir: Optional[str] = None,
    jobs: int = 2,
    expected_sha256: Optional[str] = None,
    allow_other_database: bool = False,
    maintenance_db: str = "postgres",
) -> RestoreReport: ...
def list_backups(host: _AnyHost, dir: str, database: str) -> List[str]: ...
def verify_backup(host: _AnyHost, path: str, *, dir: str, bin_dir: Optional[str] = None) -> BackupListing: ...
def prune_backups(host: _AnyHost, dir: str, database: str, *, keep: int) -> List[str]: ...
def check_migrations(target: PgTarget) -> List[MigrationTable]: ...
def lint_sql(sql: str) -> List[DestructiveChange]: ...
def refresh_logging() -> None: ...

@final
class Backends:
    """The server, container runtime, router, database cluster and cache of one deployment."""

    def __new__(
        cls,
        *,
        host: _AnyHost,
        runtime: Union[Docker, MemoryRuntime],
        router: Union[Haproxy, MemoryRouter],
        database: Union[PatroniCluster, MemoryCluster],
        cache: Union[Redis, MemoryCache],
    ) -> Backends: ...

_RawCallback = Optional[Callable[[str], None]]

@final
class _Deployer:
    def __new__(
        cls,
        backends: Union[Backends, MemoryStack],
        *,
        holder: Optional[str] = None,
        state_dir: str = "/opt/connect/state",
        app: str = "connect",
        env: Optional[Mapping[str, str]] = None,
        migration: Optional[Sequence[str]] = None,
        container_port: int = 3000,
        health_path: str = "/api/health",
        smoke_paths: Optional[Sequence[str]] = None,
        stop_grace: float = 10.0,
        health_deadline: float = 60.0,
        drain_deadline: float = 30.0,
        router_deadline: float = 10.0,
        disk_warn_percent: int = 80,
        disk_fail_percent: int = 95,
        disk_paths: Optional[Sequence[str]] = None,
        max_error_lines: int = 10,
        old_color: str = "warm_standby",
        retire_after: Optional[float] = None,
        lock_lease: float = 30.0,
        min_free_inodes_percent: int = 5,
        max_clock_skew: float = 2.0,
        migration_deadline: float = 1800.0,
        ports: Tuple[int, int] = (3000, 3001),
    ) -> _Deployer: ...
    @staticmethod
    def from_config(path: Union[str, PathLike[str]]) -> _Deployer: ...
    @property
    def holder(self) -> str: ...
    def app(self) -> str: ...
    def deploy(self, release: Union[Release, str], on_event: _RawCallback = None) -> str: ...
    def deploy_async(self, release: Union[Release, str], on_event: _RawCallback = None) -> Awaitable[str]: ...
    def rollback(self, on_event: _RawCallback = None) -> str: ...
    def rollback_async(self, on_event: _RawCallback = None) -> Awaitable[str]: ...
    def rollback_to(self, version: str, on_event: _RawCallback = None) -> str: ...
    def rollback_to_async(self, version: str, on_event: _RawCallback = None) -> Awaitable[str]: ...
    def retire_standby(self, on_event: _RawCallback = None) -> str: ...
    def retire_standby_async(self, on_event: _RawCallback = None) -> Awaitable[str]: ...
    def start_deploy(self, release: Union[Release, str]) -> _Operation: ...
    def start_rollback(self) -> _Operation: ...
    def start_rollback_to(self, version: str) -> _Operation: ...
    def status(self) -> str: ...
    def status_async(self) -> Awaitable[str]: ...
    def preflight(self) -> str: ...
    def preflight_async(self) -> Awaitable[str]: ...
    def verify(self, color: Optional[str] = None, since_seconds: float = 300.0) -> str: ...
    def verify_async(self, color: Optional[str] = None, since_seconds: float = 300.0) -> Awaitable[str]: ...
    def adopt(self) -> str: ...
    def adopt_async(self) -> Awaitable[str]: ...
    def break_lock(self) -> str: ...
    def break_lock_async(self) -> Awaitable[str]: ...
    def journal(self) -> str: ...
    def journal_async(self) -> Awaitable[str]: ...

@final
class _Operation:
    @property
    def done(self) -> bool: ...
    def next_event(self) -> Optional[str]: ...
    def next_event_async(self) -> Awaitable[Optional[str]]: ...
    def result(self) -> str: ...
