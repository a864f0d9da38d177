"""What a solve returns: the result reference, and one record per vertex.

A ``Ref`` names a result filesystem without holding it open: a committed snapshot of
the snapshotter, a host directory (the local build context, read-only), or scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ref:
    kind: str  # "snapshot" | "local" | "scratch"
    snapshot: str | None = None
    path: Path | None = None  # local: the context directory
    exclude_patterns: tuple[str, ...] = ()
    include_patterns: tuple[str, ...] = ()
    follow_paths: tuple[str, ...] = ()

    @classmethod
    def scratch(cls) -> "Ref":
        return cls("scratch")

    @classmethod
    def of_snapshot(cls, name: str) -> "Ref":
        return cls("snapshot", snapshot=name)

    @classmethod
    def of_local(cls, path: Path, exclude_patterns: tuple[str, ...] = (),
                 include_patterns: tuple[str, ...] = (), follow_paths: tuple[str, ...] = ()) -> "Ref":
        return cls("local", path=Path(path), exclude_patterns=exclude_patterns,
                   include_patterns=include_patterns, follow_paths=follow_paths)


@dataclass
class VertexRecord:
    """What happened to one vertex in one solve (the ``llbook.vertices`` entries)."""

    digest: str
    name: str
    kind: str = ""
    inputs: list[str] = field(default_factory=list)
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str | None = None
    cache_keys: list[str] = field(default_factory=list)
    place: str = ""
    reasons: list[dict[str, Any]] = field(default_factory=list)
    key_inputs: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[str | None] = field(default_factory=list)
    filename: str | None = None
    line: int | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None or self.completed is None:
            return None
        return self.completed - self.started

    def to_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "digest": self.digest,
            "name": self.name,
            "cached": self.cached,
            "started": self.started,
            "completed": self.completed,
            "error": self.error,
        }
        if self.inputs:
            out["inputs"] = self.inputs
        if self.cache_keys:
            out["cache_keys"] = self.cache_keys
        if self.reasons:
            out["reasons"] = self.reasons
        return out


@dataclass
class SolveResult:
    head: str  # digest of the result vertex ("" for a scratch result)
    output: int
    ref: Ref
    vertices: list[VertexRecord]
    image_config: dict[str, Any] | None = None

    @property
    def snapshot(self) -> str | None:
        return self.ref.snapshot

    @property
    def cache_keys(self) -> dict[str, list[str]]:
        return {v.digest: v.cache_keys for v in self.vertices}

    def vertex(self, digest: str) -> VertexRecord:
        for record in self.vertices:
            if record.digest == digest:
                return record
        raise KeyError(digest)

    @property
    def executed(self) -> list[VertexRecord]:
        return [v for v in self.vertices if not v.cached and v.kind != "local"]

    @property
    def cached_count(self) -> int:
        return sum(1 for v in self.vertices if v.cached)
