"""`llbook du`: one line per record, blob, cache mount and git sources' bare repository
(size, last use, shared/in use) and the total, like `buildctl du`."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from solver.cache.gc import format_size
from solver.cli.cache_common import add_cache_dir_argument, open_cache


def _age(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def run_du(args: argparse.Namespace) -> int:
    store, _ = open_cache(args)
    with store:
        entries = store.du() + _git_entries(store.paths.root)
        total = store.total_size() + sum(e.size for e in entries if e.kind == "git")
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return 0
    print(f"{'ID':<26} {'KIND':<10} {'SIZE':>10} {'LAST USED':>12} FLAGS  NAME")
    for e in entries:
        flags = ("S" if e.shared else "-") + ("U" if e.in_use else "-")
        key = e.key.split(":", 1)[-1][:24]
        print(f"{key:<26} {e.kind:<10} {format_size(e.size):>10} {_age(e.last_used):>12} {flags:5}  {e.name}")
    print(f"Total: {format_size(total)}")
    return 0


def _git_entries(root: Any) -> list[Any]:
    """The bare repositories git sources fetch into (BuildKit lists its git repos too)."""
    from solver.cache.usage import UsageEntry
    from solver.source.git import bare_repos
    return [UsageEntry("git", r.name, r.remote, r.size, r.last_used, r.created, False, False)
            for r in bare_repos(root)]


def register(subparsers: Any) -> None:
    du = subparsers.add_parser("du", help="disk usage of the cache")
    add_cache_dir_argument(du)
    du.add_argument("--json", action="store_true")
    du.set_defaults(run=run_du)
