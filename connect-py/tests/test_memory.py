"""The in-memory backends scripts use to simulate a server: images with behaviour, faults, crashes."""

from __future__ import annotations

import pytest

import connect_ops as ops
from conftest import V1, V2


def test_stack_parts_share_state(stack: ops.MemoryStack) -> None:
    assert "MemoryStack" in repr(stack)
    deployer = ops.Deployer(stack, holder="pytest")
    deployer.deploy(V1)
    assert stack.runtime.container_names() == ["connect_app1"]
    assert stack.runtime.is_serving("connect_app1")
    assert "/opt/connect/state/journal.json" in stack.host.files()
    stack.runtime.crash("connect_app1")
    assert not stack.runtime.is_serving("connect_app1")
    assert deployer.status().differences


def test_stack_fail_routes_to_each_backend_and_clears(stack: ops.MemoryStack) -> None:
    deployer = ops.Deployer(stack, holder="pytest")
    stack.fail("cache.ping", "unavailable")
    report = deployer.preflight()
    assert not report.passed and [c.name for c in report.failures] == ["cache"]
    stack.clear_faults("cache.ping")
    assert deployer.preflight().passed
    # The deployer asks a read again twice on a retryable error: three timeouts in a row fail it.
    stack.database.fail("database.members", "timeout", times=3)
    assert not deployer.preflight().passed
    assert deployer.preflight().passed  # the fault was spent
    stack.host.fail("host.disk_usage", "permission_denied", target="/opt/connect")
    assert [c.name for c in deployer.preflight().failures] == ["disk /opt/connect"]
    stack.host.clear_faults("host.disk_usage")
    stack.cache.fail("cache.ping", "refused")
    stack.cache.clear_faults("cache.ping")
    assert deployer.preflight().passed


def test_fault_arguments_are_validated(stack: ops.MemoryStack) -> None:
    with pytest.raises(ops.InvalidInputError, match="expected one of invalid_input"):
        stack.fail("runtime.start", "explode")  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError, match="names no backend"):
        stack.fail("start", "timeout")
    with pytest.raises(ops.InvalidInputError, match="runtime.start"):
        stack.fail("runtime.starts", "timeout")
    with pytest.raises(ops.InvalidInputError, match="not an operation of this backend"):
        stack.router.fail("runtime.start", "timeout")
    with pytest.raises(ops.InvalidInputError, match="never fail"):
        stack.fail("runtime.start", "timeout", times=0)
    with pytest.raises(ops.InvalidInputError, match="combination"):
        stack.fail("runtime.start", "timeout", after=1)
    with pytest.raises(ops.InvalidInputError, match="times = -1 is out of range: expected a count of 1 or more"):
        stack.fail("runtime.start", "timeout", times=-1)
    with pytest.raises(ops.InvalidInputError, match="after = -2"):
        stack.fail("runtime.start", "timeout", target="connect_app1", after=-2)
    with pytest.raises(TypeError):
        stack.fail("runtime.start", "timeout", target=5)  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError):
        stack.clear_faults("nothing")


def test_every_operation_of_the_engine_can_be_failed(stack: ops.MemoryStack, deployer: ops.Deployer) -> None:
    # The names come from connect-core's list, so operations the Python layer never spelled out are accepted.
    stack.router.fail("router.figures", "timeout")
    stack.fail("runtime.list_images", "unavailable", times=1)
    stack.database.fail("database.backup", "failed")
    stack.database.clear_faults("database.backup")
    stack.fail("host.disk_usage", "timeout")
    assert [c.name for c in deployer.preflight().failures] == ["disk /opt/connect"]


def test_add_image_behaviour_and_bad_values(stack: ops.MemoryStack) -> None:
    with pytest.raises(ops.InvalidInputError, match="ready_after"):
        stack.add_image("connect:v3", ready_after=-1)
    with pytest.raises(ops.InvalidInputError):
        stack.add_image("connect:v3", ready_after=float("nan"))
    with pytest.raises(ops.InvalidInputError):
        stack.add_image("Connect:v3")
    with pytest.raises(ops.InvalidInputError, match="error_lines = -3"):
        stack.add_image("connect:v3", error_lines=-3)
    with pytest.raises(TypeError, match="expected a connect_ops.Release or an image reference"):
        stack.add_image(3)  # type: ignore[arg-type]
    stack.runtime.add_image("connect:v3", ready_after=0.01, error_lines=2)
    stack.runtime.remove_image(V2)
    deployer = ops.Deployer(stack, holder="pytest")
    with pytest.raises(ops.NotFoundError, match="the server has no such image"):
        deployer.deploy(V2)
    assert "MemoryRuntime" in repr(stack.runtime)


def test_host_disk_router_cluster_helpers() -> None:
    host = ops.MemoryHost("prod")
    host.set_disk_usage("/opt/connect", 90)
    with pytest.raises(ops.InvalidInputError):
        host.set_disk_usage("/opt/connect", 101)
    with pytest.raises(ops.InvalidInputError, match="percent = -1"):
        host.set_disk_usage("/opt/connect", -1)
    assert host.files() == [] and "MemoryHost" in repr(host)
    router = ops.MemoryRouter("be_app")
    router.add_server("app1", "127.0.0.1:3000")
    router.add_server("app2", "127.0.0.1:3001")
    router.add_sessions("app1", 3, 0.1)
    with pytest.raises(ops.InvalidInputError):
        router.add_sessions("app1", 1, -2.0)
    assert repr(router) == 'MemoryRouter("be_app")'
    cluster = ops.MemoryCluster(["pg1", "pg2", "pg3"])
    cluster.kill_leader()
    assert cluster.restore_points() == [] and repr(cluster) == "MemoryCluster()"
    with pytest.raises(ops.InvalidInputError):
        ops.MemoryCluster([])
    assert repr(ops.MemoryCache()) == "MemoryCache()"


def test_backends_compose_and_refuse_wrong_types() -> None:
    runtime = ops.MemoryRuntime()
    runtime.add_image(V1, ready_after=0.01)
    router = ops.MemoryRouter()
    router.add_server("app1", "127.0.0.1:3000")
    router.add_server("app2", "127.0.0.1:3001")
    backends = ops.Backends(
        host=ops.MemoryHost(), runtime=runtime, router=router, database=ops.MemoryCluster(), cache=ops.MemoryCache()
    )
    assert repr(backends) == 'Backends(host="memory-host", router="be_app")'
    record = ops.Deployer(backends, holder="pytest").deploy(V1)
    assert record.live_after == "blue"
    with pytest.raises(TypeError, match="host must be a connect_ops.SshHost, LocalHost or MemoryHost, not str"):
        ops.Backends(host="ssh://prod", runtime=runtime, router=router, database=ops.MemoryCluster(), cache=ops.MemoryCache())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backends must be a connect_ops.Backends or connect_ops.MemoryStack"):
        ops.Deployer(object())  # type: ignore[arg-type]
    stack = ops.MemoryStack()
    assert "Backends" in repr(stack.backends())


def test_backend_faults_fail_the_right_step(stack: ops.MemoryStack) -> None:
    deployer = ops.Deployer(stack, holder="pytest")
    deployer.deploy(V1)
    # The switch's set_state on app2 is its second call (start_idle puts app2 in maintenance first).
    stack.router.fail("router.set_state", "refused", target="app2", after=1)
    with pytest.raises(ops.RefusedError, match="traffic stayed on blue"):
        deployer.deploy(V2)
    stack.router.clear_faults("router.set_state")
    assert deployer.status().live == "blue"
    stack.runtime.fail("runtime.start", "unavailable", times=1)
    with pytest.raises(ops.UnavailableError) as info:
        deployer.deploy(V2)
    assert info.value.retryable and isinstance(info.value, ConnectionError)
    assert deployer.deploy(V2).live_after == "green"  # the retry works: the fault was spent
    stack.runtime.clear_faults("runtime.start")
    stack.database.kill_leader()
    with pytest.raises(ops.RefusedError, match="database"):
        deployer.deploy(V1)
    stack.database.clear_faults("database.members")
