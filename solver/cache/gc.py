"""Garbage collection policy: human sizes, and which cache entries a prune removes.

The policy is a pure function over a snapshot of the index, so it can be tested without
a database. ``CacheStore.prune`` feeds it and then carries out the plan.

Storage units:
- a *snapshot unit* is one snapshot id with every record that points at it (several
  cache keys may share one result); its size counts once. A record without a snapshot
  (a metadata-only result) is a unit of its own.
- a *blob unit* is one blob of the content store. Records reference blobs; a blob is
  removable only when no remaining record references it.

A snapshot unit stays while a remaining record names its snapshot as a parent (an
overlay lowerdir, for example), so prune removes leaves first. Units in use (leased by a
live process) are never removed.

Order: least recently used first, as ``buildctl prune``. ``keep_duration`` limits the
candidates to units unused for longer than that. ``keep_storage`` stops once the total
is at or below it; without it every candidate goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from solver.errors import LLBookError

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")

_DECIMAL = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15}
_BINARY = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
           # docker's single-letter forms (``-m 512m``) are binary
           "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


class SizeError(LLBookError, ValueError):
    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"invalid size {text!r}: expected e.g. 512MB, 10GB, 1.5GiB, 100k or a byte count")


def parse_size(text: str | int | float) -> int:
    """Bytes of ``"10GB"`` (decimal), ``"1.5GiB"`` (binary), ``"512m"`` (binary, as docker), ``"123"``."""
    if isinstance(text, bool):
        raise SizeError(str(text))
    if isinstance(text, (int, float)):
        if text < 0:
            raise SizeError(str(text))
        return int(text)
    match = _SIZE_RE.match(text)
    if not match:
        raise SizeError(text)
    number, unit = float(match.group(1)), match.group(2).lower()
    factor = _DECIMAL.get(unit) or _BINARY.get(unit)
    if factor is None:
        raise SizeError(text)
    return int(number * factor)


def format_size(size: int) -> str:
    """``1536 -> '1.5KiB'``; binary units, as ``docker system df`` prints MB of 2**20 bytes."""
    value = float(size)
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{size}B"
    text = f"{value:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + unit


# --- prune planning --------------------------------------------------------------------

@dataclass(frozen=True)
class RecordInfo:
    cache_key: str
    snapshot: str | None
    size: int
    last_used: float
    parents: tuple[str, ...] = ()
    blobs: tuple[str, ...] = ()
    in_use: bool = False


@dataclass(frozen=True)
class BlobUnitInfo:
    digest: str
    size: int
    last_used: float
    in_use: bool = False


@dataclass
class PrunePlan:
    records: list[str] = field(default_factory=list)  # cache keys to delete
    snapshots: list[str] = field(default_factory=list)  # snapshot ids no record references anymore
    blobs: list[str] = field(default_factory=list)  # digests to delete
    reclaimed: int = 0
    total_before: int = 0
    total_after: int = 0


@dataclass
class _Unit:
    kind: str  # "snapshot" | "record" | "blob"
    ident: str
    size: int
    last_used: float
    in_use: bool
    records: list[RecordInfo] = field(default_factory=list)


def _snapshot_units(records: list[RecordInfo]) -> list[_Unit]:
    units: dict[str, _Unit] = {}
    for rec in records:
        kind, ident = ("snapshot", rec.snapshot) if rec.snapshot else ("record", rec.cache_key)
        unit = units.setdefault(f"{kind}:{ident}", _Unit(kind, ident, 0, 0.0, False))
        unit.records.append(rec)
        unit.size = max(unit.size, rec.size)
        unit.last_used = max(unit.last_used, rec.last_used)
        unit.in_use = unit.in_use or rec.in_use
    return list(units.values())


class _PlanState:
    """Book-keeping of what remains while the plan is being made."""

    def __init__(self, records: list[RecordInfo], blobs: list[BlobUnitInfo]) -> None:
        self.parent_refs: dict[str, int] = {}
        self.blob_refs: dict[str, int] = {}
        for rec in records:
            for parent in set(rec.parents) - {rec.snapshot}:
                self.parent_refs[parent] = self.parent_refs.get(parent, 0) + 1
            for digest in set(rec.blobs):
                self.blob_refs[digest] = self.blob_refs.get(digest, 0) + 1
        self.blob_sizes = {b.digest: b.size for b in blobs}

    def removable(self, unit: _Unit) -> bool:
        if unit.in_use:
            return False
        if unit.kind == "blob":
            return self.blob_refs.get(unit.ident, 0) == 0
        if unit.kind == "snapshot":
            return self.parent_refs.get(unit.ident, 0) == 0
        return True

    def drop_records(self, unit: _Unit) -> None:
        for rec in unit.records:
            for parent in set(rec.parents) - {rec.snapshot}:
                self.parent_refs[parent] -= 1
            for digest in set(rec.blobs):
                self.blob_refs[digest] -= 1


def plan_prune(records: list[RecordInfo], blobs: list[BlobUnitInfo], *,
               keep_storage: int | None = None, keep_duration: float | None = None,
               now: float) -> PrunePlan:
    """Choose what to remove. Pure: reads its arguments, returns the plan."""
    units = _snapshot_units(records) + [
        _Unit("blob", b.digest, b.size, b.last_used, b.in_use) for b in blobs]
    total = sum(u.size for u in units)
    plan = PrunePlan(total_before=total)
    state = _PlanState(records, blobs)
    cutoff = None if keep_duration is None else now - keep_duration
    pending = sorted((u for u in units if cutoff is None or u.last_used < cutoff),
                     key=lambda u: (u.last_used, u.kind, u.ident))

    def satisfied() -> bool:
        return keep_storage is not None and total <= keep_storage

    progress = True
    while pending and progress and not satisfied():
        progress = False
        remaining: list[_Unit] = []
        for unit in pending:
            if satisfied() or not state.removable(unit):
                remaining.append(unit)
                continue
            _apply(plan, state, unit)
            total -= unit.size
            progress = True
        pending = remaining
    plan.total_after = total
    plan.reclaimed = plan.total_before - total
    return plan


def _apply(plan: PrunePlan, state: _PlanState, unit: _Unit) -> None:
    if unit.kind == "blob":
        plan.blobs.append(unit.ident)
        return
    plan.records.extend(r.cache_key for r in unit.records)
    if unit.kind == "snapshot":
        plan.snapshots.append(unit.ident)
    state.drop_records(unit)
