"""Layer diffs computed from an overlay-form diff directory.

A layer's own changes live in a directory in overlay form (an overlay upperdir, or the
``diff/`` of a native snapshot): new and changed entries as themselves, removals as
whiteouts, replaced directories marked opaque. ``compute_diff`` turns one into a
``LayerDiff`` by walking only that directory and stat-ing the matching paths of the
parent's view (``LowerView``), so the cost follows the size of the change, not of the
root filesystem. ``walk_oci`` yields the same directory with the OCI whiteout names
that image layers use, for the exporters.

The result is normalised so that the overlay and the native snapshotter give the same
``LayerDiff`` for the same operations: inside an opaque directory, entries that also
existed below count as modified and the ones that are gone as removed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from solver.snapshot.fsutil import (
    OPAQUE_MARKER,
    WHITEOUT_PREFIX,
    is_opaque_dir,
    is_whiteout_stat,
)

ADDED = "added"
MODIFIED = "modified"
REMOVED = "removed"


class FileType(str, Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"
    SOCKET = "socket"


def file_type(mode: int) -> FileType:
    for test, kind in ((stat.S_ISREG, FileType.FILE), (stat.S_ISDIR, FileType.DIR),
                       (stat.S_ISLNK, FileType.SYMLINK), (stat.S_ISCHR, FileType.CHAR),
                       (stat.S_ISBLK, FileType.BLOCK), (stat.S_ISFIFO, FileType.FIFO)):
        if test(mode):
            return kind
    return FileType.SOCKET


@dataclass(frozen=True)
class Change:
    """One changed path of a layer. ``path`` is absolute in the image ("/etc/passwd")."""

    path: str
    kind: str  # added | modified | removed
    type: FileType
    size: int
    mode: int  # permission bits with setuid/setgid/sticky
    uid: int
    gid: int
    linkname: str = ""

    @classmethod
    def from_stat(cls, path: str, kind: str, host_path: str, st: os.stat_result) -> "Change":
        kind_of = file_type(st.st_mode)
        size = st.st_size if kind_of in (FileType.FILE, FileType.SYMLINK) else 0
        link = os.readlink(host_path) if kind_of is FileType.SYMLINK else ""
        return cls(path, kind, kind_of, size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, link)


@dataclass(frozen=True)
class LayerDiff:
    """All changes of one layer, sorted by path."""

    changes: tuple[Change, ...] = field(default_factory=tuple)

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def added(self) -> list[Change]:
        return self.of_kind(ADDED)

    @property
    def modified(self) -> list[Change]:
        return self.of_kind(MODIFIED)

    @property
    def removed(self) -> list[Change]:
        return self.of_kind(REMOVED)

    @property
    def size(self) -> int:
        """Bytes this layer adds: sizes of added and modified files and symlinks."""
        return sum(c.size for c in self.changes if c.kind != REMOVED)

    def by_path(self) -> dict[str, Change]:
        return {c.path: c for c in self.changes}


@dataclass(frozen=True)
class _Found:
    host_path: str
    st: os.stat_result


class LowerView:
    """The merged, read-only view of a stack of overlay-form layers, looked up lazily.

    ``layers`` are ordered top first, like overlay's ``lowerdir=``. Lookups follow the
    kernel's rules: a whiteout or a non-directory hides what is below, an opaque
    directory hides the same directory in lower layers.
    """

    def __init__(self, layers: Sequence[str | Path]) -> None:
        self.layers = [str(p) for p in layers]

    def lookup(self, rel: str) -> _Found | None:
        parts = _parts(rel)
        for layer in self.layers:
            state, found = _lookup_in_layer(layer, parts)
            if state == "found":
                return found
            if state == "hidden":
                return None
        return None

    def listdir(self, rel: str) -> dict[str, _Found]:
        """Visible children of directory ``rel``, merged over the layers."""
        parts = _parts(rel)
        out: dict[str, _Found] = {}
        hidden: set[str] = set()
        for layer in self.layers:
            state, found = _lookup_in_layer(layer, parts)
            if state == "hidden" or (found is not None and not stat.S_ISDIR(found.st.st_mode)):
                break
            if found is None:
                continue
            for name, child in _list_layer_dir(found.host_path, hidden):
                out.setdefault(name, child)
            if is_opaque_dir(found.host_path):
                break
        return out


def _parts(rel: str) -> list[str]:
    return [p for p in rel.strip("/").split("/") if p and p != "."]


def _lookup_in_layer(layer: str, parts: list[str]) -> tuple[str, _Found | None]:
    """'found' with the entry, 'hidden' (stop looking lower) or 'continue'."""
    path = layer
    opaque_above = False
    if not parts:
        return "found", _Found(layer, os.lstat(layer))
    for i, comp in enumerate(parts):
        parent, path = path, os.path.join(path, comp)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.lexists(os.path.join(parent, WHITEOUT_PREFIX + comp)) or opaque_above:
                return "hidden", None
            return "continue", None
        if is_whiteout_stat(st):
            return "hidden", None
        if i == len(parts) - 1:
            return "found", _Found(path, st)
        if not stat.S_ISDIR(st.st_mode):
            return "hidden", None
        opaque_above = opaque_above or is_opaque_dir(path)
    return "continue", None


def _list_layer_dir(path: str, hidden: set[str]) -> Iterator[tuple[str, _Found]]:
    with os.scandir(path) as it:
        entries = list(it)
    for entry in entries:
        name = entry.name
        st = entry.stat(follow_symlinks=False)
        if name == OPAQUE_MARKER:
            continue
        if name.startswith(WHITEOUT_PREFIX) and stat.S_ISREG(st.st_mode):
            hidden.add(name[len(WHITEOUT_PREFIX):])
            continue
        if is_whiteout_stat(st):
            hidden.add(name)
            continue
        if name not in hidden:
            yield name, _Found(entry.path, st)
    for entry in entries:  # names seen in an upper layer hide the lower ones too
        hidden.add(entry.name)


@dataclass(frozen=True)
class _UpperEntry:
    name: str  # the name in the image (whiteouts resolved)
    host_path: str
    st: os.stat_result
    whiteout: bool


def _upper_children(path: str) -> list[_UpperEntry]:
    out: list[_UpperEntry] = []
    with os.scandir(path) as it:
        for entry in it:
            st = entry.stat(follow_symlinks=False)
            if entry.name == OPAQUE_MARKER:
                continue
            if entry.name.startswith(WHITEOUT_PREFIX) and stat.S_ISREG(st.st_mode):
                out.append(_UpperEntry(entry.name[len(WHITEOUT_PREFIX):], entry.path, st, True))
            else:
                out.append(_UpperEntry(entry.name, entry.path, st, is_whiteout_stat(st)))
    return sorted(out, key=lambda e: e.name)


def compute_diff(diff_dir: str | Path, lower: LowerView | Sequence[str | Path]) -> LayerDiff:
    """The ``LayerDiff`` of the overlay-form ``diff_dir`` on top of ``lower``."""
    view = lower if isinstance(lower, LowerView) else LowerView(lower)
    changes: list[Change] = []
    _diff_dir(str(diff_dir), "/", view, lower_is_dir=True, opaque=False, out=changes)
    return LayerDiff(tuple(sorted(changes, key=lambda c: c.path)))


def _diff_dir(host: str, rel: str, lower: LowerView, *, lower_is_dir: bool, opaque: bool,
              out: list[Change]) -> None:
    children = _upper_children(host)
    present = {c.name for c in children if not c.whiteout}
    for child in children:
        path = rel.rstrip("/") + "/" + child.name
        below = lower.lookup(path) if lower_is_dir else None
        if child.whiteout:
            if below is not None and child.name not in present:
                out.append(Change.from_stat(path, REMOVED, below.host_path, below.st))
            continue
        kind = MODIFIED if below is not None else ADDED
        out.append(Change.from_stat(path, kind, child.host_path, child.st))
        if stat.S_ISDIR(child.st.st_mode):
            below_dir = below is not None and stat.S_ISDIR(below.st.st_mode)
            _diff_dir(child.host_path, path, lower, lower_is_dir=below_dir,
                      opaque=opaque or is_opaque_dir(child.host_path), out=out)
    if opaque and lower_is_dir:
        whited = {c.name for c in children if c.whiteout}
        for name, found in sorted(lower.listdir(rel).items()):
            if name not in present and name not in whited:
                path = rel.rstrip("/") + "/" + name
                out.append(Change.from_stat(path, REMOVED, found.host_path, found.st))


@dataclass(frozen=True)
class OciEntry:
    """One entry of a layer in OCI form: ``name`` is relative ("etc/.wh.foo")."""

    name: str
    kind: str  # entry | whiteout | opaque
    host_path: str | None = None
    st: os.stat_result | None = None


def walk_oci(diff_dir: str | Path) -> Iterator[OciEntry]:
    """The overlay-form ``diff_dir`` as OCI layer entries, depth first, names sorted per
    directory (Go's filepath.Walk order), opaque markers right after their directory."""
    yield from _walk_oci_dir(str(diff_dir), "")


def _walk_oci_dir(host: str, rel: str) -> Iterator[OciEntry]:
    if rel and is_opaque_dir(host):
        yield OciEntry(f"{rel}/{OPAQUE_MARKER}", "opaque")
    items: list[tuple[str, OciEntry]] = []
    for child in _upper_children(host):
        base = f"{rel}/" if rel else ""
        if child.whiteout:
            name = base + WHITEOUT_PREFIX + child.name
            items.append((WHITEOUT_PREFIX + child.name, OciEntry(name, "whiteout")))
        else:
            items.append((child.name, OciEntry(base + child.name, "entry", child.host_path, child.st)))
    for _, entry in sorted(items, key=lambda t: t[0]):
        yield entry
        if entry.kind == "entry" and entry.st is not None and stat.S_ISDIR(entry.st.st_mode):
            yield from _walk_oci_dir(entry.host_path or "", entry.name)
