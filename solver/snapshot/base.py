"""The snapshotter interface (containerd's, trimmed) and its errors.

A snapshot is *active* (``prepare``: writable, on top of committed parents), a *view*
(``view``: read-only) or *committed* (``commit``: immutable, usable as a parent). Keys
name active snapshots and views, names name committed ones; both are free strings (the
solver uses cache keys). ``mounts`` gives the ``Mount`` list to mount an active snapshot
or view; commit it only after it was unmounted.

``diff_dir(name)`` is where a committed layer's own changes live in overlay form, and
``layer_diff(name)`` the ``LayerDiff`` of that layer against its parents.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import LLBookError
from solver.snapshot.diff import LayerDiff, LowerView, compute_diff
from solver.snapshot.mount import Mount, MountError, mount_all, mounted, unmount

__all__ = [
    "ACTIVE", "COMMITTED", "VIEW", "Mount", "MountError", "SnapshotError", "SnapshotExistsError",
    "SnapshotInUseError", "SnapshotInfo", "SnapshotNotFoundError", "Snapshotter", "mount_all",
    "mounted", "unmount",
]

ACTIVE = "active"
VIEW = "view"
COMMITTED = "committed"


class SnapshotError(LLBookError):
    """A snapshot operation that cannot be done."""


class SnapshotNotFoundError(SnapshotError):
    """No snapshot with that key or name."""


class SnapshotExistsError(SnapshotError):
    """A snapshot with that key or name exists already."""


class SnapshotInUseError(SnapshotError):
    """The snapshot still has children and cannot be removed."""


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``list()`` reports about one snapshot."""

    name: str  # the key of an active snapshot or view, the name of a committed one
    kind: str  # active | view | committed
    parents: tuple[str, ...] = field(default_factory=tuple)  # bottom first
    created: float = 0.0
    path: Path = Path()


class Snapshotter(abc.ABC):
    """containerd-style snapshotter rooted at one directory."""

    root: Path

    @abc.abstractmethod
    def prepare(self, key: str, parent: str | None = None) -> list[Mount]:
        """A new writable snapshot ``key`` on top of the committed ``parent``."""

    @abc.abstractmethod
    def prepare_merged(self, key: str, parents: Sequence[str]) -> list[Mount]:
        """A writable snapshot on the merge of several committed snapshots (LLB MergeOp):
        later parents are on top of earlier ones."""

    @abc.abstractmethod
    def view(self, key: str, parent: str | None = None) -> list[Mount]:
        """A read-only snapshot ``key`` of the committed ``parent``."""

    @abc.abstractmethod
    def view_merged(self, key: str, parents: Sequence[str]) -> list[Mount]:
        """A read-only view of the merge of several committed snapshots."""

    @abc.abstractmethod
    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active snapshot or view."""

    @abc.abstractmethod
    def commit(self, name: str, key: str) -> None:
        """Turn the (unmounted) active snapshot ``key`` into the committed ``name``."""

    @abc.abstractmethod
    def remove(self, key_or_name: str) -> None:
        """Remove an active snapshot, a view or a committed snapshot without children."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool:
        """True when a committed snapshot ``name`` exists."""

    @abc.abstractmethod
    def parents(self, name: str) -> list[str]:
        """The direct parents of a snapshot, bottom first (several for a merge)."""

    @abc.abstractmethod
    def diff_dir(self, name: str) -> Path:
        """The directory holding the committed layer's own changes in overlay form."""

    @abc.abstractmethod
    def parent_layers(self, name: str) -> list[Path]:
        """The overlay-form layers (top first) of the view under the layer ``name``."""

    @abc.abstractmethod
    def usage(self, name: str) -> int:
        """Bytes of disk the snapshot itself takes."""

    @abc.abstractmethod
    def list(self) -> list[SnapshotInfo]:
        """Every snapshot of the store."""

    @abc.abstractmethod
    def remove_orphans(self, *, include_active: bool = False,
                       min_age: float = 0.0) -> "builtins.list[str]":
        """Delete leftovers of interrupted work older than ``min_age`` seconds (and, if
        asked, all active snapshots and views); return what was removed."""

    def parent(self, name: str) -> str | None:
        """The single parent of ``name``; None for a base layer or a merge."""
        found = self.parents(name)
        return found[0] if len(found) == 1 else None

    def layer_diff(self, name: str) -> LayerDiff:
        """The changes of the committed layer ``name`` against its parents."""
        return compute_diff(self.diff_dir(name), LowerView(self.parent_layers(name)))
