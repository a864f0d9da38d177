"""Cache mounts (``RUN --mount=type=cache``): their locked directories, usage and removal."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from solver.cache.index import Index
from solver.cache.locking import CacheMountLock, CacheSharing, Locks, lock_file_name
from solver.cache.paths import CachePaths
from solver.cache.trees import remove_tree, tree_size
from solver.cache.usage import UsageEntry


@dataclass
class CacheMountHandle:
    """A held cache mount: its lock (released on exit) and its directory."""

    lock: CacheMountLock
    dir: Path

    @property
    def instance_name(self) -> str:
        return self.lock.instance_name

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> "CacheMountHandle":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


class CacheMounts:
    """The cache-mount instances of one cache directory (the ``cachemounts`` table)."""

    def __init__(self, index: Index, paths: CachePaths, locks: Locks) -> None:
        self._index = index
        self.paths = paths
        self.locks = locks

    def dir(self, instance_name: str) -> Path:
        """The directory of a cache-mount instance (created and indexed on first use)."""
        now = time.time()
        directory = self.paths.cachemounts / lock_file_name("m", instance_name).removesuffix(".lock")
        with self._index.write() as conn:
            conn.execute("INSERT OR IGNORE INTO cachemounts (id, dir, created, last_used) VALUES (?, ?, ?, ?)",
                         (instance_name, directory.name, now, now))
            conn.execute("UPDATE cachemounts SET last_used = ? WHERE id = ?", (now, instance_name))
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def open(self, mount_id: str, sharing: CacheSharing | int = CacheSharing.SHARED,
             timeout: float | None = None) -> CacheMountHandle:
        """Lock a cache mount with BuildKit's sharing semantics and return its directory."""
        lock = self.locks.cache_mount(mount_id, sharing, timeout=timeout)
        try:
            return CacheMountHandle(lock, self.dir(lock.instance_name))
        except BaseException:
            lock.release()
            raise

    def all(self) -> dict[str, Path]:
        rows = self._index.conn().execute("SELECT id, dir FROM cachemounts ORDER BY id")
        return {r["id"]: self.paths.cachemounts / r["dir"] for r in rows}

    def usage(self, row: sqlite3.Row, in_use: bool | None = None) -> UsageEntry:
        """``in_use=None`` probes the mount's lock; callers holding it pass False."""
        directory = self.paths.cachemounts / row["dir"]
        busy = self.locks.cache_mount_in_use(row["id"]) if in_use is None else in_use
        return UsageEntry("cachemount", row["id"], row["id"].split("#", 1)[0], tree_size(directory),
                          row["last_used"], row["created"], False, busy)

    def prune_unheld(self, errors: list[str]) -> list[UsageEntry]:
        """Remove every cache mount nobody holds; returns what went."""
        removed: list[UsageEntry] = []
        for row in self._index.conn().execute("SELECT * FROM cachemounts").fetchall():
            lock = self.locks.mount_lock(row["id"], shared=False)
            if not lock.acquire(blocking=False):
                continue  # in use
            try:
                entry = self.usage(row, in_use=False)
                with self._index.write() as conn:
                    conn.execute("DELETE FROM cachemounts WHERE id = ?", (row["id"],))
                remove_tree(self.paths.cachemounts / row["dir"], self.paths.tmp, errors)
                removed.append(entry)
            finally:
                lock.release()
        return removed
