"""What `llbook du`, `prune` and `check` share: opening the cache directory, and removing a
snapshot together with the unused children that pin it."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from solver.cache.paths import CachePaths
from solver.cache.store import CacheStore


def add_cache_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None, help="cache directory")


def open_cache(args: argparse.Namespace) -> tuple[CacheStore, Any]:
    paths = CachePaths.resolve(args.cache_dir).ensure()
    from solver.solve.solver import default_snapshotter
    return CacheStore(paths), default_snapshotter(paths.snapshots)


def _referenced(store: CacheStore) -> set[str]:
    used: set[str] = set()
    for record in store.records():
        if record.snapshot:
            used.add(record.snapshot)
        used.update(record.parents)
    return used


def snapshot_remover(snapshotter: Any, store: CacheStore) -> Callable[[str], None]:
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
