"""Access below a root through directory descriptors, with ``O_NOFOLLOW`` on every level, so no symlink (even one swapped in meanwhile) leads a read or write outside it."""

from __future__ import annotations

import os
import stat as st_mod
from pathlib import Path
from typing import BinaryIO, Sequence

from solver.source.context_entries import ContextError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def split_relpath(relpath: str) -> list[str]:
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ContextError(f"{relpath!r}: path escapes its root")
    return parts


class ConfinedOpener:
    """The file opener of one checksum pass: a path below ``root`` is opened through
    directory descriptors with ``O_NOFOLLOW`` on every level, as ``open_file_beneath`` does,
    but the descriptors of the current directory path stay open from one file to the next
    (a tree is hashed directory by directory), so a file costs one open, not one per level."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_fd = -1
        self.dirs: DirStack | None = None

    def __enter__(self) -> "ConfinedOpener":
        self.root_fd = os.open(self.root, DIR_FLAGS)
        self.dirs = DirStack(self.root_fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dirs is not None:
            self.dirs.fd_for([])  # closes every directory below the root
            self.dirs = None
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __call__(self, path: str) -> BinaryIO:
        rel = os.path.relpath(path, self.root)
        if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
            raise ContextError(f"{path}: outside the context")
        parts = split_relpath(rel)
        if not parts:
            raise ContextError("the context root is not a file")
        assert self.dirs is not None, "use ConfinedOpener in a with block"
        try:
            dir_fd = self.dirs.fd_for(parts[:-1])
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as error:  # gone, or swapped for a link or a directory, since it was listed
            raise ContextError(f"{rel!r}: {error.strerror or error}; the context changed while "
                               f"the build read it") from error
        return os.fdopen(fd, "rb")


def open_dir_beneath(base_fd: int, parts: Sequence[str]) -> int:
    """Open the directory ``parts`` below ``base_fd``, refusing symlinks on the way."""
    fd = os.dup(base_fd)
    try:
        for part in parts:
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        raise
    return fd


class DirStack:
    """Descriptors of the directories along the current walk path below one root."""

    def __init__(self, root_fd: int, create: bool = False) -> None:
        self.root_fd = root_fd
        self.create = create
        self._stack: list[tuple[str, int]] = []

    def fd_for(self, parts: Sequence[str]) -> int:
        """The fd of the directory ``parts`` (opened with O_NOFOLLOW on every level)."""
        depth = 0
        while depth < len(self._stack) and depth < len(parts) and self._stack[depth][0] == parts[depth]:
            depth += 1
        for _, fd in self._stack[depth:]:
            os.close(fd)
        del self._stack[depth:]
        for part in parts[depth:]:
            parent = self._stack[-1][1] if self._stack else self.root_fd
            if self.create:
                ensure_dir(parent, part)
            self._stack.append((part, os.open(part, DIR_FLAGS, dir_fd=parent)))
        return self._stack[-1][1] if self._stack else self.root_fd

    def close(self) -> None:
        for _, fd in self._stack:
            os.close(fd)
        self._stack.clear()


def ensure_dir(parent_fd: int, name: str) -> None:
    """Make ``name`` a real directory in ``parent_fd`` (replacing a non-directory)."""
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except FileNotFoundError:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        return
    if not st_mod.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        os.mkdir(name, 0o700, dir_fd=parent_fd)


def remove_existing(parent_fd: int, name: str) -> None:
    """Remove a non-directory ``name`` so that a new entry can take its place."""
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    if st_mod.S_ISDIR(st.st_mode):
        raise ContextError(f"{name!r}: a directory is in the way")
    os.unlink(name, dir_fd=parent_fd)



def open_file_beneath(root: Path, relpath: str) -> BinaryIO:
    """Open the regular file ``relpath`` below ``root`` for reading, refusing symlinks on the way."""
    parts = split_relpath(relpath)
    if not parts:
        raise ContextError("the context root is not a file")
    root_fd = os.open(root, DIR_FLAGS)
    try:
        dir_fd = open_dir_beneath(root_fd, parts[:-1])
    finally:
        os.close(root_fd)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    return os.fdopen(fd, "rb")
