"""The runbook's pre-deploy check (§1): server, disks, running containers, database leader, cache.

    python pre_deploy_check.py              # a healthy in-memory server: exits 0
    python pre_deploy_check.py --disk 96    # /opt/connect 96 % full: the check fails, exits 1
    python pre_deploy_check.py --no-leader  # Patroni has no leader: exits 1

Runs on the in-memory backends; a real server's (``Deployer.from_config("connect.toml")``, or ``Backends`` of
``SshHost``, ``Docker``, ``Haproxy``, ``PatroniCluster`` and ``Redis``) plug into the same Deployer.
"""

from __future__ import annotations

import argparse
import sys

import connect_ops as ops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disk", type=int, default=40, help="percent used on /opt/connect")
    parser.add_argument("--no-leader", action="store_true", help="stop the database leader first")
    args = parser.parse_args()

    stack = ops.MemoryStack()
    stack.host.set_disk_usage("/opt/connect", args.disk)
    if args.no_leader:
        stack.database.kill_leader()

    report = ops.Deployer(stack, holder="pre_deploy_check").preflight()
    print(report)
    for check in report.warnings:
        print(f"warning: {check.name}: {check.detail}", file=sys.stderr)
    if not report.passed:
        print(f"not ready to deploy: {len(report.failures)} check(s) failed", file=sys.stderr)
        return 1
    print("ready to deploy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
