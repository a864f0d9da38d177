"""FileOp path resolution: Go-style action paths, chroot-like symlink resolution inside a root, wildcard globbing.

This follows ``containerd/continuity`` ``fs.RootPath`` and ``tonistiigi/fsutil``'s
``rootPath``/``ResolveWildcards``. Every path that comes from an action is resolved inside
its root with ``root_path``: symlinks met on the way are followed as if the root were ``/``
(an absolute target restarts at the root, ``..`` stops at the root), so no action reads
or writes outside the directories it was given.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from solver.errors import FileOpError
from solver.executor.base import ExecutorError
from solver.executor.rootpath import resolve_in_root
from solver.llb import gopath
from solver.llb.patternmatch import BadPatternError, contains_wildcards, path_match



# ----------------------------------------------------------------- Go path helpers


def clean_action_path(s: str) -> str:
    """BuildKit's ``cleanPath``: absolute and clean, keeping a trailing ``/`` or ``/.``."""
    cleaned = gopath.join("/", s)
    if s.endswith("/."):
        if cleaned != "/":
            cleaned += "/"
        cleaned += "."
    elif s.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def display_path(root: Path, p: str | Path) -> str:
    """``p`` as seen from inside ``root`` ("/a/b"), for error messages."""
    text = str(p)
    base = str(root).rstrip("/")
    if text == base:
        return "/"
    if text.startswith(base + "/"):
        return text[len(base):]
    return text


# ----------------------------------------------------------------- confined paths


def root_path(root: Path, path: str) -> Path:
    """Resolve ``path`` inside ``root`` following symlinks as a chroot would.

    This is continuity's ``fs.RootPath``: every existing component that is a symlink
    is replaced by its target (absolute targets restart at ``root``), ``..`` never
    climbs above ``root``, and components that do not exist are kept as they are.
    The result always lies inside ``root``. The walk's one home is
    ``solver.executor.rootpath.resolve_in_root``; its errors become FileOpErrors here.
    """
    try:
        return resolve_in_root(root, path)
    except ExecutorError as exc:
        raise FileOpError(f"failed to resolve {path}: too many links", path) from exc
    except OSError as exc:
        raise FileOpError(f"failed to resolve {path}: {exc.strerror}", path) from exc


def root_path_parent(root: Path, path: str, follow_links: bool) -> Path:
    """fsutil's ``rootPath``: resolve ``path`` in ``root``; without ``follow_links``
    only its parent is resolved and its last component is kept as is."""
    p = gopath.join("/", path)
    if p == "/":
        return Path(root)
    if follow_links:
        return root_path(root, p)
    parent, name = gopath.split(p)
    return root_path(root, parent) / name


# ----------------------------------------------------------------- wildcards


def split_wildcards(p: str) -> tuple[str, str]:
    """fsutil's ``splitWildcards``: the literal leading directories and the pattern rest."""
    literal: list[str] = []
    pattern: list[str] = []
    found = False
    for part in gopath.clean(p).split("/"):
        if not found and contains_wildcards(part):
            found = True
        if part == "":
            part = "/"
        (pattern if found else literal).append(part)
    return gopath.join(*literal), gopath.join(*pattern)


def _max_match_depth(pattern: str) -> int:
    """How many path components a name matched by ``pattern`` can have at most.

    ``*`` and ``?`` never match '/', a character class may; so the bound is the
    number of literal separators plus the number of classes, plus one.
    """
    return pattern.count("/") + pattern.count("[") + 1


def resolve_wildcards(root: Path, src: str, follow_links: bool) -> list[str]:
    """fsutil's ``ResolveWildcards``: the root-relative paths that ``src`` matches.

    A ``src`` without wildcards is returned as its single, cleaned self. Matching
    walks the tree below the literal prefix without following symlinks, in lexical
    order, and does not descend into a matched directory.
    """
    literal, pattern = split_wildcards(src)
    if pattern == "":
        return [literal]
    base = root_path_parent(root, literal, follow_links)
    matches: list[str] = []
    try:
        _walk_matches(base, "", pattern, _max_match_depth(pattern), matches)
    except OSError as exc:
        shown = display_path(root, exc.filename or base)
        raise FileOpError(f"lstat {shown}: {exc.strerror}", shown) from exc
    return [os.path.relpath(m, root) for m in matches]


def _wildcard_match(pattern: str, name: str) -> bool:
    """``filepath.Match`` as fsutil uses it: a malformed pattern matches nothing."""
    try:
        return path_match(pattern, name)
    except BadPatternError:
        return False


def _walk_matches(path: Path, rel: str, pattern: str, max_depth: int, out: list[str]) -> None:
    """One step of ``filepath.Walk`` with a match test, appending matching paths."""
    is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    if rel:
        if _wildcard_match(pattern, rel):
            out.append(str(path))
            return
        if rel.count("/") + 1 >= max_depth:
            return
    if not is_dir:
        return
    for name in sorted(os.listdir(path)):
        _walk_matches(path / name, f"{rel}/{name}" if rel else name, pattern, max_depth, out)
