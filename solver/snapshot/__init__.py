"""Snapshots: overlayfs and native (copy) snapshotters behind one interface, and layer diffs.

- ``base``: ``Snapshotter`` (prepare, prepare_merged, view, view_merged, mounts, commit,
  remove, exists, parents/parent, diff_dir, parent_layers, layer_diff, usage, list,
  remove_orphans) and its errors.
- ``mount``: ``Mount``, ``mount_all``, ``unmount``, ``mounted`` (context manager).
- ``overlay``: ``OverlaySnapshotter``; ``native``: ``NativeSnapshotter``.
- ``diff``: ``Change``, ``LayerDiff``, ``LowerView``, ``compute_diff``, ``walk_oci``.
- ``layout``: the atomic on-disk layout shared by both; ``fsutil``: copy/apply primitives.
- ``probe``: ``choose_snapshotter(root)``.
"""

from solver.snapshot.base import (
    SnapshotError,
    SnapshotExistsError,
    SnapshotInfo,
    SnapshotInUseError,
    SnapshotNotFoundError,
    Snapshotter,
)
from solver.snapshot.diff import Change, LayerDiff, LowerView, compute_diff, walk_oci
from solver.snapshot.mount import Mount, MountError, mount_all, mounted, unmount
from solver.snapshot.native import NativeSnapshotter
from solver.snapshot.overlay import OverlaySnapshotter
from solver.snapshot.probe import choose_snapshotter

__all__ = [
    "Change", "LayerDiff", "LowerView", "Mount", "MountError", "NativeSnapshotter",
    "OverlaySnapshotter", "SnapshotError", "SnapshotExistsError", "SnapshotInUseError",
    "SnapshotInfo", "SnapshotNotFoundError", "Snapshotter", "choose_snapshotter", "compute_diff",
    "mount_all", "mounted", "unmount", "walk_oci",
]
