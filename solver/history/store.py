"""The history store: one JSON record (and one bounded log tail) per build under ``CACHE/history``.

Writes are atomic (a temporary file in the same directory, then ``os.replace``), so a
reader or a crash never sees half a record. Refs are 25 lowercase letters and digits, as
BuildKit's; ``^N`` names the N-th latest (``^0`` the latest, ``^1`` the one before).
"""

from __future__ import annotations

import json
import os
import secrets
import string
import time
from dataclasses import dataclass
from pathlib import Path

from solver.cache.paths import resolve_cache_dir
from solver.errors import LLBookError
from solver.history.record import BuildRecord

# buildkitd.toml's [history] defaults: maxAge 48h, maxEntries 50.
DEFAULT_KEEP_COUNT = 50
DEFAULT_KEEP_AGE = 48 * 3600.0
_ALPHABET = string.ascii_lowercase + string.digits


class HistoryError(LLBookError):
    """A history ref that names no record (or several)."""


def new_ref() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(25))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class HistoryStore:
    """The build records of one cache directory."""

    root: Path

    @classmethod
    def of(cls, cache_dir: str | os.PathLike[str] | None) -> "HistoryStore":
        return cls(resolve_cache_dir(cache_dir) / "history")

    def _json(self, ref: str) -> Path:
        return self.root / f"{ref}.json"

    def log_path(self, ref: str) -> Path:
        return self.root / f"{ref}.log"

    def save(self, record: BuildRecord, logs: bytes | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if logs is not None:
            _write_atomic(self.log_path(record.ref), logs)
        _write_atomic(self._json(record.ref), json.dumps(record.to_json(), indent=1).encode() + b"\n")

    def records(self) -> list[BuildRecord]:
        """Every readable record, latest first (a damaged file is skipped)."""
        out = []
        for path in self.root.glob("*.json") if self.root.is_dir() else ():
            try:
                out.append(BuildRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, TypeError, KeyError):
                continue
        return sorted(out, key=lambda r: r.started, reverse=True)

    def resolve(self, ref: str) -> BuildRecord:
        """The record ``ref`` names: its id (or a unique prefix of it), or ``^N``."""
        records = self.records()
        if ref.startswith("^"):
            try:
                offset = int(ref[1:] or "0")
            except ValueError:
                raise HistoryError(f"history ref {ref!r}: expected ^N with a number N") from None
            if not 0 <= offset < len(records):
                raise HistoryError(f"history ref {ref}: there are {len(records)} build records")
            return records[offset]
        found = [r for r in records if r.ref == ref] or [r for r in records if r.ref.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise HistoryError(f"no build record {ref!r} in {self.root} (see llbook history ls)")
        raise HistoryError(f"history ref {ref!r} names {len(found)} records; give more of the id")

    def logs(self, ref: str) -> bytes:
        try:
            return self.log_path(ref).read_bytes()
        except FileNotFoundError:
            return b""

    def remove(self, ref: str) -> None:
        for path in (self._json(ref), self.log_path(ref)):
            path.unlink(missing_ok=True)

    def prune(self, keep_count: int | None = DEFAULT_KEEP_COUNT, keep_age: float | None = DEFAULT_KEEP_AGE,
              now: float | None = None) -> list[BuildRecord]:
        """Remove records beyond the ``keep_count`` latest and those older than ``keep_age``
        seconds, as buildkitd's history GC (maxEntries, maxAge); None keeps any number/age."""
        now = time.time() if now is None else now
        removed = []
        for i, record in enumerate(self.records()):
            too_many = keep_count is not None and i >= keep_count
            too_old = keep_age is not None and now - (record.completed or record.started) > keep_age
            if too_many or too_old:
                self.remove(record.ref)
                removed.append(record)
        return removed

    def collect(self, keep_count: int = DEFAULT_KEEP_COUNT, keep_age: float = DEFAULT_KEEP_AGE) -> list[BuildRecord]:
        """The GC after each build: ``prune`` only when the directory listing says so (more
        record files than ``keep_count`` and a tenth of it, or a file written over ``keep_age``
        ago), so a build does not read every record. A record's file is written when its build
        ends; one rewritten later waits until its file is old too (``prune`` looks at the records)."""
        now = time.time()
        try:
            with os.scandir(self.root) as listing:
                written = [e.stat().st_mtime for e in listing if e.name.endswith(".json")]
        except OSError:
            return []
        if len(written) <= keep_count + keep_count // 10 and all(now - mtime <= keep_age for mtime in written):
            return []
        return self.prune(keep_count, keep_age, now)


def load(cache_dir: str | os.PathLike[str] | None, ref: str = "^0") -> BuildRecord:
    """The build record ``ref`` names (an id as ``llbook history ls`` prints it, or ``^N``) in
    ``cache_dir``; its ``result_digest`` and ``result`` name what the build produced."""
    return HistoryStore.of(cache_dir).resolve(ref)


def parse_duration(text: str | float | int) -> float:
    """Seconds of ``90``, ``30s``, ``15m``, ``48h`` or ``7d`` (buildkitd's keepDuration/maxAge units)."""
    if isinstance(text, (int, float)):
        return float(text)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    scale = units.get(raw[-1:], None)
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise HistoryError(f"duration {text!r}: expected a number with s, m, h or d (e.g. 48h)") from None
    if value < 0:
        raise HistoryError(f"duration {text!r} is negative")
    return value
