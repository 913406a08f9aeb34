"""connect_ops.Haproxy against a real HAProxy on 127.0.0.1, started by the fixture with its own config.

Two tiny ``http.server`` threads stand for the blue (app1) and green (app2) containers; HAProxy health-checks
them. Without haproxy installed the tests skip loudly; with ``CONNECT_REAL_TESTS=1`` they fail instead.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, List, Tuple, TypeVar

import pytest

import connect_ops as ops

T = TypeVar("T")


def require_haproxy() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None
    )
    if found is not None:
        return found
    message = "haproxy is not installed (apt-get install haproxy): the real HAProxy tests cannot run"
    if os.environ.get("CONNECT_REAL_TESTS") == "1":
        pytest.fail(f"CONNECT_REAL_TESTS=1 but {message}")
    print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
    pytest.skip(message)


def poll_until(what: str, deadline: float, check: Callable[[], T]) -> T:
    """Calls ``check`` until it returns without raising, failing the test after ``deadline`` seconds."""
    give_up = time.monotonic() + deadline
    while True:
        try:
            return check()
        except Exception as e:  # noqa: BLE001 - the last error is reported at the deadline
            if time.monotonic() > give_up:
                raise AssertionError(f"{what}: not within {deadline} s; last error: {e!r}") from e
        time.sleep(0.02)  # a polling interval, not a synchronisation: the condition decides


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def app_server(color: str) -> ThreadingHTTPServer:
    """An HTTP server answering every path with its color, on a free 127.0.0.1 port, in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = color.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name=f"app-{color}", daemon=True).start()
    return server


@dataclass
class RunningHaproxy:
    router: ops.Haproxy
    http_port: int
    dir: Path

    def get(self) -> str:
        """One request through HAProxy's frontend; the color that answered."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode()
            assert response.status == 200, f"HTTP {response.status}: {body}"
            return body
        finally:
            conn.close()

    def colors(self, n: int = 10) -> List[str]:
        return sorted({self.get() for _ in range(n)})


CONFIG = """\
global
    stats socket {dir}/admin.sock mode 600 level admin
    server-state-file {dir}/server-state

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend fe_app
    bind 127.0.0.1:{http_port}
    default_backend be_app

backend be_app
    option httpchk GET /health
    default-server inter 100ms fall 2 rise 1
    server app1 127.0.0.1:{blue} check
    server app2 127.0.0.1:{green} check
"""


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[RunningHaproxy]:
    program = require_haproxy()
    apps: Tuple[ThreadingHTTPServer, ThreadingHTTPServer] = (app_server("blue"), app_server("green"))
    http_port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(
            dir=tmp_path, http_port=http_port, blue=apps[0].server_address[1], green=apps[1].server_address[1]
        )
    )
    log = open(tmp_path / "haproxy.log", "wb")
    process = subprocess.Popen([program, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        router = ops.Haproxy(
            "be_app", socket=str(tmp_path / "admin.sock"), state_file=str(tmp_path / "server-state")
        )

        def started() -> None:
            if process.poll() is not None:
                pytest.fail(f"haproxy exited {process.returncode}: {(tmp_path / 'haproxy.log').read_text()}")
            router.servers()

        poll_until("haproxy answers on its admin socket", 10, started)
        # Green starts idle, as after a deploy's standby was retired: through the runtime API.
        router.set_state("app2", "maint")
        router.wait_live("app1", 10)
        yield RunningHaproxy(router, http_port, tmp_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        for app in apps:
            app.shutdown()
            app.server_close()


def by_name(servers: List[ops.ServerStatus]) -> dict[str, ops.ServerStatus]:
    return {s.name: s for s in servers}


def test_servers_reads_the_backend(haproxy: RunningHaproxy) -> None:
    servers = by_name(haproxy.router.servers())
    assert sorted(servers) == ["app1", "app2"]
    assert servers["app1"].admin == "ready"
    assert servers["app1"].check == "up"
    assert servers["app2"].admin == "maint"
    assert servers["app1"].address.startswith("127.0.0.1:")
    assert haproxy.router.backend == "be_app"
    assert haproxy.colors() == ["blue"]


def test_drain_then_ready(haproxy: RunningHaproxy) -> None:
    router = haproxy.router
    router.set_state("app1", "drain")
    assert router.server("app1").admin == "drain"
    assert router.wait_drained("app1", 5).current_sessions == 0
    router.set_state("app1", "ready")
    live = router.wait_live("app1", 5)
    assert (live.admin, live.check) == ("ready", "up")
    # The change was saved to the server-state-file, so a reload would keep it.
    assert "be_app" in (haproxy.dir / "server-state").read_text()


def test_blue_green_switch_moves_the_traffic(haproxy: RunningHaproxy) -> None:
    router = haproxy.router
    assert haproxy.colors() == ["blue"]

    report = router.switch("app1", "app2", deadline=10)
    assert (report.live, report.drained) == ("app2", ("app1",))
    servers = by_name(router.servers())
    assert (servers["app2"].admin, servers["app1"].admin) == ("ready", "drain")
    assert haproxy.colors() == ["green"]

    report = router.switch("app2", "app1", deadline=10)  # instant rollback
    assert report.live == "app1"
    assert report.drained == ("app2",)
    assert [s.name for s in report.servers if s.admin == "ready"] == ["app1"]
    assert report.to_dict()["live"] == "app1"
    assert haproxy.colors() == ["blue"]


def test_async_switch(haproxy: RunningHaproxy) -> None:
    import asyncio

    router = haproxy.router

    async def switch() -> ops.SwitchReport:
        await router.set_state_async("app2", "ready")
        servers = await router.servers_async()
        assert {s.name: s.admin for s in servers}["app2"] == "ready"
        return await router.switch_async("app1", "app2")

    report = asyncio.run(switch())
    assert (report.live, report.drained) == ("app2", ("app1",))
    assert haproxy.colors() == ["green"]


def test_set_weight_and_errors_in_haproxys_words(haproxy: RunningHaproxy) -> None:
    router = haproxy.router
    router.set_weight("app1", 50)
    assert router.server("app1").weight == 50
    with pytest.raises(ops.NotFoundError) as missing:
        router.set_state("app9", "drain")
    assert "app9" in str(missing.value)
    with pytest.raises(ops.InvalidInputError, match="ready"):
        router.set_state("app1", "paused")  # type: ignore[arg-type]
    with pytest.raises(ops.InvalidInputError):
        router.set_address("app1", "not-an-ip", 80)
    with pytest.raises(ops.UnsupportedError):
        router.reload()  # no master socket given


def test_haproxy_as_the_deployers_router(haproxy: RunningHaproxy, tmp_path: Path) -> None:
    backends = ops.Backends(
        host=ops.LocalHost(),
        runtime=ops.MemoryRuntime(),
        router=haproxy.router,
        database=ops.MemoryCluster(),
        cache=ops.MemoryCache(),
    )
    deployer = ops.Deployer(backends, holder="pytest", state_dir=str(tmp_path / "state"))
    status = deployer.status()
    observed = {slot.color: slot.server for slot in status.observed}
    assert observed["blue"].name == "app1" and observed["blue"].admin == "ready"
    assert observed["green"].name == "app2" and observed["green"].admin == "maint"


def test_unreachable_socket_is_a_connect_error(tmp_path: Path) -> None:
    router = ops.Haproxy("be_app", socket=str(tmp_path / "no-such.sock"))
    with pytest.raises(ops.ConnectError) as e:
        router.servers()
    assert e.value.kind in ("not_found", "unavailable")
    assert "no-such.sock" in str(e.value)
    with pytest.raises(ops.InvalidInputError):
        ops.Haproxy("be_app")  # no socket at all
    with pytest.raises(ops.InvalidInputError):
        ops.Haproxy("be_app", address="nowhere")
