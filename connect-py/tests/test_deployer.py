"""The Deployer's operations on the in-memory server: deploys with their events, failures, rollbacks, checks."""

from __future__ import annotations

import json
import threading
from typing import List, Set

import pytest

import connect_ops as ops
from conftest import V1, V2


def test_deploy_reports_its_steps_as_events(deployer: ops.Deployer) -> None:
    events: List[ops.Event] = []
    record = deployer.deploy(V1, on_event=events.append)
    assert record.succeeded and record.kind == "deploy"
    assert record.release is not None and record.release.image == V1.image and record.release.digest
    assert (record.live_before, record.live_after) == (None, "blue")
    assert isinstance(events[0], ops.OperationStarted) and events[0].target == "blue"
    assert isinstance(events[-1], ops.OperationFinished) and events[-1].succeeded and events[-1].id == record.id
    finished = [e.step for e in events if isinstance(e, ops.StepFinished)]
    assert finished == ["reconcile", "preflight", "stage_image", "start_idle", "health_gate", "switch", "verify", "record"]
    skipped = {e.step: e.reason for e in events if isinstance(e, ops.StepSkipped)}
    assert skipped == {
        "check_migrations": "no migration configured",
        "backup": "no migration, and the policy backs up only before one",
        "restore_point": "no migration configured",
        "migrate": "no migration configured",
        "drain": "first deploy: no old color",
    }
    assert any(isinstance(e, ops.HealthAttempt) and e.color == "blue" and e.health == "healthy" for e in events)
    assert [s.step for s in record.steps if s.status == "ok"] == finished[:-1]
    assert "deploy v1: succeeded, live None -> blue" in repr(record)


def test_second_deploy_keeps_a_warm_standby(live_v2: ops.Deployer) -> None:
    status = live_v2.status()
    assert (status.live, status.standby) == ("green", "blue")
    assert status.releases == {"blue": "v1", "green": "v2"}
    assert status.differences == () and status.lock is None
    assert [r.release.version for r in status.recent if r.release] == ["v2", "v1"]
    admin = {s.color: s.server.admin for s in status.observed}
    assert admin == {"blue": "drain", "green": "ready"}
    green = status.observed[1].container
    assert green is not None and green.release == "v2" and green.health == "healthy"
    assert repr(status) == "<Status live=green standby=blue releases(blue=v1, green=v2)>"


def test_failed_health_gate_raises_unhealthy_and_leaves_traffic(stack: ops.MemoryStack) -> None:
    stack.add_image("connect:v3", ready_after=0.05, healthy=False)
    deployer = ops.Deployer(stack, holder="pytest")
    deployer.deploy(V1)
    events: List[ops.Event] = []
    with pytest.raises(ops.UnhealthyError) as info:
        deployer.deploy("connect:v3", on_event=events.append)
    assert "aborted at health_gate; traffic stayed on blue" in str(info.value)
    failed = [e for e in events if isinstance(e, ops.StepFailed)]
    assert [e.step for e in failed] == ["health_gate"]
    assert isinstance(events[-1], ops.OperationFinished) and not events[-1].succeeded
    assert deployer.status().live == "blue"
    assert stack.runtime.container_names() == ["connect_app1"]
    last = deployer.journal().history[-1]
    assert last.outcome.result == "failed" and last.outcome.step == "health_gate" and last.outcome.kind == "unhealthy"


def test_slow_release_times_out(stack: ops.MemoryStack) -> None:
    stack.add_image("connect:slow", ready_after=30)
    deployer = ops.Deployer(stack, holder="pytest", health_deadline=0.3)
    with pytest.raises(ops.OperationTimeoutError) as info:
        deployer.deploy("connect:slow")
    assert isinstance(info.value, TimeoutError) and info.value.retryable
    assert "raise the policy's health_deadline" in str(info.value)


def test_failed_verify_switches_back_to_the_standby(stack: ops.MemoryStack) -> None:
    stack.add_image("connect:noisy", ready_after=0.05, error_lines=50)
    deployer = ops.Deployer(stack, holder="pytest")
    deployer.deploy(V1)
    with pytest.raises(ops.UnhealthyError, match="rolled back; traffic is on blue again"):
        deployer.deploy("connect:noisy")
    assert deployer.journal().history[-1].outcome.result == "rolled_back"
    assert deployer.status().live == "blue"


def test_instant_and_full_rollback(live_v2: ops.Deployer) -> None:
    back = live_v2.rollback()
    assert back.kind == "instant_rollback" and back.live_after == "blue"
    assert back.release is not None and back.release.version == "v1"
    forward = live_v2.rollback_to("v2")
    assert forward.kind == "full_rollback" and forward.live_after == "green"
    with pytest.raises(ops.NotFoundError):
        live_v2.rollback_to("v0")


def test_rollback_without_standby_is_refused(deployer: ops.Deployer) -> None:
    with pytest.raises(ops.RefusedError, match="nothing is deployed yet"):
        deployer.rollback()


def test_retire_standby(live_v2: ops.Deployer, stack: ops.MemoryStack) -> None:
    record = live_v2.retire_standby()
    assert record.kind == "retire" and stack.runtime.container_names() == ["connect_app2"]
    with pytest.raises(ops.NotFoundError, match="no standby"):
        live_v2.retire_standby()


def test_preflight_and_verify_reports(live_v2: ops.Deployer, stack: ops.MemoryStack) -> None:
    report = live_v2.preflight()
    assert report.passed and [c.name for c in report.checks] == [
        "server", "disk /opt/connect", "inodes /opt/connect", "clock", "containers", "database", "cache"
    ]
    stack.host.set_disk_usage("/opt/connect", 85)
    assert live_v2.preflight().passed and [c.name for c in live_v2.preflight().warnings] == ["disk /opt/connect"]
    stack.host.set_disk_usage("/opt/connect", 97)
    assert "FAILED" in repr(live_v2.preflight())
    with pytest.raises(ops.RefusedError, match="disk /opt/connect: 97% used"):
        live_v2.deploy(V1)

    verified = live_v2.verify()
    assert verified.passed and [c.name for c in verified.checks] == ["health", "router", "database", "cache", "logs"]
    standby = live_v2.verify("blue")
    assert [c.name for c in standby.failures] == ["router"]
    assert "PASS health" in str(verified)


def test_verify_bad_color_and_nothing_live(deployer: ops.Deployer) -> None:
    with pytest.raises(ops.InvalidInputError, match="nothing is live yet"):
        deployer.verify()
    with pytest.raises(ops.InvalidInputError, match="unknown color") as info:
        deployer.verify("purple")  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and info.value.hint == 'use "blue" or "green"'
    with pytest.raises(TypeError):
        deployer.verify(1)  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError, match="since_seconds"):
        deployer.verify("blue", since_seconds=-5)


def test_drift_then_adopt(live_v2: ops.Deployer, stack: ops.MemoryStack) -> None:
    stack.runtime.crash("connect_app1")
    with pytest.raises(ops.DriftError) as info:
        live_v2.deploy(V1)
    assert "adopt" in (info.value.hint or "")
    journal = live_v2.adopt()
    assert journal.live == "green" and set(journal.slots) == {"green"}
    assert journal.history[-1].kind == "adopt"
    assert repr(journal).startswith("<Journal live=green slots(green=v2)")
    assert live_v2.status().differences == ()


def test_lock_conflict_and_break_lock(stack: ops.MemoryStack) -> None:
    stack.add_image("connect:slow", ready_after=1.0)
    deployer = ops.Deployer(stack, holder="first")
    assert deployer.break_lock() is None
    op = deployer.start_deploy("connect:slow")
    # The lock is taken before the first event: wait for it rather than sleep.
    first = next(op)
    assert isinstance(first, ops.OperationStarted)
    other = ops.Deployer(stack, holder="second")
    with pytest.raises(ops.ConflictError, match="first"):
        other.deploy(V1)
    assert other.status().lock is not None
    held = other.break_lock()
    assert held is not None and held.holder == "first" and held.operation == "deploy"
    # Breaking a live holder's lock fences it: its journal writes are refused from then on...
    with pytest.raises(ops.ConflictError, match="no longer ours"):
        op.result()
    # ...and the next operation settles what it left (its intent is in the journal) before deploying.
    record = other.deploy(V1)
    assert record.outcome.succeeded
    interrupted = other.journal().history[-2]
    assert interrupted.outcome.result == "interrupted" and interrupted.outcome.resolution


def test_migration_restore_point_and_failed_migration(stack: ops.MemoryStack) -> None:
    stack.add_image("connect:bad-migration", ready_after=0.05, migration_exit=1)
    deployer = ops.Deployer(stack, holder="pytest", migration=["npx", "prisma", "migrate", "deploy"])
    record = deployer.deploy(V1)
    assert record.restore_point is not None and record.restore_point.name in stack.database.restore_points()
    with pytest.raises(ops.FailedError, match="exited 1"):
        deployer.deploy("connect:bad-migration")
    with pytest.raises(TypeError, match="list of str"):
        ops.Deployer(stack, migration="npx prisma migrate deploy")
    with pytest.raises(ops.InvalidInputError, match="empty migration"):
        ops.Deployer(stack, migration=[])


def test_policy_arguments_are_validated(stack: ops.MemoryStack) -> None:
    with pytest.raises(ops.InvalidInputError, match="health_deadline"):
        ops.Deployer(stack, health_deadline=0)
    with pytest.raises(ops.InvalidInputError, match="health_deadline"):
        ops.Deployer(stack, health_deadline=-1)
    with pytest.raises(ops.InvalidInputError, match="warn <= fail"):
        ops.Deployer(stack, disk_warn_percent=90, disk_fail_percent=80)
    with pytest.raises(ops.InvalidInputError, match="unknown old_color"):
        ops.Deployer(stack, old_color="hot")  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError, match="needs the window"):
        ops.Deployer(stack, old_color="retire_after")
    with pytest.raises(TypeError):
        ops.Deployer(stack, health_deadline="soon")  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError, match="container_port = 70000"):
        ops.Deployer(stack, container_port=70000)
    with pytest.raises(ops.InvalidInputError, match="max_error_lines = -1"):
        ops.Deployer(stack, max_error_lines=-1)
    with pytest.raises(TypeError, match=r"smoke_paths is a list of str, e.g. \['/'\]"):
        ops.Deployer(stack, smoke_paths="/")
    with pytest.raises(ops.InvalidInputError, match="absolute URL path"):
        ops.Deployer(stack, smoke_paths=["login"])
    d = ops.Deployer(stack, old_color="retire_after", retire_after=3600, holder="x", env={"NODE_ENV": "production"},
                     disk_paths=["/opt/connect", "/var/lib/docker"], state_dir="/srv/state")
    assert d.holder == "x" and repr(d) == "Deployer(holder='x')"
    d.deploy(V1)
    d.deploy(V2)
    assert d.status().standby_until_unix_ms is not None
    assert "/srv/state/journal.json" in stack.host.files()


def test_balanced_policy_serves_from_both(stack: ops.MemoryStack) -> None:
    d = ops.Deployer(stack, holder="pytest", old_color="balanced")
    d.deploy(V1)
    d.deploy(V2)
    journal = d.journal()
    assert journal.balanced and {c: s.release.version for c, s in journal.slots.items()} == {"blue": "v2", "green": "v2"}


def test_release_strings_are_checked(deployer: ops.Deployer) -> None:
    with pytest.raises(ops.InvalidInputError, match="no tag"):
        deployer.deploy("connect")
    with pytest.raises(ops.InvalidInputError):
        deployer.deploy("CONNECT:v1")
    with pytest.raises(TypeError, match="not int"):
        deployer.deploy(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_event must be a callable"):
        deployer.deploy(V1, on_event="print")  # type: ignore[arg-type]


def test_callback_exception_is_raised_after_the_deploy_finishes(deployer: ops.Deployer) -> None:
    seen: List[ops.Event] = []

    def boom(event: ops.Event) -> None:
        seen.append(event)
        raise KeyError("observer broke")

    with pytest.raises(KeyError, match="observer broke"):
        deployer.deploy(V1, on_event=boom)
    assert len(seen) == 1  # no more calls after the first exception
    status = deployer.status()
    assert status.live == "blue" and status.lock is None  # the deploy finished and unlocked


def test_blocking_callbacks_run_on_the_calling_thread(deployer: ops.Deployer) -> None:
    threads: Set[int] = set()
    deployer.deploy(V1, on_event=lambda e: threads.add(threading.get_ident()))
    assert threads == {threading.get_ident()}


def test_blocking_call_inside_a_callback_is_refused(live_v2: ops.Deployer) -> None:
    def nested(event: ops.Event) -> None:
        live_v2.status()

    with pytest.raises(RuntimeError, match="_async variant"):
        live_v2.rollback(on_event=nested)
    assert live_v2.status().live == "blue"


def test_results_and_events_to_dict_are_complete_json(live_v2: ops.Deployer, stack: ops.MemoryStack) -> None:
    # With continuous backups, so the status has every key (the engine leaves out the ones it has not).
    stack.database.set_continuous_backup("connect", last_full_backup="20261206-081500F", backups=1)
    raw_status = json.loads(live_v2._inner.status())
    status = live_v2.status().to_dict()
    assert set(status) == set(raw_status)
    json.dumps(status)
    raw_journal = json.loads(live_v2._inner.journal())
    journal = live_v2.journal().to_dict()
    assert set(journal) >= set(raw_journal)
    assert set(journal["history"][0]) >= set(raw_journal["history"][0])
    assert journal["history"][0]["release"] == raw_journal["history"][0]["release"]
    events: List[ops.Event] = []
    live_v2.rollback(on_event=events.append)
    names = [e.to_dict()["event"] for e in events]
    assert names[0] == "operation_started" and names[-1] == "operation_finished"
    assert all(type(e) is ops.EVENTS_BY_NAME[n] for e, n in zip(events, names))
    json.dumps([e.to_dict() for e in events])
    assert ops.StepFinished("switch", 3, "x").to_dict() == {"event": "step_finished", "step": "switch", "duration_ms": 3, "detail": "x"}
