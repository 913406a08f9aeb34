"""Several servers behind one HAProxy: one release to three app hosts, switched together in one router
exchange, with one host whose release never gets healthy left out of rotation (``min_healthy_hosts=2``).

In memory here; ``ops.Fleet.from_config("connect.toml")`` gives the real fleet of ``[[app_hosts]]``.

    python fleet_deploy.py
"""

from __future__ import annotations

import sys

import connect_ops as ops


def main() -> int:
    hosts = ops.MemoryFleet(["web1", "web2", "web3"])
    hosts.add_image("connect:v1", ready_after=0.2)
    hosts.add_image("connect:v2", ready_after=0.2)
    hosts.runtime("web3").add_image("connect:v2", ready_after=0.2, healthy=False)
    fleet = ops.Fleet(hosts, holder="fleet_deploy", min_healthy_hosts=2)

    first = fleet.deploy("connect:v1")
    print("v1:", first)
    second = fleet.deploy("connect:v2", on_event=lambda host, e: print(f"  {host}: {e}") if isinstance(e, ops.StepFailed) else None)
    print("v2:", second)
    for name in second.left_out:
        print(f"  {name} left out: {second.host(name).error}")
    print("status:", fleet.status())

    back = fleet.rollback()
    print("rolled back:", back)
    return 0 if set(back.in_rotation) == {"web1", "web2"} else 1


if __name__ == "__main__":
    sys.exit(main())
