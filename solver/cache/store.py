"""The persistent cache index: SQLite (WAL) over the content store and the snapshots.

One ``CacheStore`` per process (or per thread: connections are per thread and are
reopened after ``fork``). Every write is one ``BEGIN IMMEDIATE`` transaction; readers
never block writers (WAL). Several processes may share one cache directory.

Commit order, so that a crash at any point never leaves an index row pointing at
nothing:
1. content and snapshots are written to a temporary name, fsynced and renamed into place;
2. only then ``put(record)`` adds the row that references them.
Hot-path writes (lookups, puts, leases) commit without an fsync of their own
(``_Index.write(durable=False)``): losing them to a power cut leaves at most orphan files,
which ``check`` removes. Transactions that unindex rows before files go stay durable.
Removal runs the other way: ``prune`` deletes the rows and queues the files in
``pending_removals`` in one transaction, then removes the files, then the queue rows.
A crash in between leaves queued files that the next prune or check removes.

Entries in use are protected by *leases*: rows naming a live process (pid + start
time) and the records, snapshots and blobs it holds. ``lookup(key, lease=l)`` adds the
record to the lease in the same transaction that finds it, so a concurrent prune either
runs before (and the lookup misses) or after (and skips the leased record). Leases of
dead processes are ignored and cleaned up. A builder that creates a snapshot or blob
before indexing it should lease its id first (``lease.add_snapshot(id)``) so that a
concurrent ``check`` does not take it for an orphan.

Tables:
- ``records``: one row per solved vertex result, by cache key.
- ``places``: the latest cache key (and a copy of its record) per stable vertex
  position, for "why was this rebuilt?".
- ``blobs`` and ``blob_refs``: content-store blobs and which records reference them.
- ``cachemounts``: cache-mount instance name -> directory.
- ``leases``, ``lease_refs``, ``pending_removals``: see above.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from solver.cache.content import ContentStore, is_digest, tmp_owner_pid
from solver.cache.gc import BlobUnitInfo, PrunePlan, RecordInfo, format_size, parse_size, plan_prune
from solver.cache.locking import CacheMountLock, CacheSharing, Locks, ProcessId, lock_file_name, pid_alive
from solver.cache.paths import CachePaths
from solver.errors import LLBookError

__all__ = [
    "BlobEntry", "CacheMountHandle", "CacheStore", "CacheStoreError", "CheckReport", "Lease",
    "MissingContentError", "PruneReport", "Record", "RecordNotFoundError", "UsageEntry",
    "format_size", "parse_size",
]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    cache_key     TEXT PRIMARY KEY,
    vertex_digest TEXT NOT NULL,
    op_kind       TEXT NOT NULL,
    name          TEXT NOT NULL,
    snapshot      TEXT,
    output_index  INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    duration      REAL NOT NULL,
    created       REAL NOT NULL,
    last_used     REAL NOT NULL,
    key_inputs    TEXT NOT NULL,
    extra         TEXT NOT NULL,
    parents       TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS records_snapshot ON records(snapshot);
CREATE INDEX IF NOT EXISTS records_vertex ON records(vertex_digest);
CREATE INDEX IF NOT EXISTS records_last_used ON records(last_used);
CREATE TABLE IF NOT EXISTS places (
    place     TEXT PRIMARY KEY,
    cache_key TEXT NOT NULL,
    updated   REAL NOT NULL,
    record    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    created    REAL NOT NULL,
    last_used  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS blob_refs (
    digest    TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
    cache_key TEXT NOT NULL REFERENCES records(cache_key) ON DELETE CASCADE,
    PRIMARY KEY (digest, cache_key)
);
CREATE INDEX IF NOT EXISTS blob_refs_key ON blob_refs(cache_key);
CREATE TABLE IF NOT EXISTS cachemounts (
    id        TEXT PRIMARY KEY,
    dir       TEXT NOT NULL,
    created   REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    id          TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    pid_start   TEXT NOT NULL,
    created     REAL NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_refs (
    lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    ref      TEXT NOT NULL,
    PRIMARY KEY (lease_id, kind, ref)
);
CREATE INDEX IF NOT EXISTS lease_refs_ref ON lease_refs(kind, ref);
CREATE TABLE IF NOT EXISTS pending_removals (
    kind TEXT NOT NULL,
    ref  TEXT NOT NULL,
    PRIMARY KEY (kind, ref)
);
"""


class CacheStoreError(LLBookError):
    """Base class of cache index errors."""


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


# --- data ------------------------------------------------------------------------------

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


@dataclass
class PruneReport:
    removed: list[UsageEntry] = field(default_factory=list)
    reclaimed: int = 0
    total_before: int = 0
    total_after: int = 0
    kept_in_use: int = 0
    stale_leases_removed: int = 0
    errors: list[str] = field(default_factory=list)


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


# --- database plumbing -----------------------------------------------------------------

class _Index:
    """Per-thread SQLite connections to one index file, reopened after fork."""

    def __init__(self, path: Path, init_lock: Callable[[], Any]) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[tuple[int, sqlite3.Connection]] = []
        self._guard = threading.Lock()
        self._init_lock = init_lock
        self._initialised_pid: int | None = None

    def conn(self) -> sqlite3.Connection:
        pid = os.getpid()
        if getattr(self._local, "pid", None) != pid:
            self._local.pid = pid
            self._local.conn = self._connect()
            self._local.sync = "FULL"  # what _open sets
        conn: sqlite3.Connection = self._local.conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self._initialised_pid != os.getpid():
            with self._init_lock():
                conn = self._open()
                self._create_schema(conn)
            self._initialised_pid = os.getpid()
        else:
            conn = self._open()
        with self._guard:
            self._all = [(pid, c) for pid, c in self._all if pid == os.getpid()] + [(os.getpid(), conn)]
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                               check_same_thread=True)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise CacheStoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise CacheStoreError(f"{self.path}: index schema {version} is newer than this llbook ({SCHEMA_VERSION})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; commits on success, rolls back on error.

        ``durable=False`` commits without waiting for the disk (WAL with
        ``synchronous=NORMAL``): still atomic, and durable after a process crash, but a
        power loss may take back the last such commits. Only for writes whose loss
        leaves nothing visible that is broken (a lookup's last-used time and lease, a
        new record over committed files, leases). Every transaction that removes index
        rows before files are removed stays durable, and a durable commit makes every
        earlier one durable too (the WAL is synced in order)."""
        conn = self.conn()
        mode = "FULL" if durable else "NORMAL"
        if self._local.sync != mode:
            conn.execute(f"PRAGMA synchronous = {mode}")
            self._local.sync = mode
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot (``BEGIN DEFERRED``)."""
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._guard:
            conns, self._all = self._all, []
        for pid, conn in conns:
            if pid == os.getpid():
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass  # created in another thread; it closes with that thread
        self._local = threading.local()


def _record_from_row(row: sqlite3.Row, blobs: Iterable[str]) -> Record:
    return Record(
        cache_key=row["cache_key"], vertex_digest=row["vertex_digest"], op_kind=row["op_kind"],
        name=row["name"], snapshot=row["snapshot"], output_index=row["output_index"],
        size=row["size"], duration=row["duration"], created=row["created"],
        last_used=row["last_used"], key_inputs=json.loads(row["key_inputs"]),
        extra=json.loads(row["extra"]), parents=tuple(json.loads(row["parents"])),
        blobs=tuple(sorted(blobs)),
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --- leases ----------------------------------------------------------------------------

class Lease:
    """Things a live process holds; prune and check leave them alone. Use as a context manager."""

    def __init__(self, store: "CacheStore", lease_id: str) -> None:
        self.store = store
        self.id = lease_id
        self.released = False

    def add(self, kind: str, ref: str) -> None:
        with self.store._index.write(durable=False) as conn:
            self._add_in(conn, kind, ref)

    def _add_in(self, conn: sqlite3.Connection, kind: str, ref: str) -> None:
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
        rows = self.store._index.conn().execute(
            "SELECT kind, ref FROM lease_refs WHERE lease_id = ? ORDER BY kind, ref", (self.id,))
        return [(r["kind"], r["ref"]) for r in rows]

    def release(self) -> None:
        if self.released:
            return
        with self.store._index.write(durable=False) as conn:
            conn.execute("DELETE FROM leases WHERE id = ?", (self.id,))
        self.released = True

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


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


# --- the store -------------------------------------------------------------------------

class CacheStore:
    """Index of one cache directory, with its content store and locks."""

    def __init__(self, cache_dir: Path | str | CachePaths) -> None:
        self.paths = cache_dir if isinstance(cache_dir, CachePaths) else CachePaths(Path(cache_dir))
        self.paths.ensure()
        self.content = ContentStore(self.paths.root, tmp_dir=self.paths.tmp)
        self.locks = Locks(self.paths.locks)
        self._index = _Index(self.paths.index_db, lambda: self.locks.named("index-init"))
        self._index.conn()

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
                lease._add_in(conn, "record", cache_key)
            blobs = self._blob_refs_of(conn, cache_key)
        return replace(_record_from_row(row, blobs), last_used=now)

    def get(self, cache_key: str) -> Record | None:
        """The record without touching it."""
        conn = self._index.conn()
        row = conn.execute("SELECT * FROM records WHERE cache_key = ?", (cache_key,)).fetchone()
        if row is None:
            return None
        return _record_from_row(row, self._blob_refs_of(conn, cache_key))

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
        return [_record_from_row(r, self._blob_refs_of(conn, r["cache_key"])) for r in rows]

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
                lease._add_in(conn, "record", stored.cache_key)
        return stored

    def _insert_record(self, conn: sqlite3.Connection, rec: Record, now: float) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO records (cache_key, vertex_digest, op_kind, name, snapshot,"
            " output_index, size, duration, created, last_used, key_inputs, extra, parents)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.cache_key, rec.vertex_digest, rec.op_kind, rec.name, rec.snapshot, rec.output_index,
             rec.size, rec.duration, rec.created, rec.last_used, _dumps(rec.key_inputs),
             _dumps(rec.extra), _dumps(list(rec.parents))))
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
            if snapshot is not None and self._snapshot_unused_in(conn, snapshot):
                conn.execute("INSERT OR IGNORE INTO pending_removals (kind, ref) VALUES ('snapshot', ?)",
                             (snapshot,))
        return True

    @staticmethod
    def _snapshot_unused_in(conn: sqlite3.Connection, snapshot: str) -> bool:
        return conn.execute("SELECT 1 FROM records WHERE snapshot = ? OR EXISTS (SELECT 1 FROM"
                            " json_each(records.parents) WHERE value = ?)", (snapshot, snapshot)).fetchone() is None

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

    @staticmethod
    def _blob_refs_of(conn: sqlite3.Connection, cache_key: str) -> list[str]:
        rows = conn.execute("SELECT digest FROM blob_refs WHERE cache_key = ?", (cache_key,))
        return [r["digest"] for r in rows]

    # places ----------------------------------------------------------------------------

    def set_place(self, place: str, cache_key: str) -> None:
        """Make ``cache_key`` the latest record at ``place`` (the record must exist)."""
        now = time.time()
        with self._index.write() as conn:
            row = conn.execute("SELECT * FROM records WHERE cache_key = ?", (cache_key,)).fetchone()
            if row is None:
                raise RecordNotFoundError(cache_key)
            self._set_place_in(conn, place, _record_from_row(row, self._blob_refs_of(conn, cache_key)), now)

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

    # cache mounts ----------------------------------------------------------------------

    def cache_mount_dir(self, instance_name: str) -> Path:
        """The directory of a cache-mount instance (created and indexed on first use)."""
        now = time.time()
        directory = self.paths.cachemounts / lock_file_name("m", instance_name).removesuffix(".lock")
        with self._index.write() as conn:
            conn.execute("INSERT OR IGNORE INTO cachemounts (id, dir, created, last_used) VALUES (?, ?, ?, ?)",
                         (instance_name, directory.name, now, now))
            conn.execute("UPDATE cachemounts SET last_used = ? WHERE id = ?", (now, instance_name))
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def open_cache_mount(self, mount_id: str, sharing: CacheSharing | int = CacheSharing.SHARED,
                         timeout: float | None = None) -> CacheMountHandle:
        """Lock a cache mount with BuildKit's sharing semantics and return its directory."""
        lock = self.locks.cache_mount(mount_id, sharing, timeout=timeout)
        try:
            return CacheMountHandle(lock, self.cache_mount_dir(lock.instance_name))
        except BaseException:
            lock.release()
            raise

    def cache_mounts(self) -> dict[str, Path]:
        rows = self._index.conn().execute("SELECT id, dir FROM cachemounts ORDER BY id")
        return {r["id"]: self.paths.cachemounts / r["dir"] for r in rows}

    # leases ----------------------------------------------------------------------------

    def lease(self, description: str = "") -> Lease:
        """A new lease owned by this process (released on exit or when the process dies)."""
        me = ProcessId.current()
        lease_id = os.urandom(16).hex()
        with self._index.write(durable=False) as conn:
            conn.execute("INSERT INTO leases (id, pid, pid_start, created, description) VALUES (?, ?, ?, ?, ?)",
                         (lease_id, me.pid, me.start, time.time(), description))
        return Lease(self, lease_id)

    def _remove_stale_leases(self, conn: sqlite3.Connection) -> int:
        stale = [r["id"] for r in conn.execute("SELECT id, pid, pid_start FROM leases")
                 if not pid_alive(r["pid"], r["pid_start"])]
        for lease_id in stale:
            conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
        return len(stale)

    @staticmethod
    def _leased(conn: sqlite3.Connection, kind: str) -> set[str]:
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

    # du --------------------------------------------------------------------------------

    def du(self, include_cache_mounts: bool = True) -> list[UsageEntry]:
        """Disk usage per record, per blob and per cache mount, least recently used first."""
        with self._index.read() as conn:
            entries = self._record_usage(conn) + self._blob_usage(conn)
            mounts = conn.execute("SELECT * FROM cachemounts").fetchall()
        if include_cache_mounts:
            entries += [self._mount_usage(row) for row in mounts]
        return sorted(entries, key=lambda e: (e.last_used, e.kind, e.key))

    def _record_usage(self, conn: sqlite3.Connection) -> list[UsageEntry]:
        leased_records = self._leased(conn, "record")
        leased_snapshots = self._leased(conn, "snapshot")
        shared = {r["snapshot"] for r in conn.execute(
            "SELECT snapshot FROM records WHERE snapshot IS NOT NULL GROUP BY snapshot HAVING COUNT(*) > 1")}
        return [UsageEntry("record", r["cache_key"], r["name"], r["size"], r["last_used"], r["created"],
                           r["snapshot"] in shared,
                           r["cache_key"] in leased_records or r["snapshot"] in leased_snapshots,
                           r["snapshot"])
                for r in conn.execute("SELECT * FROM records")]

    def _blob_usage(self, conn: sqlite3.Connection) -> list[UsageEntry]:
        leased = self._leased(conn, "blob")
        counts = {r["digest"]: r["n"] for r in conn.execute(
            "SELECT digest, COUNT(*) AS n FROM blob_refs GROUP BY digest")}
        return [UsageEntry("blob", r["digest"], r["media_type"], r["size"], r["last_used"], r["created"],
                           counts.get(r["digest"], 0) > 1, r["digest"] in leased)
                for r in conn.execute("SELECT * FROM blobs")]

    def _mount_usage(self, row: sqlite3.Row, in_use: bool | None = None) -> UsageEntry:
        """``in_use=None`` probes the mount's lock; callers holding it pass False."""
        directory = self.paths.cachemounts / row["dir"]
        busy = self.locks.cache_mount_in_use(row["id"]) if in_use is None else in_use
        return UsageEntry("cachemount", row["id"], row["id"].split("#", 1)[0], _tree_size(directory),
                          row["last_used"], row["created"], False, busy)

    # prune -----------------------------------------------------------------------------

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
            self._finish_pending(remove_snapshot, report.errors)
            plan = self._plan_and_unindex(report, limit, duration, time.time() if now is None else now)
            self._finish_pending(remove_snapshot, report.errors)
            if all:
                report.removed += self._prune_cache_mounts(report.errors)
        report.total_before, report.total_after = plan.total_before, plan.total_after
        report.reclaimed = plan.reclaimed
        return report

    def _plan_and_unindex(self, report: PruneReport, limit: int | None, duration: float | None,
                          now: float) -> PrunePlan:
        with self._index.write() as conn:
            report.stale_leases_removed = self._remove_stale_leases(conn)
            usage = {(e.kind, e.key): e for e in self._record_usage(conn) + self._blob_usage(conn)}
            records, blobs = self._gc_inputs(conn)
            plan = plan_prune(records, blobs, keep_storage=limit, keep_duration=duration, now=now)
            report.kept_in_use = sum(1 for r in records if r.in_use) + sum(1 for b in blobs if b.in_use)
            self._unindex(conn, plan)
        report.removed = [usage[("record", k)] for k in plan.records] + [usage[("blob", d)] for d in plan.blobs]
        return plan

    def _gc_inputs(self, conn: sqlite3.Connection) -> tuple[list[RecordInfo], list[BlobUnitInfo]]:
        leased_records = self._leased(conn, "record")
        leased_snapshots = self._leased(conn, "snapshot")
        leased_blobs = self._leased(conn, "blob")
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

    @staticmethod
    def _unindex(conn: sqlite3.Connection, plan: PrunePlan) -> None:
        for key in plan.records:
            conn.execute("DELETE FROM records WHERE cache_key = ?", (key,))
        for snapshot in plan.snapshots:
            conn.execute("INSERT OR IGNORE INTO pending_removals (kind, ref) VALUES ('snapshot', ?)", (snapshot,))
        for digest in plan.blobs:
            conn.execute("DELETE FROM blobs WHERE digest = ?", (digest,))
            conn.execute("INSERT OR IGNORE INTO pending_removals (kind, ref) VALUES ('blob', ?)", (digest,))

    def _finish_pending(self, remove_snapshot: Callable[[str], None] | None, errors: list[str]) -> int:
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
            if self._blob_unused_in(conn, digest):
                self.content.delete(digest)
                return 1
        return 0

    def _finish_snapshot_removal(self, snapshot: str, remove_snapshot: Callable[[str], None]) -> int:
        with self._index.read() as conn:
            unused = self._snapshot_unused_in(conn, snapshot)
            leased = snapshot in self._leased(conn, "snapshot")
        if unused and leased:
            return 0  # someone is about to reuse it: decide at the next prune or check
        if unused:
            remove_snapshot(snapshot)  # may be slow (a tree): outside any transaction
        self._drop_pending("snapshot", snapshot)
        return int(unused)

    @staticmethod
    def _blob_unused_in(conn: sqlite3.Connection, digest: str) -> bool:
        indexed = conn.execute("SELECT 1 FROM blobs WHERE digest = ?", (digest,)).fetchone()
        return indexed is None and digest not in CacheStore._leased(conn, "blob")

    def _drop_pending(self, kind: str, ref: str) -> None:
        with self._index.write() as conn:
            conn.execute("DELETE FROM pending_removals WHERE kind = ? AND ref = ?", (kind, ref))

    def _prune_cache_mounts(self, errors: list[str]) -> list[UsageEntry]:
        removed: list[UsageEntry] = []
        for row in self._index.conn().execute("SELECT * FROM cachemounts").fetchall():
            lock = self.locks.mount_lock(row["id"], shared=False)
            if not lock.acquire(blocking=False):
                continue  # in use
            try:
                entry = self._mount_usage(row, in_use=False)
                with self._index.write() as conn:
                    conn.execute("DELETE FROM cachemounts WHERE id = ?", (row["id"],))
                self._remove_tree(self.paths.cachemounts / row["dir"], errors)
                removed.append(entry)
            finally:
                lock.release()
        return removed

    def _remove_tree(self, directory: Path, errors: list[str]) -> None:
        """Rename into tmp/ first (atomic), then delete; leftovers are cleaned by check."""
        if not directory.exists():
            return
        if mount_points_under(directory):
            errors.append(f"not removing {directory}: something is mounted below it")
            return
        trash = self.paths.tmp / f"trash-{os.getpid()}-{os.urandom(16).hex()}"
        try:
            os.rename(directory, trash)
        except OSError as e:
            errors.append(f"removing {directory}: {e}")
            return
        _remove_unmounted_tree(trash, errors)

    # check -----------------------------------------------------------------------------

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
            report.pending_completed = self._finish_pending(remove_snapshot, report.errors)
            self._check_db(report)
            if not report.db_ok:
                return report
            if repair:
                with self._index.write() as conn:
                    self._remove_stale_leases(conn)
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
        rows = self._index.conn().execute("PRAGMA integrity_check").fetchall()
        messages = [r[0] for r in rows]
        report.db_ok = messages == ["ok"]
        if not report.db_ok:
            report.db_messages = messages
        fk = self._index.conn().execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            report.db_ok = False
            report.db_messages += [f"foreign key violation in {r[0]} rowid {r[1]}" for r in fk]

    def _check_blobs(self, report: CheckReport, repair: bool) -> None:
        for entry in self.blobs():
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
        for rec in self.records():
            report.records_checked += 1
            if rec.snapshot is None:
                continue
            if rec.snapshot not in verdicts:
                verdicts[rec.snapshot] = self._verify_one(verify_snapshot, rec.snapshot, report)
                if not verdicts[rec.snapshot]:
                    report.broken_snapshots.append(rec.snapshot)
            if verdicts[rec.snapshot]:
                continue
            report.broken_records.append(rec.cache_key)
            if repair:
                self.delete(rec.cache_key)
        if repair and remove_snapshot is not None:
            for snapshot in report.broken_snapshots:
                self._remove_snapshot_quietly(remove_snapshot, snapshot, report.errors)

    @staticmethod
    def _verify_one(verify_snapshot: Callable[[str], bool], snapshot: str, report: CheckReport) -> bool:
        try:
            return bool(verify_snapshot(snapshot))
        except Exception as e:
            report.db_messages.append(f"verifying snapshot {snapshot}: {e}")
            return False

    @staticmethod
    def _remove_snapshot_quietly(remove_snapshot: Callable[[str], None], snapshot: str,
                                 errors: list[str]) -> None:
        try:
            remove_snapshot(snapshot)
        except FileNotFoundError:
            pass
        except Exception as e:
            errors.append(f"removing broken snapshot {snapshot}: {e}")

    def _remove_orphan_tmp(self, errors: list[str]) -> list[str]:
        """Remove ``tmp/`` entries ``<word>-<pid>-...`` of dead pids; never through a mount."""
        removed: list[str] = []
        for entry in list(os.scandir(self.paths.tmp)):
            pid = _tmp_pid(Path(entry.path))
            if pid is None or pid == os.getpid() or pid_alive(pid):
                continue
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if not _remove_unmounted_tree(path, errors):
                    continue
            else:
                path.unlink(missing_ok=True)
            removed.append(entry.name)
        return sorted(removed)

    def _remove_orphan_blobs(self, grace: float) -> list[str]:
        with self._index.read() as conn:
            indexed = {r["digest"] for r in conn.execute("SELECT digest FROM blobs")}
            leased = self._leased(conn, "blob")
        now = time.time()
        removed: list[str] = []
        for info in self.content.walk():
            if info.digest in indexed or info.digest in leased:
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
            if not self._blob_unused_in(conn, digest):
                return False
            self.content.delete(digest)
        return True

    def _remove_orphan_snapshots(self, list_snapshots: Callable[[], Iterable[str]],
                                 remove_snapshot: Callable[[str], None], errors: list[str]) -> list[str]:
        with self._index.read() as conn:
            used = {r["snapshot"] for r in conn.execute("SELECT snapshot FROM records WHERE snapshot IS NOT NULL")}
            for r in conn.execute("SELECT parents FROM records"):
                used.update(json.loads(r["parents"]))
            leased = self._leased(conn, "snapshot")
        removed: list[str] = []
        for snapshot in list(list_snapshots()):
            if snapshot in used or snapshot in leased:
                continue
            self._remove_snapshot_quietly(remove_snapshot, snapshot, errors)
            removed.append(snapshot)
        return removed

    # misc ------------------------------------------------------------------------------

    def integrity_check(self) -> list[str]:
        return [r[0] for r in self._index.conn().execute("PRAGMA integrity_check").fetchall()]

    def total_size(self) -> int:
        """Bytes accounted by records (shared snapshots once) and blobs."""
        conn = self._index.conn()
        snap = conn.execute("SELECT COALESCE(SUM(s), 0) FROM (SELECT MAX(size) AS s FROM records"
                            " WHERE snapshot IS NOT NULL GROUP BY snapshot)").fetchone()[0]
        meta = conn.execute("SELECT COALESCE(SUM(size), 0) FROM records WHERE snapshot IS NULL").fetchone()[0]
        blobs = conn.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0]
        return int(snap + meta + blobs)


def _tmp_pid(path: Path) -> int | None:
    """Owner pid of a tmp entry: ``ingest-<pid>-...`` (content store) or ``<word>-<pid>-...``."""
    pid = tmp_owner_pid(path)
    if pid is not None:
        return pid
    parts = path.name.split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


def mount_points_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` (from /proc/self/mountinfo; [] without /proc)."""
    root = os.path.realpath(directory).rstrip("/")
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape_mountinfo(fields[4])
        if point == root or point.startswith(root + "/"):
            points.append(point)
    return points


def _unescape_mountinfo(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo`` octal."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _remove_unmounted_tree(directory: Path, errors: list[str]) -> bool:
    """``rmtree`` unless something is mounted below (deleting through a mount would reach
    snapshots or host files). Returns True when the tree is gone."""
    mounted = mount_points_under(directory)
    if mounted:
        errors.append(f"not removing {directory}: still mounted at {', '.join(mounted)}")
        return False
    shutil.rmtree(directory, ignore_errors=True)
    return not directory.exists()


def _tree_size(directory: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total
