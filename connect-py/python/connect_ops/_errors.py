"""The exceptions of Connect Ops: one base, ``ConnectError``, and one subclass per kind of failure.

Each subclass is also the matching built-in where one exists, so ``except ValueError`` or
``except TimeoutError`` in an existing script keeps working. No class takes a built-in's name, so
``from connect_ops import *`` never shadows one:

=====================  ===========================  =========================
``kind``               class                        also a
=====================  ===========================  =========================
``invalid_input``      ``InvalidInputError``        ``ValueError``
``not_found``          ``NotFoundError``            ``LookupError``
``conflict``           ``ConflictError``
``refused``            ``RefusedError``
``permission_denied``  ``PermissionDeniedError``    ``PermissionError``
``unavailable``        ``UnavailableError``         ``ConnectionError``
``timeout``            ``OperationTimeoutError``    ``TimeoutError``
``unhealthy``          ``UnhealthyError``
``corrupt``            ``CorruptError``
``drift``              ``DriftError``
``failed``             ``FailedError``
``unsupported``        ``UnsupportedError``         ``NotImplementedError``
=====================  ===========================  =========================
"""

from __future__ import annotations

import builtins
from typing import Dict, Optional, Type

from ._kinds import ErrorKind


class ConnectError(Exception):
    """A Connect Ops failure. ``str(error)`` is the engine's full message: the operation, the kind, the
    target, what happened and, when known, the fix."""

    #: What went wrong, e.g. ``"timeout"`` (see ``connect_ops.ERROR_KINDS``).
    kind: ErrorKind = "failed"
    #: The operation that failed, e.g. ``"deploy.health_gate"``.
    operation: str = ""
    #: What it was applied to, e.g. a container or a HAProxy server.
    target: str = ""
    #: What happened, without the operation and target.
    message: str = ""
    #: How to fix it, when known.
    hint: Optional[str] = None
    #: Whether the same call, unchanged, may succeed later.
    retryable: bool = False


class InvalidInputError(ConnectError, ValueError):
    """The input is wrong (an invalid image reference, an unknown color): fix the call, do not retry."""

    kind = "invalid_input"


class NotFoundError(ConnectError, LookupError):
    """The named thing does not exist (an image, a container, a release in the journal)."""

    kind = "not_found"


class ConflictError(ConnectError):
    """Someone else holds it (the deploy lock) or it already exists."""

    kind = "conflict"


class RefusedError(ConnectError):
    """The other side understood and said no (preflight failed, HAProxy rejected a command)."""

    kind = "refused"


class PermissionDeniedError(ConnectError, PermissionError):
    """Authentication or permission failed."""

    kind = "permission_denied"


class UnavailableError(ConnectError, ConnectionError):
    """The other side could not be reached; often worth a retry."""

    kind = "unavailable"
    retryable = True


class OperationTimeoutError(ConnectError, builtins.TimeoutError):
    """A deadline passed before the condition held (a container that never turned healthy)."""

    kind = "timeout"
    retryable = True


class UnhealthyError(ConnectError):
    """A service answered but is not healthy."""

    kind = "unhealthy"


class CorruptError(ConnectError):
    """Stored data is damaged (a truncated journal)."""

    kind = "corrupt"


class DriftError(ConnectError):
    """The journal and what the router and runtime show disagree; ``Deployer.adopt()`` records the latter."""

    kind = "drift"


class FailedError(ConnectError):
    """A command or step ran and failed (a migration exited 1)."""

    kind = "failed"


class UnsupportedError(ConnectError, NotImplementedError):
    """The backend cannot do this operation."""

    kind = "unsupported"


#: The exception class of each kind.
ERRORS_BY_KIND: Dict[ErrorKind, Type[ConnectError]] = {
    cls.kind: cls
    for cls in (
        InvalidInputError,
        NotFoundError,
        ConflictError,
        RefusedError,
        PermissionDeniedError,
        UnavailableError,
        OperationTimeoutError,
        UnhealthyError,
        CorruptError,
        DriftError,
        FailedError,
        UnsupportedError,
    )
}


def _from_core(
    kind: ErrorKind,
    text: str,
    operation: str,
    target: str,
    message: str,
    hint: Optional[str],
    retryable: bool,
) -> ConnectError:
    """Called by the extension module to turn a ``connect_core::Error`` into its exception."""
    error = ERRORS_BY_KIND.get(kind, FailedError)(text)
    error.kind = kind
    error.operation = operation
    error.target = target
    error.message = message
    error.hint = hint
    error.retryable = retryable
    return error
