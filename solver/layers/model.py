"""The layers of one image or result: the layer list, trees built on demand, dive's
efficiency figures, file previews and per-file diffs between layers.

Where the files' bytes come from is a ``FileReader``: the snapshotter's diff directories for
a built result (``solver.layers.snapshots``), the layer blobs for an image
(``solver.layers.image``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from solver.layers.efficiency import Efficiency, compute_efficiency
from solver.layers.preview import Preview, preview_bytes, preview_link
from solver.layers.tree import AGGREGATED, BY_NAME, KINDS, LAYER_ONLY, FileTree, aggregated_tree, layer_tree
from solver.snapshot.diff import REMOVED, Change, FileType, LayerDiff

MAX_DIFF_BYTES = 1 << 20


class FileReader(Protocol):
    """Reads a regular file as it is in a given layer's filesystem."""

    def read(self, layer: int, path: str, limit: int) -> bytes | None: ...

    def digest(self, layer: int, path: str) -> str | None: ...


@dataclass
class LayerInfo:
    index: int
    snapshot: str
    size: int
    instruction: str
    digest: str  # the layer blob's digest when it exists (a pulled layer); "" before an export
    vertex: str = ""  # the vertex that made it
    cache_key: str = ""  # that vertex's cache key (names a built layer before it has a digest)
    added: int = 0
    modified: int = 0
    removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, index: int, diff: LayerDiff, instruction: str, digest: str = "", snapshot: str = "",
           **extra: str) -> "LayerInfo":
        return cls(index, snapshot, diff.size, instruction, digest, added=len(diff.added),
                   modified=len(diff.modified), removed=len(diff.removed), **extra)


@dataclass
class Layers:
    """The layers of one image or result, bottom first, with trees built on demand."""

    name: str
    layers: list[LayerInfo]
    diffs: list[LayerDiff]
    reader: FileReader | None = None
    platform: str = ""
    _trees: dict[tuple[int, str], FileTree] = field(default_factory=dict, repr=False)
    _shown: dict[tuple[int, str, str, tuple[str, ...]], set[str] | None] = field(default_factory=dict, repr=False)
    _efficiency: Efficiency | None = field(default=None, repr=False)
    _paths: dict[int, dict[str, Change]] = field(default_factory=dict, repr=False)

    @property
    def top(self) -> int:
        return len(self.layers) - 1

    def tree(self, layer: int, mode: str = LAYER_ONLY) -> FileTree:
        key = (layer, mode)
        if key not in self._trees:
            if len(self._trees) > 8:
                self._trees.clear()
                self._shown.clear()
            self._trees[key] = (layer_tree(self.diffs[layer]) if mode == LAYER_ONLY
                                else aggregated_tree(self.diffs[:layer + 1]))
        return self._trees[key]

    def children(self, layer: int, path: str = "/", mode: str = LAYER_ONLY, pattern: str = "",
                 kinds: Sequence[str] = KINDS, sort: str = BY_NAME) -> dict[str, Any]:
        """One directory's rows for the tree view (raises ``re.error`` on a bad pattern)."""
        tree = self.tree(layer, mode)
        key = (layer, mode, pattern, tuple(sorted(kinds)))
        if key not in self._shown:
            self._shown[key] = tree.shown(pattern, kinds)
        rows, more = tree.list_dir(path, self._shown[key], sort)
        return {"path": path, "entries": rows, "more": more, "sort": sort}

    @property
    def efficiency(self) -> Efficiency:
        if self._efficiency is None:
            self._efficiency = compute_efficiency(self.diffs)
        return self._efficiency

    def totals(self) -> dict[str, Any]:
        eff = self.efficiency
        return {"size": eff.size, "user_size": eff.user_size, "wasted": eff.wasted,
                "score": eff.score, "wasted_percent": eff.wasted_user_percent,
                "inefficiencies": [{"path": c.path, "size": c.cumulative_size, "count": len(c.layers)}
                                   for c in eff.inefficiencies[:50]]}

    def entry(self, layer: int, path: str) -> Change | None:
        """The change that made ``path`` what it is as of ``layer`` (None when absent)."""
        for index in range(layer, -1, -1):
            by_path = self._by_path(index)
            for above in _parents(path):
                change = by_path.get(above)
                if change is not None and (change.kind == REMOVED or change.type is not FileType.DIR):
                    return None  # a parent removed or replaced by a non-directory hides it
            change = by_path.get(path)
            if change is not None:
                return None if change.kind == REMOVED else change
        return None

    def _by_path(self, index: int) -> dict[str, Change]:
        if index not in self._paths:
            self._paths[index] = self.diffs[index].by_path()
        return self._paths[index]

    def read(self, layer: int, path: str, limit: int = MAX_DIFF_BYTES) -> bytes | None:
        """A regular file's first ``limit`` + 1 bytes as of ``layer`` (None when absent or not a file)."""
        change = self.entry(layer, path)
        if change is None or change.type is not FileType.FILE or self.reader is None:
            return None
        return self.reader.read(layer, path, limit)

    def content_digest(self, layer: int, path: str) -> str | None:
        """sha256 of a regular file's bytes as of ``layer``."""
        change = self.entry(layer, path)
        if change is None or change.type is not FileType.FILE or self.reader is None:
            return None
        return self.reader.digest(layer, path)

    def preview(self, layer: int, path: str, cap: int) -> Preview:
        """A file's contents as of ``layer``: text up to ``cap`` bytes, hex for binaries, a
        symlink's target."""
        change = self.entry(layer, path)
        if change is None:
            return Preview(path, layer, "absent", note=f"{path} is not in layer {layer}'s filesystem")
        if change.type is FileType.SYMLINK:
            return preview_link(path, layer, change.linkname)
        if change.type is not FileType.FILE:
            return Preview(path, layer, change.type.value, size=change.size, note=f"{path} is a {change.type.value}")
        data = self.reader.read(layer, path, cap) if self.reader is not None else None
        if data is None:
            return Preview(path, layer, "absent", note="the file's bytes are not available")
        return preview_bytes(path, layer, data, cap, change.size)

    def file_diff(self, path: str, old_layer: int, new_layer: int) -> dict[str, Any]:
        """A unified diff of a text file between two layers."""
        old, new = self.read(old_layer, path), self.read(new_layer, path)
        out: dict[str, Any] = {"path": path, "old": old_layer, "new": new_layer, "binary": False,
                               "lines": [], "note": ""}
        if old is None and new is None:
            out["note"] = "not a regular file in either layer"
            return out
        data = [old or b"", new or b""]
        if any(b"\0" in d or len(d) > MAX_DIFF_BYTES for d in data):
            out["binary"] = True
            out["note"] = "binary or large file: " + ("identical" if data[0] == data[1] else "contents differ")
            return out
        a, b = (d.decode("utf-8", "replace").splitlines() for d in data)
        out["lines"] = list(difflib.unified_diff(a, b, f"layer {old_layer}:{path}", f"layer {new_layer}:{path}",
                                                 lineterm=""))
        if not out["lines"]:
            out["note"] = "identical"
        return out


def _parents(path: str) -> list[str]:
    """``/a``, ``/a/b``, ... up to ``path``'s parent: outermost first."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts) - 1)]


__all__ = ["AGGREGATED", "LAYER_ONLY", "FileReader", "LayerInfo", "Layers", "MAX_DIFF_BYTES"]
