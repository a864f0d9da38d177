"""``llbook check``: verify the cache index against the disk and repair what is broken or orphaned."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from solver.cache.index import Index
from solver.cache.leases import leased, remove_stale_leases
from solver.cache.locking import Locks, pid_alive
from solver.cache.paths import CachePaths
from solver.cache.prune import Pruner, blob_unused_in
from solver.cache.records import RecordIndex
from solver.cache.trees import remove_unmounted_tree, tmp_pid


@dataclass
class CheckReport:
    db_ok: bool = True
    db_messages: list[str] = field(default_factory=list)
    records_checked: int = 0
    blobs_checked: int = 0
    corrupt_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[str] = field(default_factory=list)
    broken_records: list[str] = field(default_factory=list)
    broken_snapshots: list[str] = field(default_factory=list)
    orphan_tmp_removed: list[str] = field(default_factory=list)
    orphan_blobs_removed: list[str] = field(default_factory=list)
    orphan_snapshots_removed: list[str] = field(default_factory=list)
    pending_completed: int = 0
    skipped: list[str] = field(default_factory=list)  # leftovers left alone (e.g. still mounted)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No corrupt or dangling entry was found (orphans cleaned up do not count)."""
        return self.db_ok and not (self.corrupt_blobs or self.missing_blobs
                                   or self.broken_records or self.errors)


class Checker:
    """Checks one cache directory: its SQLite file, blobs, records' snapshots and leftovers."""

    def __init__(self, index: Index, records: RecordIndex, paths: CachePaths, locks: Locks,
                 pruner: Pruner) -> None:
        self._index = index
        self.records = records
        self.content = records.content
        self.paths = paths
        self.locks = locks
        self.pruner = pruner

    def check(self, *, verify_snapshot: Callable[[str], bool],
              remove_snapshot: Callable[[str], None] | None = None,
              list_snapshots: Callable[[], Iterable[str]] | None = None,
              repair: bool = True, orphan_grace: float = 600.0) -> CheckReport:
        """Verify the index against the disk; with ``repair``, remove what is broken.

        - every indexed blob must exist and hash to its digest;
        - every record's snapshot must pass ``verify_snapshot(id)`` and its blobs exist;
        - leftover temporary files of dead writers are removed;
        - blobs on disk that nothing indexes or leases, older than ``orphan_grace``
          seconds, are removed; with ``list_snapshots`` and ``remove_snapshot``, so are
          snapshots that no record uses and no lease holds.
        """
        report = CheckReport()
        with self.locks.gc():
            report.pending_completed = self.pruner.finish_pending(remove_snapshot, report.errors)
            self._check_db(report)
            if not report.db_ok:
                return report
            if repair:
                with self._index.write() as conn:
                    remove_stale_leases(conn)
            self._check_blobs(report, repair)
            self._check_records(report, verify_snapshot, remove_snapshot, repair)
            if repair:
                report.orphan_tmp_removed = self._remove_orphan_tmp(report.skipped)
                report.orphan_blobs_removed = self._remove_orphan_blobs(orphan_grace)
                if list_snapshots is not None and remove_snapshot is not None:
                    report.orphan_snapshots_removed = self._remove_orphan_snapshots(
                        list_snapshots, remove_snapshot, report.errors)
        return report

    def _check_db(self, report: CheckReport) -> None:
        messages = self._index.integrity_check()
        report.db_ok = messages == ["ok"]
        if not report.db_ok:
            report.db_messages = messages
        fk = self._index.conn().execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            report.db_ok = False
            report.db_messages += [f"foreign key violation in {r[0]} rowid {r[1]}" for r in fk]

    def _check_blobs(self, report: CheckReport, repair: bool) -> None:
        for entry in self.records.blobs():
            report.blobs_checked += 1
            if not self.content.has(entry.digest):
                report.missing_blobs.append(entry.digest)
            elif not self.content.verify(entry.digest):
                report.corrupt_blobs.append(entry.digest)
                if repair:
                    self.content.delete(entry.digest)
            else:
                continue
            report.broken_records += [k for k in entry.referenced_by if k not in report.broken_records]
            if repair:
                with self._index.write() as conn:
                    conn.execute("DELETE FROM records WHERE cache_key IN"
                                 " (SELECT cache_key FROM blob_refs WHERE digest = ?)", (entry.digest,))
                    conn.execute("DELETE FROM blobs WHERE digest = ?", (entry.digest,))

    def _check_records(self, report: CheckReport, verify_snapshot: Callable[[str], bool],
                       remove_snapshot: Callable[[str], None] | None, repair: bool) -> None:
        verdicts: dict[str, bool] = {}
        for rec in self.records.records():
            report.records_checked += 1
            if rec.snapshot is None:
                continue
            if rec.snapshot not in verdicts:
                verdicts[rec.snapshot] = _verify_one(verify_snapshot, rec.snapshot, report)
                if not verdicts[rec.snapshot]:
                    report.broken_snapshots.append(rec.snapshot)
            if verdicts[rec.snapshot]:
                continue
            report.broken_records.append(rec.cache_key)
            if repair:
                self.records.delete(rec.cache_key)
        if repair and remove_snapshot is not None:
            for snapshot in report.broken_snapshots:
                _remove_snapshot_quietly(remove_snapshot, snapshot, report.errors)

    def _remove_orphan_tmp(self, errors: list[str]) -> list[str]:
        """Remove ``tmp/`` entries ``<word>-<pid>-...`` of dead pids; never through a mount."""
        removed: list[str] = []
        for entry in list(os.scandir(self.paths.tmp)):
            pid = tmp_pid(Path(entry.path))
            if pid is None or pid == os.getpid() or pid_alive(pid):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if not remove_unmounted_tree(path, errors):
                    continue
            else:
                path.unlink(missing_ok=True)
            removed.append(entry.name)
        return sorted(removed)

    def _remove_orphan_blobs(self, grace: float) -> list[str]:
        with self._index.read() as conn:
            indexed = {r["digest"] for r in conn.execute("SELECT digest FROM blobs")}
            held = leased(conn, "blob")
        now = time.time()
        removed: list[str] = []
        for info in self.content.walk():
            if info.digest in indexed or info.digest in held:
                continue
            try:
                age = now - info.path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age >= grace and self._remove_blob_if_unindexed(info.digest):
                removed.append(info.digest)
        return removed

    def _remove_blob_if_unindexed(self, digest: str) -> bool:
        """Re-check and delete under a write transaction so a concurrent add_blob/put wins."""
        with self._index.write() as conn:
            if not blob_unused_in(conn, digest):
                return False
            self.content.delete(digest)
        return True

    def _remove_orphan_snapshots(self, list_snapshots: Callable[[], Iterable[str]],
                                 remove_snapshot: Callable[[str], None], errors: list[str]) -> list[str]:
        with self._index.read() as conn:
            used = {r["snapshot"] for r in conn.execute("SELECT snapshot FROM records WHERE snapshot IS NOT NULL")}
            for r in conn.execute("SELECT parents FROM records"):
                used.update(json.loads(r["parents"]))
            held = leased(conn, "snapshot")
        removed: list[str] = []
        for snapshot in list(list_snapshots()):
            if snapshot in used or snapshot in held:
                continue
            _remove_snapshot_quietly(remove_snapshot, snapshot, errors)
            removed.append(snapshot)
        return removed


def _verify_one(verify_snapshot: Callable[[str], bool], snapshot: str, report: CheckReport) -> bool:
    try:
        return bool(verify_snapshot(snapshot))
    except Exception as e:
        report.db_messages.append(f"verifying snapshot {snapshot}: {e}")
        return False


def _remove_snapshot_quietly(remove_snapshot: Callable[[str], None], snapshot: str,
                             errors: list[str]) -> None:
    try:
        remove_snapshot(snapshot)
    except FileNotFoundError:
        pass
    except Exception as e:
        errors.append(f"removing broken snapshot {snapshot}: {e}")
