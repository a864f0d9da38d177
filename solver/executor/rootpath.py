"""Resolve a path inside a root filesystem as if that root were ``/``.

Symlinks are followed, but absolute targets and ``..`` stay confined to the root, like
``github.com/cyphar/filepath-securejoin`` and continuity's ``fs.RootPath``.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from pathlib import Path

from solver.executor.base import ExecutorError

MAX_SYMLINKS = 255


def resolve_in_root(root: str | Path, path: str) -> Path:
    """The host path of ``path`` in ``root``, never outside ``root``."""
    base = Path(root)
    pending = deque(path.split("/"))
    resolved: list[str] = []
    links = 0
    while pending:
        comp = pending.popleft()
        if comp in ("", "."):
            continue
        if comp == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = base.joinpath(*resolved, comp)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(comp)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(comp)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise ExecutorError(f"too many levels of symbolic links resolving {path} in {root}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extendleft(reversed(target.split("/")))
    return base.joinpath(*resolved)


def first_missing(root: str | Path, path: str) -> Path | None:
    """The topmost component of ``path`` (resolved in ``root``) that does not exist yet."""
    target = resolve_in_root(root, path)
    base = Path(root)
    current = base
    for part in target.relative_to(base).parts:
        current = current / part
        if not os.path.lexists(current):
            return current
    return None
