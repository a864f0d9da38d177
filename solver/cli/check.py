"""`llbook check`: verify every indexed blob and snapshot, remove broken entries and
leftovers of interrupted builds; exit status 1 when something corrupt was found."""

from __future__ import annotations

import argparse
from typing import Any

from solver.cli.cache_common import add_cache_dir_argument, open_cache, snapshot_remover


def _snapshot_names(snapshotter: Any) -> list[str]:
    return [info.name for info in snapshotter.list() if info.kind == "committed"]


def run_check(args: argparse.Namespace) -> int:
    from solver.solve.leftovers import end_dead_containers, remove_dead_active, unmount_dead
    store, snapshotter = open_cache(args)
    removed_orphans = [*end_dead_containers(), *unmount_dead(store.paths.tmp)] if not args.no_repair else []
    if not args.no_repair:
        removed_orphans += remove_dead_active(snapshotter)
        removed_orphans += snapshotter.remove_orphans(min_age=600.0)
    with store:
        report = store.check(verify_snapshot=snapshotter.exists, remove_snapshot=snapshot_remover(snapshotter, store),
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


def register(subparsers: Any) -> None:
    check = subparsers.add_parser("check", help="verify the cache and remove broken entries")
    add_cache_dir_argument(check)
    check.add_argument("--no-repair", action="store_true", help="only report")
    check.set_defaults(run=run_check)
