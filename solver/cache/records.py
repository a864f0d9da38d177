"""Records, places and blobs of the cache index: the results of solved vertices and their lookups."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from solver.cache.content import ContentStore, is_digest
from solver.cache.index import CacheStoreError, Index, dumps
from solver.cache.leases import Lease


class MissingContentError(CacheStoreError):
    """``put`` of a record whose blob is not in the content store (commit order violated)."""

    def __init__(self, cache_key: str | None, digest: str) -> None:
        self.cache_key = cache_key
        self.digest = digest
        who = f"record {cache_key} references blob {digest}, which" if cache_key else f"blob {digest}"
        super().__init__(f"{who} is not in the content store")


class RecordNotFoundError(CacheStoreError, KeyError):
    def __init__(self, cache_key: str) -> None:
        self.cache_key = cache_key
        super().__init__(f"no cache record {cache_key}")

    def __str__(self) -> str:
        return f"no cache record {self.cache_key}"


@dataclass(frozen=True)
class Record:
    """One solved vertex result.

    ``key_inputs`` holds the parts the key was made of (op cache digest, input keys and
    selectors, content checksums, per-file digests) so that "why rebuilt" can compare.
    ``parents`` are snapshot ids this record's snapshot needs (overlay lowerdirs); prune
    keeps them while this record exists. ``blobs`` are content-store digests it
    references (layers, configs); they must be committed before ``put``.
    """

    cache_key: str
    vertex_digest: str
    op_kind: str
    name: str
    snapshot: str | None = None
    output_index: int = 0
    size: int = 0
    duration: float = 0.0
    created: float = field(default_factory=time.time)
    last_used: float = 0.0
    key_inputs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    parents: tuple[str, ...] = ()
    blobs: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        data["parents"] = list(self.parents)
        data["blobs"] = list(self.blobs)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Record":
        data = json.loads(text)
        data["parents"] = tuple(data.get("parents", ()))
        data["blobs"] = tuple(data.get("blobs", ()))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class BlobEntry:
    digest: str
    size: int
    media_type: str
    created: float
    last_used: float
    referenced_by: tuple[str, ...] = ()


def _record_from_row(row: sqlite3.Row, blobs: Iterable[str]) -> Record:
    return Record(
        cache_key=row["cache_key"], vertex_digest=row["vertex_digest"], op_kind=row["op_kind"],
        name=row["name"], snapshot=row["snapshot"], output_index=row["output_index"],
        size=row["size"], duration=row["duration"], created=row["created"],
        last_used=row["last_used"], key_inputs=json.loads(row["key_inputs"]),
        extra=json.loads(row["extra"]), parents=tuple(json.loads(row["parents"])),
        blobs=tuple(sorted(blobs)),
    )


def snapshot_unused_in(conn: sqlite3.Connection, snapshot: str) -> bool:
    """No record has ``snapshot`` as its result or as a parent."""
    return conn.execute("SELECT 1 FROM records WHERE snapshot = ? OR EXISTS (SELECT 1 FROM"
                        " json_each(records.parents) WHERE value = ?)", (snapshot, snapshot)).fetchone() is None


def _blob_refs_of(conn: sqlite3.Connection, cache_key: str) -> list[str]:
    rows = conn.execute("SELECT digest FROM blob_refs WHERE cache_key = ?", (cache_key,))
    return [r["digest"] for r in rows]


class RecordIndex:
    """The records, places and blobs tables of one index, over its content store."""

    def __init__(self, index: Index, content: ContentStore) -> None:
        self._index = index
        self.content = content

    # records ---------------------------------------------------------------------------

    def lookup(self, cache_key: str, lease: Lease | None = None) -> Record | None:
        """The record for ``cache_key`` or None; marks it (and its blobs) used, adds it to ``lease``."""
        now = time.time()
        with self._index.write(durable=False) as conn:
            row = conn.execute("SELECT * FROM records WHERE cache_key = ?", (cache_key,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE records SET last_used = ? WHERE cache_key = ?", (now, cache_key))
            conn.execute("UPDATE blobs SET last_used = ? WHERE digest IN "
                         "(SELECT digest FROM blob_refs WHERE cache_key = ?)", (now, cache_key))
            if lease is not None:
                lease.add_in(conn, "record", cache_key)
            blobs = _blob_refs_of(conn, cache_key)
        return replace(_record_from_row(row, blobs), last_used=now)

    def get(self, cache_key: str) -> Record | None:
        """The record without touching it."""
        conn = self._index.conn()
        row = conn.execute("SELECT * FROM records WHERE cache_key = ?", (cache_key,)).fetchone()
        if row is None:
            return None
        return _record_from_row(row, _blob_refs_of(conn, cache_key))

    def records(self) -> list[Record]:
        with self._index.read() as conn:
            refs: dict[str, list[str]] = {}
            for r in conn.execute("SELECT digest, cache_key FROM blob_refs"):
                refs.setdefault(r["cache_key"], []).append(r["digest"])
            rows = conn.execute("SELECT * FROM records ORDER BY created, cache_key").fetchall()
        return [_record_from_row(row, refs.get(row["cache_key"], ())) for row in rows]

    def records_for_vertex(self, vertex_digest: str) -> list[Record]:
        conn = self._index.conn()
        rows = conn.execute("SELECT * FROM records WHERE vertex_digest = ? ORDER BY last_used DESC",
                            (vertex_digest,)).fetchall()
        return [_record_from_row(r, _blob_refs_of(conn, r["cache_key"])) for r in rows]

    def put(self, record: Record, place: str | None = None, lease: Lease | None = None) -> Record:
        """Index a result whose snapshot and blobs are already committed on disk.

        Replaces an existing record with the same key. With ``place``, also makes it the
        latest record at that place (same transaction). With ``lease``, the record is
        leased from the moment it exists.
        """
        now = time.time()
        stored = replace(record, last_used=record.last_used or now)
        with self._index.write(durable=False) as conn:  # its files are committed already
            for digest in record.blobs:  # inside the transaction: prune deletes blobs in one too
                if not is_digest(digest) or not self.content.has(digest):
                    raise MissingContentError(record.cache_key, digest)
            self._insert_record(conn, stored, now)
            if place is not None:
                self._set_place_in(conn, place, stored, now)
            if lease is not None:
                lease.add_in(conn, "record", stored.cache_key)
        return stored

    def _insert_record(self, conn: sqlite3.Connection, rec: Record, now: float) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO records (cache_key, vertex_digest, op_kind, name, snapshot,"
            " output_index, size, duration, created, last_used, key_inputs, extra, parents)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.cache_key, rec.vertex_digest, rec.op_kind, rec.name, rec.snapshot, rec.output_index,
             rec.size, rec.duration, rec.created, rec.last_used, dumps(rec.key_inputs),
             dumps(rec.extra), dumps(list(rec.parents))))
        conn.execute("DELETE FROM blob_refs WHERE cache_key = ?", (rec.cache_key,))
        for digest in sorted(set(rec.blobs)):
            self._register_blob_in(conn, digest, None, "", now)
            conn.execute("INSERT OR IGNORE INTO blob_refs (digest, cache_key) VALUES (?, ?)",
                         (digest, rec.cache_key))

    def delete(self, cache_key: str) -> bool:
        """Drop a record from the index.

        Its snapshot, if no other record uses it, is queued for removal by the next prune
        or check; its blobs stay indexed (unreferenced) until prune.
        """
        with self._index.write() as conn:
            row = conn.execute("SELECT snapshot FROM records WHERE cache_key = ?", (cache_key,)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM records WHERE cache_key = ?", (cache_key,))
            snapshot = row["snapshot"]
            if snapshot is not None and snapshot_unused_in(conn, snapshot):
                conn.execute("INSERT OR IGNORE INTO pending_removals (kind, ref) VALUES ('snapshot', ?)",
                             (snapshot,))
        return True

    # places ----------------------------------------------------------------------------

    def set_place(self, place: str, cache_key: str) -> None:
        """Make ``cache_key`` the latest record at ``place`` (the record must exist)."""
        now = time.time()
        with self._index.write() as conn:
            row = conn.execute("SELECT * FROM records WHERE cache_key = ?", (cache_key,)).fetchone()
            if row is None:
                raise RecordNotFoundError(cache_key)
            self._set_place_in(conn, place, _record_from_row(row, _blob_refs_of(conn, cache_key)), now)

    @staticmethod
    def _set_place_in(conn: sqlite3.Connection, place: str, rec: Record, now: float) -> None:
        conn.execute("INSERT OR REPLACE INTO places (place, cache_key, updated, record) VALUES (?, ?, ?, ?)",
                     (place, rec.cache_key, now, rec.to_json()))

    def last_at_place(self, place: str) -> Record | None:
        """The latest record at ``place``; a copy of it if it has been pruned since."""
        conn = self._index.conn()
        row = conn.execute("SELECT cache_key, record FROM places WHERE place = ?", (place,)).fetchone()
        if row is None:
            return None
        live = self.get(row["cache_key"])
        return live if live is not None else Record.from_json(row["record"])

    def places(self) -> dict[str, str]:
        rows = self._index.conn().execute("SELECT place, cache_key FROM places ORDER BY place")
        return {r["place"]: r["cache_key"] for r in rows}

    # blobs -----------------------------------------------------------------------------

    def add_blob(self, digest: str, media_type: str = "", size: int | None = None) -> BlobEntry:
        """Index a committed blob of the content store (e.g. a pulled layer)."""
        now = time.time()
        with self._index.write() as conn:
            if not self.content.has(digest):
                raise MissingContentError(None, digest)
            self._register_blob_in(conn, digest, size, media_type, now)
        entry = self.blob(digest)
        assert entry is not None
        return entry

    def _register_blob_in(self, conn: sqlite3.Connection, digest: str, size: int | None,
                          media_type: str, now: float) -> None:
        if size is None:
            size = self.content.size(digest)
        conn.execute("INSERT INTO blobs (digest, size, media_type, created, last_used) VALUES (?, ?, ?, ?, ?)"
                     " ON CONFLICT(digest) DO UPDATE SET last_used = excluded.last_used",
                     (digest, size, media_type, now, now))
        if media_type:
            conn.execute("UPDATE blobs SET media_type = ? WHERE digest = ? AND media_type = ''",
                         (media_type, digest))

    def blob(self, digest: str) -> BlobEntry | None:
        conn = self._index.conn()
        row = conn.execute("SELECT * FROM blobs WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            return None
        refs = [r["cache_key"] for r in conn.execute(
            "SELECT cache_key FROM blob_refs WHERE digest = ? ORDER BY cache_key", (digest,))]
        return BlobEntry(row["digest"], row["size"], row["media_type"], row["created"],
                         row["last_used"], tuple(refs))

    def blobs(self) -> list[BlobEntry]:
        with self._index.read() as conn:
            refs: dict[str, list[str]] = {}
            for r in conn.execute("SELECT digest, cache_key FROM blob_refs ORDER BY cache_key"):
                refs.setdefault(r["digest"], []).append(r["cache_key"])
            rows = conn.execute("SELECT * FROM blobs ORDER BY digest").fetchall()
        return [BlobEntry(r["digest"], r["size"], r["media_type"], r["created"], r["last_used"],
                          tuple(refs.get(r["digest"], ()))) for r in rows]
