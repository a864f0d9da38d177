"""Choosing the snapshotter for a root directory: overlay where a test mount works there.

A root remembers its driver (``root/driver``), so a store made with overlay is never
reopened as native or the other way round. ``LLBOOK_SNAPSHOTTER`` (overlay | native)
forces a choice for a new root. Probe results are cached per process and root.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from solver.snapshot.base import SnapshotError, Snapshotter
from solver.snapshot.fsutil import remove_tree
from solver.snapshot.mount import Mount, MountError, mount_all, unmount
from solver.snapshot.native import NativeSnapshotter
from solver.snapshot.overlay import OverlaySnapshotter, kernel_overlay_options

DRIVERS = ("overlay", "native")


@functools.lru_cache(maxsize=None)
def overlay_supported(root: str) -> bool:
    """Mount a small overlay inside ``root`` (same filesystem as the snapshots), write
    through it, and check that the write landed in the upper directory."""
    Path(root).mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix="overlay-probe-", dir=root))
    try:
        for sub in ("lower1", "lower2", "upper", "work", "merged"):
            (probe / sub).mkdir()
        (probe / "lower1" / "f").write_text("x")
        options = (*kernel_overlay_options(), f"lowerdir={probe/'lower2'}:{probe/'lower1'}",
                   f"upperdir={probe/'upper'}", f"workdir={probe/'work'}")
        try:
            mount_all([Mount("overlay", "overlay", options)], probe / "merged")
        except MountError:
            return False
        try:
            (probe / "merged" / "g").write_text("y")
            os.unlink(probe / "merged" / "f")
            ok = (probe / "upper" / "g").exists() and os.path.lexists(probe / "upper" / "f")
        finally:
            unmount(probe / "merged")
        return ok
    except OSError:
        return False
    finally:
        remove_tree(probe)


def recorded_driver(root: Path) -> str | None:
    """The driver a snapshot root was made with (``root/driver``), if any."""
    try:
        value = (root / "driver").read_text().strip()
    except OSError:
        return None
    return value or None


def choose_snapshotter(root: str | Path, preference: str | None = None) -> Snapshotter:
    """The snapshotter for ``root``: its recorded driver, else the preference, else
    overlay when the probe mount works, else native."""
    root = Path(root)
    wanted = recorded_driver(root) or (preference if preference is not None
                                        else os.environ.get("LLBOOK_SNAPSHOTTER", "")).strip().lower()
    if wanted and wanted not in DRIVERS:
        raise SnapshotError(f"unknown snapshotter {wanted!r}; use one of {', '.join(DRIVERS)}")
    if wanted == "native":
        return NativeSnapshotter(root)
    if wanted == "overlay":
        if not overlay_supported(str(root)):
            raise SnapshotError(f"{root} needs overlayfs, which cannot be mounted here")
        return OverlaySnapshotter(root)
    if overlay_supported(str(root)):
        return OverlaySnapshotter(root)
    return NativeSnapshotter(root)
