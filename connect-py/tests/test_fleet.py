"""``Fleet``: several app hosts in one deploy, over in-memory hosts behind one in-memory router."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, List, Tuple

import pytest

import connect_ops as ops

V1 = ops.Release("connect", "v1")
V2 = ops.Release("connect", "v2")
HOSTS = ("web1", "web2", "web3")


@pytest.fixture
def hosts() -> ops.MemoryFleet:
    h = ops.MemoryFleet(list(HOSTS))
    h.add_image(V1, ready_after=0.05)
    h.add_image(V2, ready_after=0.05)
    return h


def fleet(hosts: ops.MemoryFleet, **options: Any) -> ops.Fleet:
    return ops.Fleet(hosts, holder="pytest", health_deadline=5, **options)


def serving(status: ops.FleetStatus) -> List[str]:
    """The servers that take traffic, as each host's status observes them."""
    return sorted(
        slot.server.name
        for h in status.hosts
        if h.status is not None
        for slot in h.status.observed
        if slot.server.admin == "ready" and slot.server.weight > 0
    )


def test_a_deploy_switches_every_host_and_reports_each(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)
    assert f.hosts == HOSTS and f.min_healthy_hosts is None
    events: List[Tuple[str, ops.Event]] = []
    report = f.deploy(V1, on_event=lambda host, event: events.append((host, event)))

    assert report.in_rotation == HOSTS and report.left_out == ()
    for outcome in report.hosts:
        assert outcome.live == "blue" and outcome.error is None
        assert outcome.record is not None and outcome.record.succeeded
        assert outcome.record.release is not None and outcome.record.release.version == "v1"
    # Every host's events arrive with its name, and each host's own operation starts and finishes.
    assert {h for h, _ in events} == set(HOSTS)
    for host in HOSTS:
        kinds = [type(e).__name__ for h, e in events if h == host]
        assert kinds[0] == "OperationStarted" and "OperationFinished" in kinds, kinds
    status = f.status()
    assert status.differences == () and status.live == {h: "blue" for h in HOSTS}
    assert serving(status) == [f"{h}_blue" for h in HOSTS]
    # Each host keeps its own journal, read through its own deployer.
    journal = f.deployer("web2").journal()
    assert journal.live == "blue" and journal.history[-1].kind == "deploy"


def test_a_host_never_healthy_switches_nothing_anywhere(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)
    f.deploy(V1)
    hosts.runtime("web2").add_image(V2, ready_after=0.05, healthy=False)
    with pytest.raises(ops.UnhealthyError) as info:
        f.deploy(V2)
    assert "web2" in str(info.value) and "2 of 3 hosts ready" in str(info.value)
    assert info.value.hint and "min_healthy_hosts" in info.value.hint

    status = f.status()
    assert status.live == {h: "blue" for h in HOSTS} and status.differences == ()
    assert serving(status) == [f"{h}_blue" for h in HOSTS]
    for h in status.hosts:
        assert h.status is not None and dict(h.status.releases) == {"blue": "v1"}
        assert h.status.recent[0].outcome.result == "failed"


def test_min_healthy_hosts_leaves_the_failed_host_out_and_says_so(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts, min_healthy_hosts=2)
    f.deploy(V1)
    hosts.runtime("web3").add_image(V2, ready_after=0.05, healthy=False)
    report = f.deploy(V2)

    assert report.in_rotation == ("web1", "web2") and report.left_out == ("web3",)
    for name in ("web1", "web2"):
        ok = report.host(name)
        assert ok.live == "green" and ok.record is not None and ok.record.succeeded
    out = report.host("web3")
    assert out.live is None and out.record is not None
    assert out.record.outcome.result == "failed" and out.record.outcome.kind == "unhealthy"
    assert "web3" in repr(report) and "left out" in repr(report)
    status = f.status()
    assert serving(status) == ["web1_green", "web2_green"]
    assert f.deployer("web3").journal().live is None


def test_rollback_is_one_switch_for_every_host(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)
    f.deploy(V1)
    f.deploy(V2)
    report = f.rollback()
    assert report.in_rotation == HOSTS
    for outcome in report.hosts:
        assert outcome.live == "blue" and outcome.record is not None
        assert outcome.record.kind == "instant_rollback" and outcome.record.succeeded
        assert [s.step for s in outcome.record.steps].count("switch") == 1
    assert serving(f.status()) == [f"{h}_blue" for h in HOSTS]


def test_a_rollback_without_standby_is_refused_and_changes_nothing(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)
    f.deploy(V1)
    with pytest.raises(ops.RefusedError, match="no warm standby") as info:
        f.rollback()
    assert all(h in info.value.message for h in HOSTS), info.value.message
    assert f.status().live == {h: "blue" for h in HOSTS}


def test_what_a_fleet_cannot_do_is_refused_by_kind(hosts: ops.MemoryFleet) -> None:
    with pytest.raises(ops.UnsupportedError, match="balanced"):
        fleet(hosts, old_color="balanced")
    for n in (0, 4):
        with pytest.raises(ops.InvalidInputError, match="min_healthy_hosts"):
            fleet(hosts, min_healthy_hosts=n)
    with pytest.raises(ops.InvalidInputError, match="min_healthy_hosts"):
        fleet(hosts, min_healthy_hosts=-1)
    with pytest.raises(ops.NotFoundError) as info:
        fleet(hosts).deployer("web9")
    assert info.value.hint and "web1" in info.value.hint
    with pytest.raises(ops.NotFoundError):
        hosts.runtime("web9")
    with pytest.raises(TypeError, match="MemoryFleet"):
        ops.Fleet(ops.MemoryStack())  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError):
        ops.MemoryFleet([])
    with pytest.raises(ops.InvalidInputError, match="two hosts"):
        ops.Fleet(ops.MemoryFleet(["web1", "web1"]))


def test_a_cut_host_fails_the_deploy_with_its_kind(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)
    f.deploy(V1)
    hosts.cut("web1")
    with pytest.raises(ops.UnavailableError):
        f.deploy(V2)
    hosts.reconnect("web1")
    assert f.status().live == {h: "blue" for h in HOSTS}


def test_async_deploy_delivers_events_on_the_loop(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)
    seen: List[str] = []

    async def main() -> ops.FleetReport:
        await f.deploy_async(V1)
        return await f.deploy_async(V2, on_event=lambda host, event: seen.append(host))

    report = asyncio.run(main())
    assert report.in_rotation == HOSTS and {h.live for h in report.hosts} == {"green"}
    assert set(seen) == set(HOSTS)
    status = asyncio.run(f.status_async())
    assert status.live == {h: "green" for h in HOSTS}
    back = asyncio.run(f.rollback_async())
    assert {h.live for h in back.hosts} == {"blue"}


def test_a_callback_error_is_raised_after_the_deploy(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)

    def boom(host: str, event: ops.Event) -> None:
        raise RuntimeError(f"callback on {host}")

    with pytest.raises(RuntimeError, match="callback on"):
        f.deploy(V1, on_event=boom)
    # The deploy ran to its end regardless.
    assert f.status().live == {h: "blue" for h in HOSTS}


def test_reports_to_dict_keep_the_engines_keys(hosts: ops.MemoryFleet) -> None:
    f = fleet(hosts)
    report = f.deploy(V1)
    raw = report.to_dict()
    assert set(raw) == {"hosts"}
    assert set(raw["hosts"][0]) == {"host", "in_rotation", "live", "record", "error"}
    assert ops.FleetReport.from_dict(raw) == report
    status = f.status().to_dict()
    assert set(status["hosts"][0]) == {"host", "status", "error"}


def test_from_config_without_app_hosts_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "connect.toml"
    config.write_text(
        "[server]\n"
        'host = "local"\n'
        "[docker]\n"
        f'socket = "{tmp_path / "docker.sock"}"\n'
        "[haproxy]\n"
        f'admin_socket = "{tmp_path / "admin.sock"}"\n'
        "[app]\n"
        'image = "connect"\n'
    )
    with pytest.raises(ops.InvalidInputError) as info:
        ops.Fleet.from_config(config)
    assert "app_hosts" in str(info.value) + (info.value.hint or "")


def test_from_config_composes_every_app_host_and_status_names_each(tmp_path: Path) -> None:
    # Two app hosts on this machine (its Docker Engine, only read: no container of these names exists) behind a
    # HAProxy that does not run: the fleet is composed as `connect-ops` composes it, and its status names each
    # host that could not be read, and why.
    config = tmp_path / "connect.toml"
    config.write_text(
        "[server]\n"
        'host = "local"\n'
        "[docker]\n"
        'socket = "/var/run/docker.sock"\n'
        "[haproxy]\n"
        f'admin_socket = "{tmp_path / "admin.sock"}"\n'
        "[app]\n"
        'image = "connect"\n'
        "[fleet]\n"
        "min_healthy_hosts = 1\n"
        + "".join(
            "[[app_hosts]]\n"
            f'name = "{name}"\n'
            'host = "local"\n'
            f'blue_container = "pytest_{name}_app1"\n'
            f'green_container = "pytest_{name}_app2"\n'
            f"blue_port = {port}\n"
            f"green_port = {port + 1}\n"
            f'state_dir = "{tmp_path / name}"\n'
            for name, port in (("web1", 43000), ("web2", 43010))
        )
    )
    f = ops.Fleet.from_config(config)
    assert f.hosts == ("web1", "web2") and f.min_healthy_hosts == 1
    status = f.status()
    assert [h.host for h in status.hosts] == ["web1", "web2"]
    for h in status.hosts:
        assert h.status is None and h.error and "admin.sock" in h.error, h
    assert [d.split(":")[0] for d in status.differences] == ["web1", "web2"]


def test_a_worker_follows_the_web_hosts_without_a_server() -> None:
    hosts = ops.MemoryFleet(["web1", "web2"], workers=["jobs1"])
    hosts.add_image(V1, ready_after=0.05)
    hosts.add_image(V2, ready_after=0.05)
    f = fleet(hosts)
    assert f.hosts == ("web1", "web2", "jobs1")
    f.deploy(V1)
    report = f.deploy(V2)
    assert report.in_rotation == ("web1", "web2", "jobs1")
    # A worker's "server" in its status is its own color's container: running, it takes jobs.
    assert serving(f.status()) == ["jobs1_green", "web1_green", "web2_green"]
    jobs = f.deployer("jobs1").journal()
    # The deploy, then the retire of the worker's old color: a worker runs one color.
    assert [r.kind for r in jobs.history[-2:]] == ["deploy", "retire"]
    assert all(r.as_worker for r in jobs.history[-2:])
    assert not any(r.as_worker for r in f.deployer("web1").journal().history)
    assert jobs.live == "green" and set(jobs.slots) == {"green"}
    # A rollback: the web hosts switch back, the worker starts the release they went back to.
    report = f.rollback()
    outcome = report.host("jobs1")
    assert outcome.live == "blue" and outcome.record is not None
    assert outcome.record.kind == "full_rollback" and outcome.record.succeeded
    assert f.status().differences == ()
