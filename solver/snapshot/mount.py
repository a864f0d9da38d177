"""Mounts as data (containerd's ``mount.Mount``) and the syscalls that apply them.

``Mount(type, source, options)`` describes one mount the way containerd does. ``mount_all``
mounts a list of them on a target, ``unmount`` takes one off (lazy detach when busy), and
``mounted`` mounts on a fresh temporary directory for the length of a ``with`` block and
always unmounts, also on exceptions and KeyboardInterrupt.

A single read-write bind mount is not mounted at all: ``mounted`` yields its source,
as BuildKit's local mounter does. That is what lets the native snapshotter work where
mounting is not allowed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import LLBookError

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 0x2

# option -> (clear?, flag); like containerd's mount_linux.go parseMountOptions
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}


class MountError(LLBookError):
    """A mount or unmount that the kernel refused; ``errno`` is the kernel's reason."""

    def __init__(self, message: str, err: int = 0) -> None:
        super().__init__(message)
        self.errno = err


@dataclass(frozen=True)
class Mount:
    """One mount: ``type`` (overlay, bind, tmpfs...), ``source`` and mount ``options``."""

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    @property
    def is_bind(self) -> bool:
        return self.type in ("bind", "rbind") or "bind" in self.options or "rbind" in self.options


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


_LIBC = _libc()  # a loaded library handle, never mutated


def _parse_options(options: Sequence[str]) -> tuple[int, str]:
    flags = 0
    data: list[str] = []
    for option in options:
        known = _FLAGS.get(option)
        if known is None:
            data.append(option)
            continue
        clear, flag = known
        flags = flags & ~flag if clear else flags | flag
    return flags, ",".join(data)


def _sys_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    rc = _LIBC.mount(source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags),
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(f"mount {fstype or 'bind'} {source} on {target} ({data[:200]}): "
                         f"{os.strerror(err)}", err)


def mount_one(m: Mount, target: str | Path) -> None:
    """Mount ``m`` on ``target``. Read-only binds get the remount that the kernel needs."""
    flags, data = _parse_options(m.options)
    fstype = "" if m.is_bind else m.type
    if m.is_bind:
        flags |= MS_BIND
    _sys_mount(m.source, str(target), fstype, flags & ~MS_RDONLY if m.is_bind else flags, data)
    if m.is_bind and flags & MS_RDONLY:
        try:
            _sys_mount("", str(target), "", (flags & ~MS_REC) | MS_REMOUNT | MS_BIND, "")
        except MountError:
            unmount(target)
            raise


def mount_all(mounts: Sequence[Mount], target: str | Path) -> None:
    """Mount each of ``mounts`` on ``target`` in order (the last one ends up on top)."""
    done = 0
    try:
        for m in mounts:
            mount_one(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def unmount(target: str | Path, *, attempts: int = 20) -> None:
    """Unmount ``target``; retry while busy, then fall back to a lazy detach."""
    path = str(target).encode()
    for attempt in range(attempts):
        if _LIBC.umount2(path, 0) == 0:
            return
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more)
            return
        if err != errno.EBUSY:
            raise MountError(f"unmount {target}: {os.strerror(err)}", err)
        time.sleep(0.01 * (attempt + 1))
    if _LIBC.umount2(path, MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise MountError(f"lazy unmount {target}: {os.strerror(err)}", err)


def mount_points_under(root: str | Path) -> list[str]:
    """Mount points at or below ``root`` in this mount namespace, deepest first."""
    top = os.path.realpath(root).rstrip("/")
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 5:
                continue
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == top or point.startswith(top + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _passthrough(mounts: Sequence[Mount]) -> str | None:
    """The source to use directly instead of mounting, as BuildKit's local mounter does."""
    if len(mounts) == 1 and mounts[0].is_bind and not mounts[0].readonly:
        return mounts[0].source
    return None


def _unmount_all(target: str, count: int) -> None:
    """Unmount ``count`` stacked mounts, finishing even if interrupted meanwhile."""
    interrupted: BaseException | None = None
    remaining = count
    while remaining > 0:
        try:
            unmount(target)
            remaining -= 1
        except KeyboardInterrupt as exc:  # finish the cleanup, then re-raise
            interrupted = exc
    if interrupted is not None:
        raise interrupted


@contextmanager
def mounted(mounts: Sequence[Mount], *, parent_dir: str | Path | None = None) -> Iterator[Path]:
    """Mount ``mounts`` on a fresh temporary directory and yield it; always unmount after."""
    direct = _passthrough(mounts)
    if direct is not None:
        yield Path(direct)
        return
    target = tempfile.mkdtemp(prefix="llbook-mnt-", dir=parent_dir)
    try:
        try:
            mount_all(mounts, target)
        except MountError:
            if not (len(mounts) == 1 and mounts[0].is_bind and _mount_forbidden()):
                raise
            yield Path(mounts[0].source)  # read-only is then a promise, not enforced
            return
        try:
            yield Path(target)
        finally:
            _unmount_all(target, len(mounts))
    finally:
        try:
            os.rmdir(target)
        except OSError:
            pass


def _mount_forbidden() -> bool:
    return os.geteuid() != 0
