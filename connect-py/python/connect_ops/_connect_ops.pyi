"""Type stubs of the extension module (Rust, pyo3). Scripts use these through ``connect_ops``."""

from typing import Any, Awaitable, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Union, final

__all__ = [
    "Backends",
    "ERROR_KINDS",
    "MemoryCache",
    "MemoryCluster",
    "MemoryHost",
    "MemoryRouter",
    "MemoryRuntime",
    "MemoryStack",
    "Release",
    "_Deployer",
    "_Operation",
    "__version__",
]

__version__: str
#: Every error kind's name, as in ``ConnectError.kind`` and ``MemoryStack.fail(..., kind)``.
ERROR_KINDS: List[str]

_Kind = Literal[
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
        kind: _Kind,
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
        kind: _Kind,
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
    ) -> None: ...
    def remove_image(self, release: Union[Release, str]) -> None: ...
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
        kind: _Kind,
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
        kind: _Kind,
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
        kind: _Kind,
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
    ) -> None: ...
    def fail(
        self,
        operation: str,
        kind: _Kind,
        *,
        target: Optional[str] = None,
        times: Optional[int] = None,
        after: Optional[int] = None,
    ) -> None: ...
    def clear_faults(self, operation: str) -> None: ...
    def backends(self) -> Backends: ...

@final
class Backends:
    """The server, container runtime, router, database cluster and cache of one deployment."""

    def __new__(
        cls,
        *,
        host: MemoryHost,
        runtime: MemoryRuntime,
        router: MemoryRouter,
        database: MemoryCluster,
        cache: MemoryCache,
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
    ) -> _Deployer: ...
    @property
    def holder(self) -> str: ...
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
