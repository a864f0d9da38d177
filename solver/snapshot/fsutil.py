"""File-tree primitives shared by the snapshotters and the differ.

Copies keep modes, owners, times, symlinks, hardlinks, xattrs and device nodes. Overlay
markers (whiteouts, opaque directories) are recognised in both of their forms: the
kernel's (char device 0/0, ``trusted.overlay.opaque``/``user.overlay.opaque`` = ``y``) and
the OCI names (``.wh.<name>``, ``.wh..wh..opq``) that the native snapshotter writes where
it may not create device nodes.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import LLBookError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


class FsError(LLBookError):
    """A file-tree copy or apply that failed."""


def is_whiteout_stat(st: os.stat_result) -> bool:
    """The kernel's whiteout: a character device with device number 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque_dir(path: str | Path) -> bool:
    """True when ``path`` is a directory marked opaque (either xattr or the OCI marker file)."""
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return os.path.lexists(os.path.join(path, OPAQUE_MARKER))


def read_xattrs(path: str | Path, *, skip_overlay: bool = True) -> dict[str, bytes]:
    """Extended attributes of ``path`` (not following symlinks), without overlay's own."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in sorted(names):
        if skip_overlay and name.startswith(OVERLAY_XATTR_PREFIXES):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _write_xattrs(path: str, xattrs: dict[str, bytes]) -> None:
    for name, value in xattrs.items():
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                raise


def _chown(path: str, st: os.stat_result) -> None:
    try:
        os.lchown(path, st.st_uid, st.st_gid)
    except PermissionError:
        if os.geteuid() == 0:
            raise


def _finish(path: str, st: os.stat_result, xattrs: dict[str, bytes]) -> None:
    """Owner, xattrs, mode and times, in the order that keeps setuid bits."""
    _chown(path, st)
    _write_xattrs(path, xattrs)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


@dataclass
class HardlinkMap:
    """Remembers the first copy of each source inode so later names become hardlinks."""

    seen: dict[tuple[int, int], str] = field(default_factory=dict)

    def existing(self, st: os.stat_result) -> str | None:
        if st.st_nlink < 2 or stat.S_ISDIR(st.st_mode):
            return None
        return self.seen.get((st.st_dev, st.st_ino))

    def remember(self, st: os.stat_result, dst: str) -> None:
        if st.st_nlink >= 2 and not stat.S_ISDIR(st.st_mode):
            self.seen[(st.st_dev, st.st_ino)] = dst


def make_whiteout(path: str | Path) -> None:
    """Create a whiteout for ``path``: a 0/0 char device, or ``.wh.<name>`` without CAP_MKNOD."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    except PermissionError:
        p = Path(path)
        (p.parent / (WHITEOUT_PREFIX + p.name)).touch()


def mark_opaque(path: str | Path) -> None:
    """Mark a directory opaque: trusted xattr as root, user xattr or marker file otherwise."""
    for name in OPAQUE_XATTRS:
        try:
            os.setxattr(path, name, b"y", follow_symlinks=False)
            return
        except OSError:
            continue
    Path(path, OPAQUE_MARKER).touch()


def copy_entry(src: str, dst: str, st: os.stat_result, links: HardlinkMap | None = None,
               *, link_files: bool = False) -> None:
    """Copy one non-directory entry ``src`` (stat ``st``) to the new path ``dst``.

    ``link_files`` hardlinks regular files instead of copying their bytes (used for
    immutable committed trees on the same filesystem).
    """
    earlier = links.existing(st) if links else None
    if earlier is not None:
        os.link(earlier, dst)
        return
    mode = st.st_mode
    xattrs = read_xattrs(src)
    if stat.S_ISREG(mode):
        if link_files:
            os.link(src, dst)
            if links:
                links.remember(st, dst)
            return
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(dst, mode, st.st_rdev)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(dst, stat.S_IMODE(mode))
    elif stat.S_ISSOCK(mode):
        return  # sockets are not part of a filesystem image
    else:
        raise FsError(f"cannot copy {src}: unknown file type {oct(mode)}")
    _finish(dst, st, xattrs)
    if links:
        links.remember(st, dst)


def make_dir_like(src: str, dst: str, st: os.stat_result) -> None:
    """Create directory ``dst`` (if missing) with the metadata of ``src`` except times."""
    if not os.path.isdir(dst) or os.path.islink(dst):
        os.mkdir(dst, 0o700)
    _chown(dst, st)
    _write_xattrs(dst, read_xattrs(src))
    os.chmod(dst, stat.S_IMODE(st.st_mode))


def set_dir_times(dst: str, st: os.stat_result) -> None:
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src: str | Path, dst: str | Path) -> None:
    """Copy the whole tree ``src`` to the new directory ``dst`` with everything preserved."""
    src, dst = str(src), str(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    cp = shutil.which("cp")
    if cp:
        proc = subprocess.run([cp, "-a", "--reflink=auto", "--", src, dst],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return
        remove_tree(dst)
        if "--reflink" not in proc.stderr:
            raise FsError(f"copy {src} -> {dst}: {proc.stderr.strip()}")
    _copy_tree_py(src, dst)


def _copy_tree_py(src: str, dst: str) -> None:
    links = HardlinkMap()
    dirs: list[tuple[str, os.stat_result]] = []
    for root, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(root, src)
        target = dst if rel == "." else os.path.join(dst, rel)
        st = os.lstat(root)
        make_dir_like(root, target, st)
        dirs.append((target, st))
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            copy_entry(path, os.path.join(target, name), os.lstat(path), links)
    for target, st in reversed(dirs):
        set_dir_times(target, st)


def remove_path(path: str | Path) -> None:
    """Remove a file, symlink or whole directory tree; missing is fine."""
    p = str(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(p)
    else:
        os.unlink(p)


def remove_tree(path: str | Path) -> None:
    """``rm -rf``: also through directories without write or search permission."""
    def fix_and_retry(func: Callable[[str], object], failed_path: str, _exc_info: object) -> None:
        parent = os.path.dirname(failed_path)
        try:
            os.chmod(parent, 0o700)
            if os.path.isdir(failed_path) and not os.path.islink(failed_path):
                os.chmod(failed_path, 0o700)
            func(failed_path)
        except FileNotFoundError:
            pass

    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=fix_and_retry)
        else:
            os.unlink(path)


def disk_usage(path: str | Path) -> int:
    """Bytes of disk used by the tree at ``path``, counting each inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames, None]:
            p = root if name is None else os.path.join(root, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if name is not None and stat.S_ISDIR(st.st_mode):
                continue  # counted when walked as a root
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_blocks * 512
    return total


def apply_layer(layer: str | Path, target: str | Path) -> None:
    """Apply an overlay-form layer directory onto the plain tree ``target``.

    Whiteouts delete, opaque directories first empty the target directory, everything
    else is copied over (replacing what was there when types differ).
    """
    layer, target = str(layer), str(target)
    links = HardlinkMap()
    dirs: list[tuple[str, os.stat_result]] = []
    _apply_dir(layer, target, links, dirs, is_root=True)
    for path, st in reversed(dirs):
        set_dir_times(path, st)


def _apply_dir(src: str, dst: str, links: HardlinkMap, dirs: list[tuple[str, os.stat_result]],
               *, is_root: bool = False) -> None:
    st = os.lstat(src)
    if not is_root and is_opaque_dir(src):
        remove_path(dst)
    if os.path.lexists(dst) and not (os.path.isdir(dst) and not os.path.islink(dst)):
        os.unlink(dst)
    make_dir_like(src, dst, st)
    _strip_markers(dst)
    dirs.append((dst, st))
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        name = entry.name
        s_path, d_path = entry.path, os.path.join(dst, name)
        est = entry.stat(follow_symlinks=False)
        if name == OPAQUE_MARKER:
            continue
        if name.startswith(WHITEOUT_PREFIX) and stat.S_ISREG(est.st_mode):
            remove_path(os.path.join(dst, name[len(WHITEOUT_PREFIX):]))
        elif is_whiteout_stat(est):
            remove_path(d_path)
        elif stat.S_ISDIR(est.st_mode):
            _apply_dir(s_path, d_path, links, dirs)
        else:
            remove_path(d_path)
            copy_entry(s_path, d_path, est, links)


def _strip_markers(path: str) -> None:
    for name in OPAQUE_XATTRS:
        try:
            os.removexattr(path, name, follow_symlinks=False)
        except OSError:
            pass
