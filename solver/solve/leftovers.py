"""Clean up after builds that died (``kill -9``): their containers, mounts and active snapshots.

A build process names its containers ``llbook-<pid>-<random>`` and their bundle
directories ``llbook-bundle-<pid>-*``, mounts under ``<cache>/tmp/mnt-<pid>/`` and names
its active snapshots and views ``<kind>-<pid>-<random>``. When that pid is no longer
alive, its containers are ended and their bundles removed, its mounts detached and its
active snapshots removed. Live builds are never touched.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from solver.cache.locking import pid_alive

_MNT_RE = re.compile(r"^mnt-(\d+)$")
_KEY_RE = re.compile(r"^[a-z]+-(\d+)-[0-9a-f]{32}$")


def _dead(pid: int) -> bool:
    return pid != os.getpid() and not pid_alive(pid)


def unmount_dead(tmp: Path) -> list[str]:
    """Detach the mounts of dead builds under ``tmp/mnt-<pid>`` and remove those dirs."""
    from solver.snapshot.mount import mount_points_under, unmount
    cleaned = []
    if not tmp.is_dir():
        return cleaned
    for entry in os.scandir(tmp):
        match = _MNT_RE.match(entry.name)
        if not match or not _dead(int(match.group(1))):
            continue
        for point in mount_points_under(entry.path):
            try:
                unmount(point)
                cleaned.append(point)
            except Exception:  # noqa: BLE001 - reported by the caller through what is left
                continue
        if not mount_points_under(entry.path):
            for sub in os.scandir(entry.path):
                try:
                    os.rmdir(sub.path)
                except OSError:
                    pass
            try:
                os.rmdir(entry.path)
            except OSError:
                pass
    return cleaned


def remove_dead_active(snapshotter: Any) -> list[str]:
    """Remove active snapshots and views whose owning process is dead."""
    removed = []
    for info in snapshotter.list():
        if info.kind == "committed":
            continue
        match = _KEY_RE.match(info.name)
        if match and _dead(int(match.group(1))):
            try:
                snapshotter.remove(info.name)
                removed.append(info.name)
            except Exception:  # noqa: BLE001
                continue
    return removed


def end_dead_containers(bundle_parent: Path | None = None) -> list[str]:
    """End the containers of dead builds and remove their bundle directories."""
    from solver.executor.reaper import end_orphans, remove_orphan_bundles
    from solver.executor.runc import runtime_commands
    ended = end_orphans(runtime_commands(), _dead)
    return ended + remove_orphan_bundles(Path(bundle_parent or tempfile.gettempdir()), _dead)
