"""Docker from Python against the machine's Docker Engine: build a release, ship it with progress, prune.

The images are ``FROM scratch`` with one file (nothing can be pulled), in a repository of the test's own, removed
at the end. Without a running daemon the tests skip loudly; with ``CONNECT_REAL_TESTS=1`` they fail instead.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

import connect_ops as ops


@pytest.fixture(scope="module")
def docker() -> ops.Docker:
    try:
        return ops.Docker()
    except ops.UnavailableError as e:
        message = f"no Docker daemon answers ({e}): the real Docker tests cannot run"
        if os.environ.get("CONNECT_REAL_TESTS") == "1":
            pytest.fail(f"CONNECT_REAL_TESTS=1 but {message}")
        print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
        pytest.skip(message)


@pytest.fixture
def releases(docker: ops.Docker, tmp_path: Path) -> Iterator[Tuple[str, List[ops.Release]]]:
    """Two releases of a repository of this test's own, built from one-file contexts; removed afterwards."""
    repository = f"connect-py-test-{uuid.uuid4().hex[:12]}"
    built: List[ops.Release] = []
    try:
        for version in ("v1", "v2"):
            context = tmp_path / version
            context.mkdir()
            (context / "Dockerfile").write_text("FROM scratch\nCOPY VERSION /VERSION\n")
            (context / "VERSION").write_text(f"{repository} {version}\n")
            release = ops.Release(repository, version)
            docker.build_release(context, release)
            built.append(release)
        yield repository, built
    finally:
        for release in built:
            try:
                docker.remove_image(release.image, force=True)
            except ops.NotFoundError:
                pass


def test_build_release_tags_and_labels_the_image(docker: ops.Docker, releases: Tuple[str, List[ops.Release]]) -> None:
    _, (v1, v2) = releases
    one, two = docker.image(v1), docker.image(v2)
    assert one is not None and two is not None
    assert v1.image in one.tags and one.id.startswith("sha256:") and len(one.layers) == 1
    assert one.id != two.id
    assert docker.image("connect-py-test-absent:v0") is None


def test_build_failure_names_the_builder_error(docker: ops.Docker, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY missing.txt /missing.txt\n")
    with pytest.raises(ops.FailedError, match="missing.txt"):
        docker.build_release(tmp_path, ops.Release(f"connect-py-test-{uuid.uuid4().hex[:12]}", "v1"))


def test_ship_reports_progress_and_what_it_did(docker: ops.Docker, releases: Tuple[str, List[ops.Release]]) -> None:
    _, (v1, _) = releases
    progress: List[ops.TransferProgress] = []
    # The same engine as destination: it has the image, so the ship only sets the tag.
    report = docker.ship(docker, v1, on_progress=progress.append)
    info = docker.image(v1)
    assert info is not None and report.image_id == info.id
    assert (report.method, report.layers_sent, report.wire_bytes) == ("already_there", 0, 0)
    assert [p.event for p in progress] == ["loaded"] and progress[0].image_id == info.id


def test_ship_raises_what_the_progress_callback_raised(
    docker: ops.Docker, releases: Tuple[str, List[ops.Release]]
) -> None:
    _, (v1, _) = releases

    def broken(_: ops.TransferProgress) -> None:
        raise RuntimeError("progress bar broke")

    with pytest.raises(RuntimeError, match="progress bar broke"):
        docker.ship(docker, v1, on_progress=broken)
    with pytest.raises(ops.InvalidInputError, match="compression"):
        docker.ship(docker, v1, compression="brotli")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dest"):
        docker.ship(ops.MemoryRuntime(), v1)  # type: ignore[arg-type]


def test_prune_keeps_the_newest_and_the_protected(docker: ops.Docker, releases: Tuple[str, List[ops.Release]]) -> None:
    repository, (v1, v2) = releases
    # Both were built within one second, which is Docker's resolution of "newest": keep=2 keeps both, and
    # with keep=0 only the protected release stays.
    kept = docker.prune_releases(repository, keep=2)
    assert kept.removed == () and sorted(kept.kept) == sorted([v1.image, v2.image])
    pruned = docker.prune_releases(repository, keep=0, protect=[v2])
    assert (pruned.removed, pruned.kept) == ((v1.image,), (v2.image,))
    assert docker.image(v1) is None and docker.image(v2) is not None


def test_slot_options_are_checked_and_secrets_stay_names(tmp_path: Path) -> None:
    env = tmp_path / "app.env"
    env.write_text("DATABASE_URL=postgres://connect:hunter2@db/connect\nexport SESSION_KEY='s3cr3t'\n")
    docker = ops.Docker(secrets_file=env, health_probe="host", network="host")
    assert docker.secret_names == ["DATABASE_URL", "SESSION_KEY"]
    assert "hunter2" not in repr(docker)
    with pytest.raises(ops.InvalidInputError, match="health probe"):
        ops.Docker(health_probe="curl")  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError, match="empty"):
        ops.Docker(health_probe=[])
    with pytest.raises(TypeError, match="health_probe"):
        ops.Docker(health_probe=3)  # type: ignore[arg-type]
    with pytest.raises(ops.NotFoundError):
        ops.Docker(secrets_file=tmp_path / "absent.env")
    assert ops.Docker(health_probe=["wget", "-qO-", "{url}"], health_interval=0.5).location
