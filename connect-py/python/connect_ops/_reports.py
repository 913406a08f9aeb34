"""Typed results of the chores around a deploy: images built and shipped, releases pruned, backups
checked, migration tables read, migration SQL linted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Tuple

from ._data import Data

#: How an image reached the server: it was there already (only the tag was set), only its missing layers
#: were sent, or the whole image (the fallback).
ShipMethod = Literal["already_there", "incremental", "whole"]
#: The compression on the wire.
ShipCompression = Literal["zstd", "gzip", "none"]
#: Whose migration table.
MigrationTool = Literal["prisma", "sqlx", "flyway"]
#: Where a migration stands.
MigrationState = Literal["applied", "unfinished", "failed", "rolled_back"]
#: What kind of destructive change a statement makes.
DestructiveKind = Literal["drop", "rename", "new_not_null", "alter_type"]


@dataclass(frozen=True)
class ImageInfo(Data):
    """An image an engine has."""

    id: str
    tags: Tuple[str, ...]
    layers: Tuple[str, ...]
    """Its layers' digests, bottom first."""
    size_bytes: int


@dataclass(frozen=True)
class TransferProgress(Data):
    """One report of ``Docker.ship``: ``planned`` (``layers_total``, ``layers_to_send``), ``layer_sent``
    (``digest``, ``bytes``), ``bytes`` (``sent`` on the wire so far) or ``loaded`` (``image_id``)."""

    event: Literal["planned", "layer_sent", "bytes", "loaded"]
    layers_total: Optional[int] = None
    layers_to_send: Optional[int] = None
    digest: Optional[str] = None
    bytes: Optional[int] = None
    sent: Optional[int] = None
    image_id: Optional[str] = None


@dataclass(frozen=True)
class ShipReport(Data):
    """What ``Docker.ship`` did."""

    image: str
    image_id: str
    method: ShipMethod
    compression: ShipCompression
    layers_total: int
    layers_sent: int
    archive_bytes: int
    wire_bytes: int
    took_seconds: float


@dataclass(frozen=True)
class PruneReport(Data):
    """What ``Docker.prune_releases`` removed and kept."""

    removed: Tuple[str, ...]
    kept: Tuple[str, ...]
    """The newest releases, the protected ones, and those a container still uses."""


@dataclass(frozen=True)
class BackupListing(Data):
    """What ``pg_restore --list`` says about a dump."""

    database: Optional[str]
    """The database it was dumped from."""
    entries: int
    """Its table-of-contents entries."""


@dataclass(frozen=True)
class Migration(Data):
    """One row of a migration table."""

    name: str
    state: MigrationState
    logs: Optional[str]
    started_unix: Optional[float]


@dataclass(frozen=True)
class MigrationTable(Data):
    """The migration table of one tool, its rows in order."""

    tool: MigrationTool
    migrations: Tuple[Migration, ...]

    @property
    def applied(self) -> Tuple[str, ...]:
        """The names of the applied migrations."""
        return tuple(m.name for m in self.migrations if m.state == "applied")


@dataclass(frozen=True)
class DestructiveChange(Data):
    """A statement the old color may not survive while both colors run (expand/contract)."""

    kind: DestructiveKind
    line: int
    """The 1-based line where the statement starts."""
    statement: str
