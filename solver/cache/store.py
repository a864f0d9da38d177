"""The cache store of one cache directory: its record index, leases, cache mounts and maintenance behind one class.

One ``CacheStore`` per process (or per thread: connections are per thread and are
reopened after ``fork``, ``index.py``). Every write is one ``BEGIN IMMEDIATE``
transaction; readers never block writers (WAL). Several processes may share one cache
directory.

Commit order, so that a crash at any point never leaves an index row pointing at
nothing:
1. content and snapshots are written to a temporary name, fsynced and renamed into place;
2. only then ``put(record)`` adds the row that references them (``records.py``).
Hot-path writes (lookups, puts, leases) commit without an fsync of their own
(``Index.write(durable=False)``): losing them to a power cut leaves at most orphan files,
which ``check`` removes (``check.py``). Transactions that unindex rows before files go
stay durable; removal runs the other way round (``prune.py``). Entries in use are
protected by leases (``leases.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from solver.cache.cachemounts import CacheMountHandle, CacheMounts
from solver.cache.check import Checker, CheckReport
from solver.cache.content import ContentStore
from solver.cache.index import Index
from solver.cache.leases import Lease, new_lease
from solver.cache.locking import CacheSharing, Locks
from solver.cache.paths import CachePaths
from solver.cache.prune import Pruner, PruneReport
from solver.cache.records import Record, RecordIndex
from solver.cache.usage import UsageEntry, blob_usage, record_usage, total_size


class CacheStore(RecordIndex):
    """Index of one cache directory, with its content store and locks."""

    def __init__(self, cache_dir: Path | str | CachePaths) -> None:
        self.paths = cache_dir if isinstance(cache_dir, CachePaths) else CachePaths(Path(cache_dir))
        self.paths.ensure()
        self.locks = Locks(self.paths.locks)
        index = Index(self.paths.index_db, lambda: self.locks.named("index-init"))
        super().__init__(index, ContentStore(self.paths.root, tmp_dir=self.paths.tmp))
        self._mounts = CacheMounts(index, self.paths, self.locks)
        self._pruner = Pruner(index, self.content, self.locks, self._mounts)
        self._checker = Checker(index, self, self.paths, self.locks, self._pruner)
        index.conn()

    @property
    def root(self) -> Path:
        return self.paths.root

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> "CacheStore":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def building(self, cache_key: str, lease: Lease | None = None,
                 timeout: float | None = None) -> Iterator[Record | None]:
        """Hold the build lock of ``cache_key``; yields the record if someone already built it.

        ``with store.building(key, lease) as found: if found is None: build; store.put(rec)``.
        A second process with the same key waits, then gets the record the first stored.
        """
        lock = self.locks.key(cache_key)
        lock.acquire(timeout=timeout)
        try:
            yield self.lookup(cache_key, lease=lease)
        finally:
            lock.release(unlink=True)  # one lock file per key would pile up; waiters re-open

    def lease(self, description: str = "") -> Lease:
        """A new lease owned by this process (released on exit or when the process dies)."""
        return new_lease(self._index, description)

    # cache mounts ----------------------------------------------------------------------

    def cache_mount_dir(self, instance_name: str) -> Path:
        """The directory of a cache-mount instance (created and indexed on first use)."""
        return self._mounts.dir(instance_name)

    def open_cache_mount(self, mount_id: str, sharing: CacheSharing | int = CacheSharing.SHARED,
                         timeout: float | None = None) -> CacheMountHandle:
        """Lock a cache mount with BuildKit's sharing semantics and return its directory."""
        return self._mounts.open(mount_id, sharing, timeout)

    def cache_mounts(self) -> dict[str, Path]:
        return self._mounts.all()

    # maintenance -----------------------------------------------------------------------

    def du(self, include_cache_mounts: bool = True) -> list[UsageEntry]:
        """Disk usage per record, per blob and per cache mount, least recently used first."""
        with self._index.read() as conn:
            entries = record_usage(conn) + blob_usage(conn)
            mounts = conn.execute("SELECT * FROM cachemounts").fetchall()
        if include_cache_mounts:
            entries += [self._mounts.usage(row) for row in mounts]
        return sorted(entries, key=lambda e: (e.last_used, e.kind, e.key))

    def prune(self, keep_storage: int | str | None = None, all: bool = False, *,
              remove_snapshot: Callable[[str], None], keep_duration: float | None = None,
              now: float | None = None) -> PruneReport:
        """Remove least recently used entries not in use, as ``buildctl prune`` (see ``Pruner.prune``)."""
        return self._pruner.prune(keep_storage, all, remove_snapshot=remove_snapshot,
                                  keep_duration=keep_duration, now=now)

    def check(self, *, verify_snapshot: Callable[[str], bool],
              remove_snapshot: Callable[[str], None] | None = None,
              list_snapshots: Callable[[], Iterable[str]] | None = None,
              repair: bool = True, orphan_grace: float = 600.0) -> CheckReport:
        """Verify the index against the disk; with ``repair``, remove what is broken (see ``Checker.check``)."""
        return self._checker.check(verify_snapshot=verify_snapshot, remove_snapshot=remove_snapshot,
                                   list_snapshots=list_snapshots, repair=repair, orphan_grace=orphan_grace)

    def integrity_check(self) -> list[str]:
        return self._index.integrity_check()

    def total_size(self) -> int:
        """Bytes accounted by records (shared snapshots once) and blobs."""
        return total_size(self._index.conn())
