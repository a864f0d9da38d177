"""File trees of image layers as dive shows them: one layer's own changes, or the filesystem
aggregated up to a layer, served one directory at a time, sorted by name or by size.

Trees are flat maps (path → ``TreeEntry``) with a children index, so a 50,000-file layer
costs one pass to build and each expanded directory only its own children. A directory's
size is the sum of the sizes below it (computed once, on the first sort or row).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from solver.layers.pathtrie import PathTrie
from solver.snapshot.diff import ADDED, MODIFIED, REMOVED, Change, FileType, LayerDiff

UNMODIFIED = "unmodified"
KINDS = (ADDED, MODIFIED, REMOVED, UNMODIFIED)
LAYER_ONLY, AGGREGATED = "layer", "aggregated"
BY_NAME, BY_SIZE = "name", "size"
MAX_CHILDREN = 5000  # a directory lists at most this many entries (the rest is summarised)


@dataclass
class TreeEntry:
    """One path of a tree, with its change kind (or ``unmodified``)."""

    path: str
    kind: str
    type: str
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    linkname: str = ""

    @property
    def is_dir(self) -> bool:
        return self.type == FileType.DIR.value

    @classmethod
    def of(cls, change: Change, kind: str | None = None) -> "TreeEntry":
        return cls(change.path, kind or change.kind, change.type.value, change.size, change.mode,
                   change.uid, change.gid, change.linkname)

    @classmethod
    def implicit_dir(cls, path: str) -> "TreeEntry":
        return cls(path, UNMODIFIED, FileType.DIR.value, mode=0o755)

    def to_json(self, has_children: bool, size: int | None = None) -> dict[str, Any]:
        return {"name": self.path.rsplit("/", 1)[-1], "path": self.path, "dir": self.is_dir,
                "kind": self.kind, "size": self.size if size is None else size,
                "mode": mode_string(self.type, self.mode), "owner": f"{self.uid}:{self.gid}",
                "link": self.linkname, "has_children": has_children}


_TYPE_CHAR = {"dir": "d", "symlink": "l", "char": "c", "block": "b", "fifo": "p", "socket": "s"}


def mode_string(kind: str, mode: int) -> str:
    """``drwxr-xr-x`` as ls prints it."""
    return _TYPE_CHAR.get(kind, "-") + stat.filemode(mode)[1:]


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class FileTree:
    """Entries by path and each directory's children, sorted by name."""

    def __init__(self, entries: Iterable[TreeEntry]) -> None:
        self.entries: dict[str, TreeEntry] = {}
        for entry in entries:
            self.entries[entry.path] = entry
        for path in list(self.entries):
            self._ensure_parents(path)
        children: dict[str, list[str]] = {}
        for path in self.entries:
            if path != "/":
                children.setdefault(parent_of(path), []).append(path)
        self.children = {k: sorted(v) for k, v in children.items()}
        self._sizes: dict[str, int] | None = None

    def _ensure_parents(self, path: str) -> None:
        parent = parent_of(path)
        while parent != "/" and parent not in self.entries:
            self.entries[parent] = TreeEntry.implicit_dir(parent)
            parent = parent_of(parent)

    def __len__(self) -> int:
        return len(self.entries)

    def size_of(self, path: str) -> int:
        """A file's size, or the sum of the sizes below a directory."""
        if self._sizes is None:
            sizes: dict[str, int] = {}
            for where, entry in self.entries.items():
                if entry.is_dir or entry.kind == REMOVED:
                    continue
                sizes[where] = entry.size
                parent = where
                while parent != "/":
                    parent = parent_of(parent)
                    sizes[parent] = sizes.get(parent, 0) + entry.size
            self._sizes = sizes
        return self._sizes.get(path, 0)

    def kinds(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {k: set() for k in KINDS}
        for path, entry in self.entries.items():
            out[entry.kind].add(path)
        return out

    def shown(self, pattern: str, kinds: Sequence[str]) -> set[str] | None:
        """Paths to list under the filter (None: all): matching entries and their parents."""
        if not pattern and set(kinds) >= set(KINDS):
            return None
        regex = re.compile(pattern) if pattern else None
        out: set[str] = set()
        for path, entry in self.entries.items():
            if entry.kind not in kinds or (regex is not None and not regex.search(path)):
                continue
            while path not in out and path != "/":
                out.add(path)
                path = parent_of(path)
        return out

    def sorted_children(self, path: str, sort: str = BY_NAME) -> list[str]:
        """The children of ``path`` by name, or largest first (then by name)."""
        names = self.children.get(path, [])
        if sort == BY_SIZE:
            names = sorted(names, key=lambda p: (-self.size_of(p), p))
        return names

    def list_dir(self, path: str, shown: set[str] | None,
                 sort: str = BY_NAME) -> tuple[list[dict[str, Any]], int]:
        """The children of ``path`` as JSON rows, and how many were left out over the cap."""
        names = self.sorted_children(path, sort)
        if shown is not None:
            names = [p for p in names if p in shown]
        rows = []
        for child in names[:MAX_CHILDREN]:
            grand = self.children.get(child, [])
            has = bool(grand) if shown is None else any(g in shown for g in grand)
            rows.append(self.entries[child].to_json(has, self.size_of(child)))
        return rows, max(0, len(names) - MAX_CHILDREN)

    def walk(self, sort: str = BY_NAME, shown: set[str] | None = None) -> Iterable[tuple[int, TreeEntry]]:
        """Every entry depth first, with its depth (0 for the children of ``/``)."""
        stack = [(p, 0) for p in reversed(self.sorted_children("/", sort))]
        while stack:
            path, depth = stack.pop()
            if shown is not None and path not in shown:
                continue
            yield depth, self.entries[path]
            stack.extend((p, depth + 1) for p in reversed(self.sorted_children(path, sort)))


def layer_tree(diff: LayerDiff) -> FileTree:
    """The tree of one layer's own changes (parents it did not change are plain)."""
    return FileTree(TreeEntry.of(c) for c in diff.changes)


def aggregated_tree(diffs: Sequence[LayerDiff]) -> FileTree:
    """The filesystem after the last of ``diffs``: its changes coloured, the rest plain, its
    removals still listed (in red) where they were."""
    state: PathTrie[TreeEntry] = PathTrie()
    for diff in diffs[:-1]:
        _fold(state, diff)
    top = diffs[-1] if diffs else LayerDiff()
    _fold(state, top)
    for change in top.changes:
        state.set(change.path, TreeEntry.of(change))
    return FileTree(entry for _, entry in state.items())


def final_state(diffs: Sequence[LayerDiff]) -> dict[str, Change]:
    """What the filesystem holds after all of ``diffs`` (path → its last change)."""
    state: PathTrie[Change] = PathTrie()
    for diff in diffs:
        for change in diff.changes:
            if change.kind == REMOVED:
                state.remove(change.path)
            else:
                state.set(change.path, change)
    return dict(state.items())


def _fold(state: PathTrie[TreeEntry], diff: LayerDiff) -> None:
    for change in diff.changes:
        if change.kind == REMOVED:
            state.remove(change.path)
        else:
            state.set(change.path, TreeEntry.of(change, UNMODIFIED))
