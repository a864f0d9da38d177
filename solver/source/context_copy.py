"""Copying selected context entries into a directory (modes, owners, xattrs, symlinks, hard links, times), confined by descriptors."""

from __future__ import annotations

import errno
import os
import stat as st_mod
from dataclasses import dataclass, field

from solver.source.context_confined import DirStack, ensure_dir, open_dir_beneath, remove_existing, split_relpath
from solver.source.context_entries import ContextEntry, ContextError, EntryKind

_COPY_CHUNK = 1 << 20


def _copy_xattrs(src_fd: int, dst_fd: int) -> None:
    """Copy the xattrs a content checksum covers (not security./system. ones)."""
    try:
        names = os.listxattr(src_fd)
    except OSError:
        return
    for name in names:
        if name != "security.capability" and name.startswith(("security.", "system.")):
            continue
        try:
            os.setxattr(dst_fd, name, os.getxattr(src_fd, name))
        except OSError:
            continue


def _chown_quiet(fd: int, uid: int, gid: int) -> None:
    try:
        os.fchown(fd, uid, gid)
    except PermissionError:
        pass  # rootless: keep our own ids


@dataclass
class ContextCopier:
    """Writes selected entries below a destination directory, confined by fds."""

    src_root_fd: int
    dst_root_fd: int
    src: DirStack = field(init=False)
    dst: DirStack = field(init=False)
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[ContextEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.src = DirStack(self.src_root_fd)
        self.dst = DirStack(self.dst_root_fd, create=True)

    def close(self) -> None:
        self.src.close()
        self.dst.close()

    def copy(self, entry: ContextEntry) -> None:
        parts = split_relpath(entry.path)
        parent_parts, name = parts[:-1], parts[-1]
        dst_parent = self.dst.fd_for(parent_parts)
        if entry.kind == EntryKind.DIR:
            ensure_dir(dst_parent, name)
            self.dirs.append(entry)
            return
        remove_existing(dst_parent, name)
        if entry.kind == EntryKind.SYMLINK:
            os.symlink(entry.linkname, name, dir_fd=dst_parent)
            self._symlink_meta(dst_parent, name, entry)
        elif entry.kind == EntryKind.FILE:
            self._copy_file(parent_parts, name, dst_parent, entry)
        elif entry.kind in (EntryKind.FIFO, EntryKind.CHAR, EntryKind.BLOCK):
            try:
                os.mknod(name, entry.mode, entry.rdev, dir_fd=dst_parent)
            except PermissionError as exc:
                raise ContextError(f"{entry.path!r}: cannot create a device node here") from exc
            self._apply_meta_at(dst_parent, name, entry)

    def _copy_file(self, parent_parts: list[str], name: str, dst_parent: int, entry: ContextEntry) -> None:
        key = (entry.device, entry.inode)
        first = self.links.get(key)
        if first is not None:
            first_parts = split_relpath(first)
            first_dir = open_dir_beneath(self.dst_root_fd, first_parts[:-1])
            try:
                os.link(first_parts[-1], name, src_dir_fd=first_dir, dst_dir_fd=dst_parent, follow_symlinks=False)
            finally:
                os.close(first_dir)
            return
        src_parent = self.src.fd_for(parent_parts)
        src_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_parent)
        try:
            st = os.fstat(src_fd)
            if (st.st_dev, st.st_ino) != key or not st_mod.S_ISREG(st.st_mode):
                raise ContextError(f"{entry.path!r} changed while it was copied")
            dst_fd = os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst_parent
            )
            try:
                _copy_data(src_fd, dst_fd)
                _copy_xattrs(src_fd, dst_fd)
                _chown_quiet(dst_fd, entry.uid, entry.gid)
                os.fchmod(dst_fd, entry.perm)
                os.utime(dst_fd, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)
        if st.st_nlink > 1:
            self.links[key] = entry.path

    def _symlink_meta(self, dst_parent: int, name: str, entry: ContextEntry) -> None:
        try:
            os.chown(name, entry.uid, entry.gid, dir_fd=dst_parent, follow_symlinks=False)
        except PermissionError:
            pass
        os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dst_parent, follow_symlinks=False)

    def _apply_meta_at(self, dst_parent: int, name: str, entry: ContextEntry) -> None:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst_parent)
        try:
            path = f"/proc/self/fd/{fd}"
            try:
                os.chown(path, entry.uid, entry.gid)
            except PermissionError:
                pass
            os.chmod(path, entry.perm)
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)

    def finish_dirs(self) -> None:
        """Directory metadata last, deepest first, so that read-only dirs can be filled."""
        self.dst.close()
        for entry in sorted(self.dirs, key=lambda e: e.path.count("/"), reverse=True):
            parts = split_relpath(entry.path)
            fd = open_dir_beneath(self.dst_root_fd, parts)
            src_fd = open_dir_beneath(self.src_root_fd, parts)
            try:
                _copy_xattrs(src_fd, fd)
                _chown_quiet(fd, entry.uid, entry.gid)
                os.fchmod(fd, entry.perm)
                os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            finally:
                os.close(src_fd)
                os.close(fd)


def _copy_data(src_fd: int, dst_fd: int) -> None:
    """Copy a file's bytes in bounded chunks (copy_file_range where the kernel has it)."""
    while True:
        try:
            n = os.copy_file_range(src_fd, dst_fd, _COPY_CHUNK)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            break
        if n == 0:
            return
    while True:
        chunk = os.read(src_fd, _COPY_CHUNK)
        if not chunk:
            return
        os.write(dst_fd, chunk)

