"""The on-disk layout of a snapshot store, shared by the overlay and native snapshotters.

```
root/driver              "overlay" or "native": the snapshotter that owns this root
root/a/<h(key)>/         active snapshots and views: meta.json, fs/, work/
root/c/<h(name)>/        committed snapshots: meta.json, fs/, diff/ (native), flat/ (overlay),
                         children/ (one marker per snapshot built on this one)
root/tmp/<random>/       work in progress; renamed into a/ or c/ when complete
```

``h`` is a short hash of the key or name. Every snapshot appears with one ``rename``, so a
crash never leaves a half-built snapshot visible; leftovers stay in ``tmp/`` and are
removed by ``remove_orphans``.

``LayoutSnapshotter`` is the part of both snapshotters that is only this layout (the
``prepare``/``view`` entry points, removal, queries); ``parent_chain`` the layer chain
under a (merged) snapshot.
"""

from __future__ import annotations

import abc
import builtins
import errno
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solver.snapshot.base import (
    ACTIVE,
    COMMITTED,
    VIEW,
    Mount,
    SnapshotError,
    SnapshotExistsError,
    SnapshotInfo,
    SnapshotInUseError,
    SnapshotNotFoundError,
    Snapshotter,
)
from solver.snapshot.fsutil import disk_usage, remove_tree

META = "meta.json"
CHILDREN = "children"


@dataclass(frozen=True)
class Meta:
    name: str
    kind: str
    parents: tuple[str, ...] = field(default_factory=tuple)
    created: float = 0.0

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "kind": self.kind, "parents": list(self.parents),
                           "created": self.created}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Meta":
        data = json.loads(text)
        return cls(data["name"], data["kind"], tuple(data.get("parents", ())), float(data.get("created", 0)))


def short_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def write_file_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Layout:
    """Paths, metadata and the atomic create/commit/remove steps of a snapshot root."""

    root: Path

    def __post_init__(self) -> None:
        for sub in ("a", "c", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- paths and metadata -------------------------------------------------------------
    def active_dir(self, key: str) -> Path:
        return self.root / "a" / short_hash(key)

    def committed_dir(self, name: str) -> Path:
        return self.root / "c" / short_hash(name)

    def new_tmp_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="t", dir=self.root / "tmp"))

    @staticmethod
    def read_meta(directory: Path) -> Meta | None:
        try:
            return Meta.from_json((directory / META).read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValueError, KeyError):
            return None

    def find_active(self, key: str) -> tuple[Path, Meta] | None:
        directory = self.active_dir(key)
        meta = self.read_meta(directory)
        if meta is None or meta.name != key or meta.kind not in (ACTIVE, VIEW):
            return None
        return directory, meta

    def find_committed(self, name: str) -> tuple[Path, Meta] | None:
        directory = self.committed_dir(name)
        meta = self.read_meta(directory)
        if meta is None or meta.name != name or meta.kind != COMMITTED:
            return None
        return directory, meta

    def require_active(self, key: str) -> tuple[Path, Meta]:
        found = self.find_active(key)
        if found is None:
            raise SnapshotNotFoundError(f"no active snapshot or view {key!r}")
        return found

    def require_committed(self, name: str) -> tuple[Path, Meta]:
        found = self.find_committed(name)
        if found is None:
            raise SnapshotNotFoundError(f"no committed snapshot {name!r}")
        return found

    def find_any(self, key_or_name: str) -> tuple[Path, Meta]:
        found = self.find_active(key_or_name) or self.find_committed(key_or_name)
        if found is None:
            raise SnapshotNotFoundError(f"no snapshot {key_or_name!r}")
        return found

    # -- creation -----------------------------------------------------------------------
    def create_active(self, key: str, kind: str, parents: Sequence[str],
                      populate: Callable[[Path], None]) -> Path:
        """Build an active snapshot or view in tmp/ with ``populate`` and reveal it."""
        if self.find_active(key) is not None:
            raise SnapshotExistsError(f"snapshot {key!r} exists already")
        for parent in parents:
            self.require_committed(parent)
        tmp = self.new_tmp_dir()
        marker = "a-" + short_hash(key)
        try:
            populate(tmp)
            write_file_atomic(tmp / META, Meta(key, kind, tuple(parents), time.time()).to_json())
            self._add_child_markers(parents, marker)
            self._reveal(tmp, self.active_dir(key), key)
        except BaseException:
            self._remove_child_markers(parents, marker)
            remove_tree(tmp)
            raise
        return self.active_dir(key)

    def commit(self, name: str, key: str, finalize: Callable[[Path, Meta], None]) -> Path:
        """Turn active ``key`` into committed ``name``: ``finalize`` it, then rename."""
        directory, meta = self.require_active(key)
        if meta.kind != ACTIVE:
            raise SnapshotError(f"{key!r} is a view; only active snapshots can be committed")
        if self.find_committed(name) is not None:
            raise SnapshotExistsError(f"committed snapshot {name!r} exists already")
        finalize(directory, meta)
        (directory / CHILDREN).mkdir(exist_ok=True)
        committed = Meta(name, COMMITTED, meta.parents, time.time())
        write_file_atomic(directory / META, committed.to_json())
        target = self.committed_dir(name)
        self._add_child_markers(meta.parents, "c-" + short_hash(name))
        try:
            self._reveal(directory, target, name)
        except BaseException:
            self._remove_child_markers(meta.parents, "c-" + short_hash(name))
            write_file_atomic(directory / META, meta.to_json())
            raise
        self._remove_child_markers(meta.parents, "a-" + short_hash(key))
        return target

    @staticmethod
    def _reveal(src: Path, dst: Path, name: str) -> None:
        try:
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise SnapshotExistsError(f"snapshot {name!r} exists already") from exc
            raise

    # -- removal ------------------------------------------------------------------------
    def remove(self, key_or_name: str) -> None:
        directory, meta = self.find_any(key_or_name)
        if meta.kind == COMMITTED:
            children = directory / CHILDREN
            live = [m for m in _listdir(children) if self._marker_alive(m)]
            if live:
                raise SnapshotInUseError(f"snapshot {key_or_name!r} has {len(live)} children")
            marker = "c-" + short_hash(key_or_name)
        else:
            marker = "a-" + short_hash(key_or_name)
        doomed = self.root / "tmp" / ("rm-" + directory.name + "-" + os.urandom(4).hex())
        os.rename(directory, doomed)
        self._remove_child_markers(meta.parents, marker)
        remove_tree(doomed)

    def _marker_alive(self, marker: str) -> bool:
        where = self.root / ("a" if marker.startswith("a-") else "c") / marker[2:]
        return (where / META).exists()

    def _add_child_markers(self, parents: Sequence[str], marker: str) -> None:
        for parent in parents:
            children = self.committed_dir(parent) / CHILDREN
            children.mkdir(exist_ok=True)
            (children / marker).touch()

    def _remove_child_markers(self, parents: Sequence[str], marker: str) -> None:
        for parent in parents:
            try:
                (self.committed_dir(parent) / CHILDREN / marker).unlink()
            except FileNotFoundError:
                pass

    # -- listing and repair -------------------------------------------------------------
    def entries(self) -> Iterator[tuple[Path, Meta | None]]:
        for sub in ("a", "c"):
            for name in _listdir(self.root / sub):
                directory = self.root / sub / name
                yield directory, self.read_meta(directory)

    def list(self) -> list[SnapshotInfo]:
        out = []
        for directory, meta in self.entries():
            if meta is not None and self._well_placed(directory, meta):
                out.append(SnapshotInfo(meta.name, meta.kind, meta.parents, meta.created, directory))
        return sorted(out, key=lambda i: (i.kind, i.name))

    def _well_placed(self, directory: Path, meta: Meta) -> bool:
        expected = self.committed_dir(meta.name) if meta.kind == COMMITTED else self.active_dir(meta.name)
        return directory == expected

    def remove_orphans(self, *, include_active: bool = False, min_age: float = 0.0) -> "builtins.list[str]":
        removed: list[str] = []
        now = time.time()
        for name in _listdir(self.root / "tmp"):
            path = self.root / "tmp" / name
            if now - _mtime(path) >= min_age:
                remove_tree(path)
                removed.append(str(path))
        for directory, meta in list(self.entries()):
            broken = meta is None or not self._well_placed(directory, meta)
            if broken and now - _mtime(directory / META) < min_age:
                continue  # may be a commit or creation in progress in another process
            if broken or (include_active and meta is not None and meta.kind != COMMITTED):
                if meta is not None and not broken:
                    self.remove(meta.name)
                else:
                    remove_tree(directory)
                removed.append(str(directory))
        for directory, meta in self.entries():
            for marker in _listdir(directory / CHILDREN):
                if not self._marker_alive(marker):
                    (directory / CHILDREN / marker).unlink(missing_ok=True)
        return removed


class LayoutSnapshotter(Snapshotter):
    """A snapshotter on a ``Layout`` under ``root``, owned by ``driver``.

    Subclasses give ``_create`` (populate a new active snapshot or view), ``mounts``,
    ``commit``, ``diff_dir`` and ``parent_layers``; the rest is the layout's.
    """

    driver: str

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.layout = Layout(self.root)
        claim_root(self.root, self.driver)

    # -- creating ---------------------------------------------------------------------------
    def prepare(self, key: str, parent: str | None = None) -> list[Mount]:
        return self._create(key, ACTIVE, [parent] if parent else [])

    def prepare_merged(self, key: str, parents: Sequence[str]) -> list[Mount]:
        return self._create(key, ACTIVE, list(parents))

    def view(self, key: str, parent: str | None = None) -> list[Mount]:
        return self._create(key, VIEW, [parent] if parent else [])

    def view_merged(self, key: str, parents: Sequence[str]) -> list[Mount]:
        return self._create(key, VIEW, list(parents))

    @abc.abstractmethod
    def _create(self, key: str, kind: str, parents: list[str]) -> list[Mount]:
        """Create the active snapshot or view ``key`` (``kind``) on ``parents``; its mounts."""

    # -- removing ---------------------------------------------------------------------------
    def remove(self, key_or_name: str) -> None:
        self.layout.remove(key_or_name)

    # -- queries ----------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        return self.layout.find_committed(name) is not None

    def parents(self, name: str) -> list[str]:
        found = self.layout.find_committed(name) or self.layout.find_active(name)
        if found is None:
            self.layout.require_committed(name)
        return list(found[1].parents) if found else []

    def usage(self, name: str) -> int:
        directory, _ = self.layout.find_any(name)
        return disk_usage(directory)

    def list(self) -> list[SnapshotInfo]:
        return self.layout.list()

    def remove_orphans(self, *, include_active: bool = False, min_age: float = 0.0) -> "builtins.list[str]":
        return self.layout.remove_orphans(include_active=include_active, min_age=min_age)


def dedupe_lowers(lowers: Sequence[str]) -> list[str]:
    """Drop repeated layers, keeping each one at its lowest position."""
    seen: set[str] = set()
    kept: list[str] = []
    for layer in reversed(lowers):
        if layer not in seen:
            seen.add(layer)
            kept.append(layer)
    return list(reversed(kept))


def parent_chain(parents: Sequence[str], chain: Callable[[str], list[str]]) -> list[str]:
    """The layers (top first) under a snapshot on ``parents``, later parents on top:
    each parent's ``chain``, a layer shared by several kept at its lowest position."""
    lowers: list[str] = []
    for parent in reversed(parents):
        lowers += chain(parent)
    return dedupe_lowers(lowers)


def claim_root(root: Path, driver: str) -> None:
    """Record which snapshotter owns ``root``; refuse a root owned by the other one."""
    marker = root / "driver"
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        owner = marker.read_text().strip()
        if owner and owner != driver:
            raise SnapshotError(f"{root} holds {owner} snapshots; cannot open it as {driver}")
        return
    with os.fdopen(fd, "w") as f:
        f.write(driver + "\n")


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0
