"""Leases: what a live process holds in the cache, so that prune and check leave it alone.

A lease is a row naming a live process (pid + start time) and the records, snapshots
and blobs it holds. ``lookup(key, lease=l)`` adds the record to the lease in the same
transaction that finds it, so a concurrent prune either runs before (and the lookup
misses) or after (and skips the leased record). Leases of dead processes are ignored
and cleaned up. A builder that creates a snapshot or blob before indexing it should
lease its id first (``lease.add_snapshot(id)``) so that a concurrent ``check`` does not
take it for an orphan.
"""

from __future__ import annotations

import os
import sqlite3
import time
from types import TracebackType

from solver.cache.index import CacheStoreError, Index
from solver.cache.locking import ProcessId, pid_alive


class Lease:
    """Things a live process holds; prune and check leave them alone. Use as a context manager."""

    def __init__(self, index: Index, lease_id: str) -> None:
        self._index = index
        self.id = lease_id
        self.released = False

    def add(self, kind: str, ref: str) -> None:
        with self._index.write(durable=False) as conn:
            self.add_in(conn, kind, ref)

    def add_in(self, conn: sqlite3.Connection, kind: str, ref: str) -> None:
        """Add a ref inside the caller's transaction."""
        if self.released:
            raise CacheStoreError(f"lease {self.id} already released")
        conn.execute("INSERT OR IGNORE INTO lease_refs (lease_id, kind, ref) VALUES (?, ?, ?)",
                     (self.id, kind, ref))

    def add_record(self, cache_key: str) -> None:
        self.add("record", cache_key)

    def add_snapshot(self, snapshot_id: str) -> None:
        self.add("snapshot", snapshot_id)

    def add_blob(self, digest: str) -> None:
        self.add("blob", digest)

    def refs(self) -> list[tuple[str, str]]:
        rows = self._index.conn().execute(
            "SELECT kind, ref FROM lease_refs WHERE lease_id = ? ORDER BY kind, ref", (self.id,))
        return [(r["kind"], r["ref"]) for r in rows]

    def release(self) -> None:
        if self.released:
            return
        with self._index.write(durable=False) as conn:
            conn.execute("DELETE FROM leases WHERE id = ?", (self.id,))
        self.released = True

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def new_lease(index: Index, description: str = "") -> Lease:
    """A new lease owned by this process (released on exit or when the process dies)."""
    me = ProcessId.current()
    lease_id = os.urandom(16).hex()
    with index.write(durable=False) as conn:
        conn.execute("INSERT INTO leases (id, pid, pid_start, created, description) VALUES (?, ?, ?, ?, ?)",
                     (lease_id, me.pid, me.start, time.time(), description))
    return Lease(index, lease_id)


def remove_stale_leases(conn: sqlite3.Connection) -> int:
    """Delete the leases of dead processes; returns how many."""
    stale = [r["id"] for r in conn.execute("SELECT id, pid, pid_start FROM leases")
             if not pid_alive(r["pid"], r["pid_start"])]
    for lease_id in stale:
        conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
    return len(stale)


def leased(conn: sqlite3.Connection, kind: str) -> set[str]:
    """Refs of ``kind`` held by leases of live processes (stale leases are ignored)."""
    rows = conn.execute("SELECT lr.ref, l.pid, l.pid_start FROM lease_refs lr JOIN leases l"
                        " ON l.id = lr.lease_id WHERE lr.kind = ?", (kind,)).fetchall()
    alive: dict[tuple[int, str], bool] = {}
    held: set[str] = set()
    for row in rows:
        owner = (row["pid"], row["pid_start"])
        if owner not in alive:
            alive[owner] = pid_alive(*owner)
        if alive[owner]:
            held.add(row["ref"])
    return held
