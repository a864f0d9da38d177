"""``llbook server status|stop``: ask this user's resident build server about itself, or end it."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

STOP_TIMEOUT = 60.0


def _alive(pid: int) -> bool:
    """Running, and not a zombie nobody reaped yet (a container's init may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run_server(args: argparse.Namespace) -> int:
    from solver.server import client, paths
    answer = client.ask(args.action)
    if answer is None:
        print(f"no server is running ({paths.socket_path()})")
        return 0 if args.action == "stop" else 3
    if args.action == "status":
        building = answer.get("building")
        print(f"pid {answer['pid']} (uid {answer['uid']}) on {answer['socket']}\n"
              f"  up {time.time() - answer['started']:.0f} s, {answer['builds']} builds, "
              f"{answer.get('solvers', 0)} solvers kept\n"
              f"  {'building: ' + ' '.join(building) if building else 'idle for %.0f s' % answer['idle_for']}"
              f" (exits after {answer['idle_timeout']:.0f} s idle)")
        return 0
    pid = int(answer["pid"])
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # it finishes a running build first
    if _alive(pid):
        print(f"llbook: server {pid} is still running a build", file=sys.stderr)
        return 1
    print(f"stopped server {pid}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("server", help="the resident build server: status, stop",
                                   description=__doc__)
    parser.add_argument("action", choices=["status", "stop"])
    parser.set_defaults(run=run_server)
