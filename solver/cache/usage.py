"""Disk usage of the cache index (``llbook du``): one entry per record, blob and cache mount."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from solver.cache.leases import leased


@dataclass(frozen=True)
class UsageEntry:
    """One line of ``llbook du``."""

    kind: str  # "record" | "blob" | "cachemount"
    key: str  # cache key, blob digest or cache-mount instance name
    name: str  # display name / media type / cache-mount id
    size: int
    last_used: float
    created: float
    shared: bool  # snapshot shared by several records, or blob referenced by several records
    in_use: bool
    snapshot: str | None = None


def record_usage(conn: sqlite3.Connection) -> list[UsageEntry]:
    leased_records = leased(conn, "record")
    leased_snapshots = leased(conn, "snapshot")
    shared = {r["snapshot"] for r in conn.execute(
        "SELECT snapshot FROM records WHERE snapshot IS NOT NULL GROUP BY snapshot HAVING COUNT(*) > 1")}
    return [UsageEntry("record", r["cache_key"], r["name"], r["size"], r["last_used"], r["created"],
                       r["snapshot"] in shared,
                       r["cache_key"] in leased_records or r["snapshot"] in leased_snapshots,
                       r["snapshot"])
            for r in conn.execute("SELECT * FROM records")]


def blob_usage(conn: sqlite3.Connection) -> list[UsageEntry]:
    held = leased(conn, "blob")
    counts = {r["digest"]: r["n"] for r in conn.execute(
        "SELECT digest, COUNT(*) AS n FROM blob_refs GROUP BY digest")}
    return [UsageEntry("blob", r["digest"], r["media_type"], r["size"], r["last_used"], r["created"],
                       counts.get(r["digest"], 0) > 1, r["digest"] in held)
            for r in conn.execute("SELECT * FROM blobs")]


def total_size(conn: sqlite3.Connection) -> int:
    """Bytes accounted by records (shared snapshots once) and blobs."""
    snap = conn.execute("SELECT COALESCE(SUM(s), 0) FROM (SELECT MAX(size) AS s FROM records"
                        " WHERE snapshot IS NOT NULL GROUP BY snapshot)").fetchone()[0]
    meta = conn.execute("SELECT COALESCE(SUM(size), 0) FROM records WHERE snapshot IS NULL").fetchone()[0]
    blobs = conn.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0]
    return int(snap + meta + blobs)
