"""File primitives below the copier: a file's bytes copied in the kernel (copy_file_range, sendfile, then read/write), RemoveAll."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def lstat_or_none(path: str) -> os.stat_result | None:
    """``lstat``, or None when nothing is there."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def remove_all(path: str | Path) -> None:
    """``os.RemoveAll``: remove ``path`` and everything below it, never following symlinks."""
    st = lstat_or_none(str(path))
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    for name in os.listdir(path):
        remove_all(os.path.join(path, name))
    os.rmdir(path)


def copy_file_content(src: str, dst: str) -> None:
    """Copy a regular file's bytes into a new ``dst`` (kernel copy when possible)."""
    src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            _copy_fd(src_fd, dst_fd, os.fstat(src_fd).st_size)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _copy_fd(src_fd: int, dst_fd: int, size: int) -> None:
    written = 0
    try:
        while written < size:
            n = os.copy_file_range(src_fd, dst_fd, min(size - written, 1 << 30))
            if n == 0:
                break
            written += n
        return
    except OSError as exc:
        if written or exc.errno not in (errno.ENOSYS, errno.EXDEV, errno.EPERM, errno.EIO,
                                        errno.EOPNOTSUPP, errno.EINVAL):
            raise
    try:  # across filesystems (context -> overlay snapshot): still an in-kernel copy
        while written < size:
            n = os.sendfile(dst_fd, src_fd, written, min(size - written, 1 << 30))
            if n == 0:
                break
            written += n
        return
    except OSError as exc:
        if written or exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(src_fd, 1 << 20):
        os.write(dst_fd, chunk)
