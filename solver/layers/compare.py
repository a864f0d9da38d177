"""The difference between two images or results: the files added, removed and changed
from the first filesystem to the second, with their sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from solver.layers.model import Layers
from solver.layers.tree import final_state
from solver.snapshot.diff import Change, FileType

ADDED, REMOVED, CHANGED = "added", "removed", "changed"


@dataclass
class FileChange:
    """One path that differs; sizes are -1 where the path is absent."""

    path: str
    kind: str  # added | removed | changed
    type: str
    old_size: int
    new_size: int
    what: str = ""  # for a change: which attributes differ (content, size, mode, owner, type, target)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Comparison:
    old: str
    new: str
    changes: list[FileChange]

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    @property
    def size_delta(self) -> int:
        return sum(max(c.new_size, 0) - max(c.old_size, 0) for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "added": self.count(ADDED), "removed": self.count(REMOVED),
                "changed": self.count(CHANGED), "size_delta": self.size_delta,
                "changes": [c.to_json() for c in self.changes]}


def _differences(a: Change, b: Change) -> list[str]:
    """Which attributes differ, bytes aside (a symlink's size is its target's length in a
    snapshot and 0 in a tar: the target is compared instead)."""
    out = []
    if a.type is not b.type:
        return ["type"]
    if a.type is not FileType.FILE and a.type is not FileType.SYMLINK and a.size != b.size:
        out.append("size")
    if a.mode != b.mode:
        out.append("mode")
    if (a.uid, a.gid) != (b.uid, b.gid):
        out.append("owner")
    if a.linkname != b.linkname:
        out.append("target")
    return out


def _content(old: Layers, new: Layers, path: str, a: Change, b: Change) -> list[str]:
    """``content`` (and ``size``) when two regular files' bytes differ. The digests decide
    where both are known: a hard link's tar header says 0 bytes, its snapshot the file's size."""
    da, db = old.content_digest(old.top, path), new.content_digest(new.top, path)
    if da is not None and db is not None:
        return [] if da == db else ["content"] + (["size"] if a.size != b.size else [])
    return ["size"] if a.size != b.size else []


def compare(old: Layers, new: Layers) -> Comparison:
    """Files added, removed and changed from ``old``'s top layer to ``new``'s (regular files
    by the digest of their bytes)."""
    a, b = final_state(old.diffs), final_state(new.diffs)
    changes: list[FileChange] = []
    for path in sorted(a.keys() | b.keys()):
        before, after = a.get(path), b.get(path)
        if before is None and after is not None:
            changes.append(FileChange(path, ADDED, after.type.value, -1, after.size))
        elif after is None and before is not None:
            changes.append(FileChange(path, REMOVED, before.type.value, before.size, -1))
        elif before is not None and after is not None:
            what = _differences(before, after)
            if before.type is FileType.FILE and after.type is FileType.FILE:
                what = _content(old, new, path, before, after) + what
            if what:
                changes.append(FileChange(path, CHANGED, after.type.value, before.size, after.size, ",".join(what)))
    return Comparison(old.name, new.name, changes)
