"""Directory trees of the cache: their size, the mounts below them, and removal that never reaches through a mount."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from solver.cache.content import tmp_owner_pid


def tmp_pid(path: Path) -> int | None:
    """Owner pid of a tmp entry: ``ingest-<pid>-...`` (content store) or ``<word>-<pid>-...``."""
    pid = tmp_owner_pid(path)
    if pid is not None:
        return pid
    parts = path.name.split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


def mount_points_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` (from /proc/self/mountinfo; [] without /proc)."""
    root = os.path.realpath(directory).rstrip("/")
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape_mountinfo(fields[4])
        if point == root or point.startswith(root + "/"):
            points.append(point)
    return points


def _unescape_mountinfo(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo`` octal."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def remove_unmounted_tree(directory: Path, errors: list[str]) -> bool:
    """``rmtree`` unless something is mounted below (deleting through a mount would reach
    snapshots or host files). Returns True when the tree is gone."""
    mounted = mount_points_under(directory)
    if mounted:
        errors.append(f"not removing {directory}: still mounted at {', '.join(mounted)}")
        return False
    shutil.rmtree(directory, ignore_errors=True)
    return not directory.exists()


def remove_tree(directory: Path, tmp_dir: Path, errors: list[str]) -> None:
    """Rename into ``tmp_dir`` first (atomic), then delete; leftovers are cleaned by check."""
    if not directory.exists():
        return
    if mount_points_under(directory):
        errors.append(f"not removing {directory}: something is mounted below it")
        return
    trash = tmp_dir / f"trash-{os.getpid()}-{os.urandom(16).hex()}"
    try:
        os.rename(directory, trash)
    except OSError as e:
        errors.append(f"removing {directory}: {e}")
        return
    remove_unmounted_tree(trash, errors)


def tree_size(directory: Path) -> int:
    """Bytes of the regular files below ``directory`` (lstat sizes)."""
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total
