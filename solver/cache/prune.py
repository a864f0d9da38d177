"""Pruning the cache: unindex what the GC plan picks, then remove its files through the pending-removals queue.

Removal runs opposite to the commit order: the rows go and the files are queued in
``pending_removals`` in one (durable) transaction, then the files are removed, then the
queue rows. A crash in between leaves queued files that the next prune or check removes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from solver.cache.cachemounts import CacheMounts
from solver.cache.content import ContentStore
from solver.cache.gc import BlobUnitInfo, PrunePlan, RecordInfo, parse_size, plan_prune
from solver.cache.index import Index
from solver.cache.leases import leased, remove_stale_leases
from solver.cache.locking import Locks
from solver.cache.records import snapshot_unused_in
from solver.cache.usage import UsageEntry, blob_usage, record_usage


@dataclass
class PruneReport:
    removed: list[UsageEntry] = field(default_factory=list)
    reclaimed: int = 0
    total_before: int = 0
    total_after: int = 0
    kept_in_use: int = 0
    stale_leases_removed: int = 0
    errors: list[str] = field(default_factory=list)


def blob_unused_in(conn: sqlite3.Connection, digest: str) -> bool:
    """The blob is neither indexed nor leased by a live process."""
    indexed = conn.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone()
    return indexed is None and digest not in leased(conn, "blob")


class Pruner:
    """Carries out prune plans and the pending-removals queue of one cache directory."""

    def __init__(self, index: Index, content: ContentStore, locks: Locks, mounts: CacheMounts) -> None:
        self._index = index
        self.content = content
        self.locks = locks
        self.mounts = mounts

    def prune(self, keep_storage: int | str | None = None, all: bool = False, *,
              remove_snapshot: Callable[[str], None], keep_duration: float | None = None,
              now: float | None = None) -> PruneReport:
        """Remove least recently used entries not in use, as ``buildctl prune``.

        - ``keep_storage``: stop once records + blobs total at most this many bytes
          (accepts "10GB"); None removes every candidate.
        - ``keep_duration``: only entries unused for longer than this many seconds.
        - ``all``: ignore both limits, and also remove cache mounts nobody holds.
        ``remove_snapshot(id)`` is called for each snapshot no remaining record uses.
        """
        limit = None if keep_storage is None or all else parse_size(keep_storage)
        duration = None if all else keep_duration
        report = PruneReport()
        with self.locks.gc():
            self.finish_pending(remove_snapshot, report.errors)
            plan = self._plan_and_unindex(report, limit, duration, time.time() if now is None else now)
            self.finish_pending(remove_snapshot, report.errors)
            if all:
                report.removed += self.mounts.prune_unheld(report.errors)
        report.total_before, report.total_after = plan.total_before, plan.total_after
        report.reclaimed = plan.reclaimed
        return report

    def _plan_and_unindex(self, report: PruneReport, limit: int | None, duration: float | None,
                          now: float) -> PrunePlan:
        with self._index.write() as conn:
            report.stale_leases_removed = remove_stale_leases(conn)
            usage = {(e.kind, e.key): e for e in record_usage(conn) + blob_usage(conn)}
            records, blobs = _gc_inputs(conn)
            plan = plan_prune(records, blobs, keep_storage=limit, keep_duration=duration, now=now)
            report.kept_in_use = sum(1 for r in records if r.in_use) + sum(1 for b in blobs if b.in_use)
            _unindex(conn, plan)
        report.removed = [usage[("record", k)] for k in plan.records] + [usage[("blob", d)] for d in plan.blobs]
        return plan

    def finish_pending(self, remove_snapshot: Callable[[str], None] | None, errors: list[str]) -> int:
        """Remove files whose rows are already gone; returns how many were completed."""
        rows = self._index.conn().execute("SELECT kind, ref FROM pending_removals").fetchall()
        done = 0
        for row in rows:
            kind, ref = row["kind"], row["ref"]
            try:
                if kind == "blob":
                    done += self._finish_blob_removal(ref)
                elif remove_snapshot is not None:
                    done += self._finish_snapshot_removal(ref, remove_snapshot)
            except Exception as e:  # keep the queue row: the next prune or check retries
                errors.append(f"removing {kind} {ref}: {e}")
        return done

    def _finish_blob_removal(self, digest: str) -> int:
        """Delete the file inside the write transaction, so a concurrent put of the same
        digest either sees it gone (and fails loudly) or re-indexes it first (and we keep it)."""
        with self._index.write() as conn:
            conn.execute("DELETE FROM pending_removals WHERE kind = 'blob' AND ref = ?", (digest,))
            if blob_unused_in(conn, digest):
                self.content.delete(digest)
                return 1
        return 0

    def _finish_snapshot_removal(self, snapshot: str, remove_snapshot: Callable[[str], None]) -> int:
        with self._index.read() as conn:
            unused = snapshot_unused_in(conn, snapshot)
            held = snapshot in leased(conn, "snapshot")
        if unused and held:
            return 0  # someone is about to reuse it: decide at the next prune or check
        if unused:
            remove_snapshot(snapshot)  # may be slow (a tree): outside any transaction
        self._drop_pending("snapshot", snapshot)
        return int(unused)

    def _drop_pending(self, kind: str, ref: str) -> None:
        with self._index.write() as conn:
            conn.execute("DELETE FROM pending_removals WHERE kind = ? AND ref = ?", (kind, ref))


def _gc_inputs(conn: sqlite3.Connection) -> tuple[list[RecordInfo], list[BlobUnitInfo]]:
    leased_records = leased(conn, "record")
    leased_snapshots = leased(conn, "snapshot")
    leased_blobs = leased(conn, "blob")
    refs: dict[str, list[str]] = {}
    for r in conn.execute("SELECT digest, cache_key FROM blob_refs"):
        refs.setdefault(r["cache_key"], []).append(r["digest"])
    records = [RecordInfo(r["cache_key"], r["snapshot"], r["size"], r["last_used"],
                          tuple(json.loads(r["parents"])), tuple(refs.get(r["cache_key"], ())),
                          r["cache_key"] in leased_records or r["snapshot"] in leased_snapshots)
               for r in conn.execute("SELECT * FROM records")]
    blobs = [BlobUnitInfo(r["digest"], r["size"], r["last_used"], r["digest"] in leased_blobs)
             for r in conn.execute("SELECT digest, size, last_used FROM blobs")]
    return records, blobs


def _unindex(conn: sqlite3.Connection, plan: PrunePlan) -> None:
    for key in plan.records:
        conn.execute("DELETE FROM records WHERE cache_key = ?", (key,))
    for snapshot in plan.snapshots:
        conn.execute("INSERT OR IGNORE INTO pending_removals (kind, ref) VALUES ('snapshot', ?)", (snapshot,))
    for digest in plan.blobs:
        conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
        conn.execute("INSERT OR IGNORE INTO pending_removals (kind, ref) VALUES ('blob', ?)", (digest,))
