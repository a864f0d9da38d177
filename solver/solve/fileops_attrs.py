"""Applying metadata to created entries: owners (best effort without root), owner access, times, xattrs, MkdirAll.

Process umask is not consulted: modes are set with explicit ``chmod`` after creation,
which is what BuildKit gets by running with ``umask 0``. Without root (the binder case:
no namespaces, one uid) owners cannot be given away, so ``chown`` is best effort, and
created entries keep owner access (``u+rw``, ``u+rwx`` for directories) so that later
steps can still write into them. This is the same policy as ``solver.source.tarsafe``.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    """Numeric owner applied to created files (a resolved ``ChownOpt``)."""

    uid: int
    gid: int


def unprivileged() -> bool:
    """True when not running as root (see the module notes)."""
    return os.geteuid() != 0


def with_owner_access(mode: int, is_dir: bool) -> int:
    """``mode``, plus owner read/write (and search for directories) when unprivileged."""
    if not unprivileged():
        return mode
    return mode | (0o700 if is_dir else 0o600)


def lchown_best_effort(path: str | Path, uid: int, gid: int) -> None:
    """``lchown``; without root, giving a file away is refused by the kernel and skipped."""
    try:
        os.lchown(path, uid, gid)
    except PermissionError:
        if not unprivileged():
            raise


def set_times(path: str | Path, timestamp_ns: int | None) -> None:
    """Set atime and mtime of ``path`` itself (not a symlink's target); None keeps them."""
    if timestamp_ns is None:
        return
    os.utime(path, ns=(timestamp_ns, timestamp_ns), follow_symlinks=False)


def chown_path(path: str | Path, owner: Owner | None) -> None:
    """``lchown`` when an owner is given."""
    if owner is not None:
        lchown_best_effort(path, owner.uid, owner.gid)


def mkdir_all(path: Path, mode: int, owner: Owner | None, timestamp_ns: int | None) -> list[Path]:
    """fsutil's ``MkdirAll`` on an already-resolved path: create missing directories
    with ``mode & 0o777``, chown and time them; return the ones created, outermost first.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return []
        raise _os_error(path, errno.ENOTDIR)
    created: list[Path] = []
    parent = path.parent
    if parent != path:
        created = mkdir_all(parent, mode, owner, timestamp_ns)
    try:
        os.mkdir(path, mode & 0o777)
    except FileExistsError:
        if os.path.isdir(path) and not os.path.islink(path):
            return created
        raise
    os.chmod(path, with_owner_access(mode & 0o777, True))
    chown_path(path, owner)
    set_times(path, timestamp_ns)
    created.append(path)
    return created


def _os_error(path: Path | str, code: int) -> OSError:
    return OSError(code, os.strerror(code), str(path))


def copy_xattrs(src: str, dst: str) -> None:
    """Copy extended attributes without following symlinks; failures are ignored,
    as BuildKit's FileOp logs and ignores them."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            continue
