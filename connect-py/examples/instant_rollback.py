"""The runbook's instant rollback: traffic goes back to the warm standby with one router call.

Deploys v1 then v2 (in memory), rolls back to v1 instantly, then forward again to v2 with a full,
health-gated `rollback_to`. Where "rollback-instant.sh" assumed app1 was the old color, the engine reads the
journal and checks it against HAProxy and Docker first.

    python instant_rollback.py
"""

from __future__ import annotations

import sys

import connect_ops as ops


def main() -> int:
    stack = ops.MemoryStack()
    for version in ("v1", "v2"):
        stack.add_image(f"connect:{version}", ready_after=0.3)
    deployer = ops.Deployer(stack, holder="instant_rollback")
    deployer.deploy("connect:v1")
    deployer.deploy("connect:v2")
    print("before:", deployer.status())

    back = deployer.rollback()
    switch = next(s for s in back.steps if s.step == "switch")
    print(f"rolled back to {back.release.version if back.release else '?'} on {back.live_after} "
          f"in {back.duration_ms} ms (switch {switch.duration_ms} ms)")
    print("after: ", deployer.status())

    try:
        deployer.rollback_to("v0")
    except ops.NotFoundError as e:
        print(f"as expected, v0 was never deployed: {e.message}")

    forward = deployer.rollback_to("v2")
    print(f"forward again: {forward!r}")
    return 0 if deployer.status().live == forward.live_after else 1


if __name__ == "__main__":
    sys.exit(main())
