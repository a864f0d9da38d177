"""``llbook du``, ``llbook prune`` and ``llbook check``: the cache directory's maintenance.

- ``du``: one line per record, blob and cache mount (size, last use, shared/in use),
  and the total, like ``buildctl du``.
- ``prune [--keep-storage SIZE] [--all]``: least recently used first, as ``buildctl prune``.
- ``check``: verifies every indexed blob and snapshot, removes broken entries and
  leftovers of interrupted builds; exit status 1 when something corrupt was found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from solver.cache.gc import format_size
from solver.cache.paths import CachePaths
from solver.cache.store import CacheStore


def _open(args: argparse.Namespace) -> tuple[CacheStore, Any]:
    paths = CachePaths.resolve(args.cache_dir).ensure()
    from solver.solve.solver import default_snapshotter
    return CacheStore(paths), default_snapshotter(paths.snapshots)


def _age(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def run_du(args: argparse.Namespace) -> int:
    store, _ = _open(args)
    with store:
        entries = store.du()
        total = store.total_size()
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


def _referenced(store: CacheStore) -> set[str]:
    used: set[str] = set()
    for record in store.records():
        if record.snapshot:
            used.add(record.snapshot)
        used.update(record.parents)
    return used


def _remover(snapshotter: Any, store: CacheStore):
    """Remove a snapshot; first its children that no record uses (results replaced by a
    --no-cache rebuild, or left by a killed build), which would otherwise pin it."""
    from solver.snapshot.base import SnapshotInUseError

    def remove(name: str) -> None:
        if not snapshotter.exists(name):
            return
        try:
            snapshotter.remove(name)
            return
        except SnapshotInUseError:
            pass
        used = _referenced(store)
        for info in snapshotter.list():
            if info.kind == "committed" and name in info.parents and info.name not in used:
                remove(info.name)
        snapshotter.remove(name)
    return remove


def run_prune(args: argparse.Namespace) -> int:
    store, snapshotter = _open(args)
    with store:
        report = store.prune(args.keep_storage, all=args.all, remove_snapshot=_remover(snapshotter, store))
        # Snapshots are queued for removal in no particular order; a parent whose child is
        # still queued fails and stays queued. Each further pass removes another level.
        for _ in range(64):
            if not report.errors:
                break
            again = store.prune(args.keep_storage, all=args.all, remove_snapshot=_remover(snapshotter, store))
            report.removed += again.removed
            report.reclaimed += again.reclaimed
            report.total_after = again.total_after
            if len(again.errors) >= len(report.errors) and not again.removed:
                report.errors = again.errors
                break
            report.errors = again.errors
    for entry in report.removed:
        print(f"removed {entry.kind} {entry.key[:31]} {format_size(entry.size)} {entry.name}")
    print(f"Total reclaimed: {format_size(report.reclaimed)} "
          f"({format_size(report.total_before)} -> {format_size(report.total_after)})")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def _snapshot_names(snapshotter: Any) -> list[str]:
    return [info.name for info in snapshotter.list() if info.kind == "committed"]


def run_check(args: argparse.Namespace) -> int:
    from solver.solve.leftovers import end_dead_containers, remove_dead_active, unmount_dead
    store, snapshotter = _open(args)
    removed_orphans = [*end_dead_containers(), *unmount_dead(store.paths.tmp)] if not args.no_repair else []
    if not args.no_repair:
        removed_orphans += remove_dead_active(snapshotter)
        removed_orphans += snapshotter.remove_orphans(min_age=600.0)
    with store:
        report = store.check(verify_snapshot=snapshotter.exists, remove_snapshot=_remover(snapshotter, store),
                             list_snapshots=lambda: _snapshot_names(snapshotter),
                             repair=not args.no_repair)
    print(f"checked {report.records_checked} records, {report.blobs_checked} blobs")
    for label, items in (("corrupt blob", report.corrupt_blobs), ("missing blob", report.missing_blobs),
                         ("broken record", report.broken_records),
                         ("broken snapshot", report.broken_snapshots),
                         ("removed orphan tmp", report.orphan_tmp_removed),
                         ("removed orphan blob", report.orphan_blobs_removed),
                         ("removed orphan snapshot", report.orphan_snapshots_removed),
                         ("removed leftover", removed_orphans),
                         ("database", report.db_messages), ("error", report.errors)):
        for item in items:
            print(f"{label}: {item}")
    print("ok" if report.ok else "CORRUPT entries found" + (" and removed" if not args.no_repair else ""))
    return 0 if report.ok else 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="cache directory")


def register_du(subparsers: Any) -> None:
    du = subparsers.add_parser("du", help="disk usage of the cache")
    _common(du)
    du.add_argument("--json", action="store_true")
    du.set_defaults(run=run_du)


def register_prune(subparsers: Any) -> None:
    prune = subparsers.add_parser("prune", help="remove least recently used cache entries")
    _common(prune)
    prune.add_argument("--keep-storage", default=None, help="keep this much, e.g. 10GB")
    prune.add_argument("--all", action="store_true", help="remove everything not in use")
    prune.set_defaults(run=run_prune)


def register_check(subparsers: Any) -> None:
    check = subparsers.add_parser("check", help="verify the cache and remove broken entries")
    _common(check)
    check.add_argument("--no-repair", action="store_true", help="only report")
    check.set_defaults(run=run_check)


def register(subparsers: Any) -> None:
    """All three subcommands (``solver.cli`` imports them one per module: cli_du, ...)."""
    register_du(subparsers)
    register_prune(subparsers)
    register_check(subparsers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llbook")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
