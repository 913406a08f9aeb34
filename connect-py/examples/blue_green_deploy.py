"""The runbook's blue-green deploy (§4): v1 goes live on blue, then v2 starts on green, passes the health
gate, takes the traffic, and blue stays up, drained, as the warm standby.

    python blue_green_deploy.py                 # both deploys succeed
    python blue_green_deploy.py --fail-health   # v2 never turns healthy: aborted, traffic stays on blue, exit 1

Every step is printed as the engine reports it.
"""

from __future__ import annotations

import argparse
import sys

import connect_ops as ops


def show(event: ops.Event) -> None:
    if isinstance(event, ops.OperationStarted):
        version = event.release.version if event.release else ""
        print(f"\n== {event.kind} {version} -> {event.target}")
    elif isinstance(event, ops.StepFinished):
        print(f"  ok   {event.step:<13} {event.duration_ms:>6} ms  {event.detail}")
    elif isinstance(event, ops.StepFailed):
        print(f"  FAIL {event.step:<13} {event.duration_ms:>6} ms  {event.error}")
    elif isinstance(event, ops.StepSkipped):
        print(f"  skip {event.step:<13}           {event.reason}")
    elif isinstance(event, ops.HealthAttempt):
        print(f"       health        attempt {event.attempt}: {event.color} {event.health}")
    elif isinstance(event, ops.StepWarning):
        print(f"  warn {event.step:<13}           {event.message}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fail-health", action="store_true", help="the new release never becomes healthy")
    args = parser.parse_args()

    v1 = ops.Release("connect", "20251013-140000")
    v2 = ops.Release("connect", "20251014-090000")
    stack = ops.MemoryStack()
    stack.add_image(v1, ready_after=0.8)
    stack.add_image(v2, ready_after=0.8, healthy=not args.fail_health)
    deployer = ops.Deployer(stack, holder="blue_green_deploy", health_deadline=5)

    deployer.deploy(v1, on_event=show)
    try:
        record = deployer.deploy(v2, on_event=show)
    except ops.ConnectError as e:
        print(f"\ndeploy failed ({e.kind}): {e}", file=sys.stderr)
        print(f"traffic is on {deployer.status().live}", file=sys.stderr)
        return 1
    status = deployer.status()
    print(f"\n{record!r}\nlive {status.live} ({status.releases[record.live_after or 'green']}), standby {status.standby}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
