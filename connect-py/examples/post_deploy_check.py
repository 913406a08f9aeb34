"""The runbook's post-deploy check (§5) on the live color: container healthy, HAProxy sending it traffic, the
database's check query, the cache, and error lines in the last five minutes of its log against the limit.

    python post_deploy_check.py               # a clean release: exits 0
    python post_deploy_check.py --errors 25   # the release logs 25 error lines (limit 10): exits 1

Uses asyncio (the *_async variants) to show they share the engine with the blocking calls.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import connect_ops as ops


async def check(errors: int) -> int:
    stack = ops.MemoryStack()
    stack.add_image("connect:v1", ready_after=0.2, error_lines=errors)
    # The deploy's own verify would refuse a noisy release; a high limit lets it through so the check below
    # can judge it with the runbook's limit of 10.
    await ops.Deployer(stack, holder="post_deploy_check", max_error_lines=1000).deploy_async("connect:v1")

    deployer = ops.Deployer(stack, holder="post_deploy_check")
    report = await deployer.verify_async(since_seconds=300)
    print(report)
    if not report.passed:
        for failed in report.failures:
            print(f"FAILED {failed.name}: {failed.detail}", file=sys.stderr)
        print("consider: python instant_rollback.py", file=sys.stderr)
        return 1
    print("all post-deployment checks passed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--errors", type=int, default=0, help="error lines the release logs at start")
    return asyncio.run(check(parser.parse_args().errors))


if __name__ == "__main__":
    sys.exit(main())
