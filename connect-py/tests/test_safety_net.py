"""The deploy's safety net from Python: the watch and the canary, hooks, webhooks and pruning, on the
in-memory server (the webhook receiver is a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Iterator, List, Tuple

import pytest

import connect_ops as ops
from conftest import V1, V2


def test_python_defaults_are_the_engines(stack: ops.MemoryStack) -> None:
    policy = ops.Deployer(stack, holder="pytest").policy
    assert policy["watch"] == ops.WatchPolicy(window=0)._engine()
    assert policy["backup"] == ops.BackupPolicy()._engine()
    assert policy["canary"] is None and policy["keep_releases"] is None
    assert policy["allow_destructive_migrations"] is False


def test_canary_and_watch_run_as_steps(stack: ops.MemoryStack) -> None:
    deployer = ops.Deployer(
        stack,
        holder="pytest",
        watch=ops.WatchPolicy(window=0.2, interval=0.1),
        canary=ops.CanaryPolicy(steps=(10, 50), hold=0.1),
        keep_releases=5,
    )
    assert deployer.policy["canary"] == {"steps": [10, 50], "hold": 100}
    deployer.deploy(V1)
    record = deployer.deploy(V2)
    steps = {s.step: s.status for s in record.steps}
    assert steps["canary"] == "ok" and steps["watch"] == "ok" and steps["prune"] == "ok", record.steps
    assert record.live_after == "green"


def test_an_invalid_safety_net_is_refused_with_the_engines_reason(stack: ops.MemoryStack) -> None:
    with pytest.raises(ops.InvalidInputError, match="needs the watch"):
        ops.Deployer(stack, canary=ops.CanaryPolicy())
    with pytest.raises(ops.InvalidInputError, match="rising percentages"):
        ops.Deployer(stack, watch=ops.WatchPolicy(window=60), canary=ops.CanaryPolicy(steps=(50, 10)))
    with pytest.raises(ops.InvalidInputError, match="http:// or https://"):
        ops.Deployer(stack, webhooks=[ops.Webhook("chat.example/hook")])


def test_a_failing_gate_hook_stops_the_deploy_before_traffic_moves(stack: ops.MemoryStack) -> None:
    gate = ops.Hook("before_switch", ("sh", "-c", "echo /checkout answered 502 >&2; exit 3"))
    deployer = ops.Deployer(stack, holder="pytest", hooks=[gate])
    with pytest.raises(ops.ConnectError, match="checkout answered 502"):
        deployer.deploy(V1)
    assert deployer.status().live is None


@pytest.fixture
def receiver() -> Iterator[Tuple[str, List[bytes]]]:
    """A webhook receiver on a free loopback port; the bodies it got, in order."""
    bodies: List[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/s3cret", bodies
    finally:
        server.shutdown()


def test_webhooks_get_every_operations_record(stack: ops.MemoryStack, receiver: Tuple[str, List[bytes]]) -> None:
    url, bodies = receiver
    hook = ops.Webhook(url, timeout=5)
    assert "s3cret" not in repr(hook)
    deployer = ops.Deployer(stack, holder="pytest", webhooks=[hook])
    record = deployer.deploy(V1)
    # The delivery ends before deploy() returns: the engine waits for it (within its timeout).
    assert len(bodies) == 1
    posted = json.loads(bodies[0])
    assert posted["id"] == record.id and posted["outcome"]["result"] == "succeeded"
