"""Follow paths of a build context (fsutil's ``FollowLinks``): their symlinks resolved inside the context, as include patterns."""

from __future__ import annotations

import os
import stat as st_mod
from pathlib import Path
from typing import Iterable, Sequence

from solver.source.context_confined import DIR_FLAGS, open_dir_beneath, split_relpath
from solver.source.context_entries import ContextError
from solver.llb.patternmatch import clean_path, contains_wildcards, filepath_match

_MAX_LINKS = 255


class _FollowResolver:
    """fsutil's ``FollowLinks``: symlinks on the follow paths, resolved in the context."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.resolved: set[str] = set()
        self.depth = 0

    def lstat(self, relpath: str) -> os.stat_result | None:
        parts = split_relpath(relpath)
        if not parts:
            return None
        try:
            fd = open_dir_beneath(self.root_fd, parts[:-1])
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.lstat(parts[-1], dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(fd)

    def listdir(self, relpath: str) -> list[str]:
        try:
            fd = open_dir_beneath(self.root_fd, split_relpath(relpath))
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def read_symlink(self, current: str, allow_wildcard: bool) -> list[str] | None:
        base = current.rsplit("/", 1)[-1]
        parent = current.rsplit("/", 1)[0] if "/" in current else "."
        if allow_wildcard and contains_wildcards(base):
            out: list[str] = []
            for name in self.listdir(parent):
                if _quiet_match(base, name):
                    out.extend(self.read_symlink(clean_path(parent + "/" + name), False) or [])
            return out or None
        st = self.lstat(current)
        if st is None or not st_mod.S_ISLNK(st.st_mode):
            return None
        fd = open_dir_beneath(self.root_fd, split_relpath(parent))
        try:
            link = clean_path(os.readlink(base, dir_fd=fd))
        finally:
            os.close(fd)
        if link.startswith("/"):
            return [link]
        return [clean_path("/" + parent + "/" + link)]

    def append(self, path: str) -> None:
        self.depth += 1
        if self.depth > _MAX_LINKS:
            raise ContextError(f"{path!r}: too many symlinks")
        rest = clean_path(path.lstrip("/") or ".")
        current = "."
        while True:
            head, _, rest = rest.partition("/")
            current = clean_path(current + "/" + head)
            targets = self.read_symlink(current, True)
            if (rest == "" or targets is not None) and current in self.resolved:
                return
            if targets is not None:
                self.resolved.add(current)
                for target in targets:
                    self.append(clean_path(target + "/" + rest) if rest else target)
                return
            if rest == "":
                self.resolved.add(current)
                return


def _quiet_match(pattern: str, name: str) -> bool:
    """``filepath.Match`` with a malformed pattern counting as no match (fsutil ignores it)."""
    try:
        return filepath_match(pattern, name)
    except ValueError:
        return False


def dedupe_paths(paths: Iterable[str]) -> list[str] | None:
    """Sorted paths without those below another one; None when "." is among them."""
    out: list[str] = []
    last: str | None = None
    for p in sorted(paths):
        if p == ".":
            return None
        if last is not None and p.startswith(last + "/"):
            continue
        out.append(p)
        last = p
    return out


def resolve_follow_paths(root: str | Path, paths: Sequence[str]) -> list[str] | None:
    """The follow paths with their symlinks resolved, as include patterns.

    None means "everything" (one of them is the context root).
    """
    root_fd = os.open(os.fspath(root), DIR_FLAGS)
    try:
        return follow_targets(root_fd, paths)
    finally:
        os.close(root_fd)


def follow_targets(root_fd: int, paths: Sequence[str]) -> list[str] | None:
    resolver = _FollowResolver(root_fd)
    for p in paths:
        resolver.depth = 0
        resolver.append(p)
    return dedupe_paths(p.lstrip("/") for p in resolver.resolved)

