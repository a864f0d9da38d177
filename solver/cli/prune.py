"""`llbook prune [--keep-storage SIZE] [--all] [--keep-history N] [--keep-history-age AGE]`: remove
cache entries least recently used first, as `buildctl prune` (also `%llb prune` in the notebook),
and build records beyond the N latest or older than AGE, as buildkitd's history GC (defaults
50 and 48h, its maxEntries and maxAge; `--all` removes every record)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from solver.cache.gc import format_size
from solver.cache.store import CacheStore, PruneReport
from solver.cli.cache_common import add_cache_dir_argument, open_cache, snapshot_remover


def prune_cache(store: CacheStore, snapshotter: Any, keep_storage: str | None, all: bool) -> PruneReport:
    """Prune least recently used first, as `buildctl prune`; the CLI and `%llb prune` share it."""
    report = store.prune(keep_storage, all=all, remove_snapshot=snapshot_remover(snapshotter, store))
    # Snapshots are queued for removal in no particular order; a parent whose child is
    # still queued fails and stays queued. Each further pass removes another level.
    for _ in range(64):
        if not report.errors:
            break
        again = store.prune(keep_storage, all=all, remove_snapshot=snapshot_remover(snapshotter, store))
        report.removed += again.removed
        report.reclaimed += again.reclaimed
        report.total_after = again.total_after
        if len(again.errors) >= len(report.errors) and not again.removed:
            report.errors = again.errors
            break
        report.errors = again.errors
    if all:  # the git sources' bare repositories (BuildKit prunes its shared git repos too)
        _prune_git(store, report)
    return report


def _prune_git(store: CacheStore, report: PruneReport) -> None:
    from solver.cache.usage import UsageEntry
    from solver.source.git import remove_bare_repos
    for name, remote, size in remove_bare_repos(store.paths.root, store.locks.named):
        report.removed.append(UsageEntry("git", name, remote, size, 0.0, 0.0, False, False))
        report.reclaimed += size
        report.total_before += size


def report_lines(report: PruneReport) -> list[str]:
    """What was removed and the total reclaimed, one line each (errors not included)."""
    lines = [f"removed {entry.kind} {entry.key[:31]} {format_size(entry.size)} {entry.name}"
             for entry in report.removed]
    lines.append(f"Total reclaimed: {format_size(report.reclaimed)} "
                 f"({format_size(report.total_before)} -> {format_size(report.total_after)})")
    return lines


def prune_history(cache_dir: Any, keep_count: int | None, keep_age: str | None, all: bool) -> list[str]:
    """Remove build records (solver.history) as buildkitd's history GC; one line per record removed."""
    from solver.history import DEFAULT_KEEP_AGE, DEFAULT_KEEP_COUNT, HistoryStore, parse_duration
    count = 0 if all else DEFAULT_KEEP_COUNT if keep_count is None else keep_count
    age = None if all else DEFAULT_KEEP_AGE if keep_age is None else parse_duration(keep_age)
    return [f"removed build record {r.ref} {r.name}" for r in HistoryStore.of(cache_dir).prune(count, age)]


def run_prune(args: argparse.Namespace) -> int:
    store, snapshotter = open_cache(args)
    with store:
        report = prune_cache(store, snapshotter, args.keep_storage, args.all)
    for line in prune_history(store.paths.root, args.keep_history, args.keep_history_age, args.all):
        print(line)
    for line in report_lines(report):
        print(line)
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def register(subparsers: Any) -> None:
    prune = subparsers.add_parser("prune", help="remove least recently used cache entries")
    add_cache_dir_argument(prune)
    prune.add_argument("--keep-storage", default=None, help="keep this much, e.g. 10GB")
    prune.add_argument("--all", action="store_true", help="remove everything not in use")
    prune.add_argument("--keep-history", type=int, default=None, metavar="N",
                       help="keep the N latest build records (default 50, as buildkitd's maxEntries)")
    prune.add_argument("--keep-history-age", default=None, metavar="AGE",
                       help="remove build records older than AGE, e.g. 12h, 7d (default 48h, buildkitd's maxAge)")
    prune.set_defaults(run=run_prune)
