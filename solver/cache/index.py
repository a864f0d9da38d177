"""The cache index file: its SQLite schema and per-thread WAL connections and transactions.

Tables:
- ``records``: one row per solved vertex result, by cache key.
- ``places``: the latest cache key (and a copy of its record) per stable vertex
  position, for "why was this rebuilt?".
- ``blobs`` and ``blob_refs``: content-store blobs and which records reference them.
- ``cachemounts``: cache-mount instance name -> directory.
- ``leases``, ``lease_refs``: what live processes hold (``leases.py``).
- ``pending_removals``: files whose rows are gone, still to be removed (``prune.py``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from solver.cache.content import StoreFullError
from solver.errors import LLBookError

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


class Index:
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
            conn.execute("COMMIT")
        except BaseException as error:
            with suppress(sqlite3.Error):  # SQLite may have rolled back already (SQLITE_FULL)
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError) and error.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise StoreFullError(self.path.parent, f"the cache index {self.path.name}", None, error) from error
            raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot (``BEGIN DEFERRED``)."""
        conn = self.conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def integrity_check(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check`` lines (``["ok"]`` when sound)."""
        return [r[0] for r in self.conn().execute("PRAGMA integrity_check").fetchall()]

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


def dumps(value: Any) -> str:
    """Canonical JSON for index columns."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
