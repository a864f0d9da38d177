"""BuildKit's content checksums (``cache/contenthash``) of path selections in a real directory.

What is hashed (all digests are ``"sha256:<hex>"``): the record of one entry
(``tarsum.py``), the contents of a directory and plain selectors (``hashtree.py``),
and here:

- **Wildcard / include / exclude selectors** (``includedPaths``): the selected file
  records and directory headers, in tree order, hashed as ``key + digest`` with the
  path relative to the selector's literal prefix and '/' written as "\\0"; a single
  selected entry named like the selector is returned as is, nothing selected gives
  the digest of empty input. A selector ending in '/' leaves out its own header.
- **Several selectors** (``NewContentHashFunc``): SHA-256 of the ``"\\0"``-joined digests.

API: ``checksum(root, selector, ...)``, ``checksum_many(root, selectors, ...)``,
``file_digests(root, selector, ...)`` (which entries a selector picks, with their
record digests), ``diff_digests(before, after)``, ``Selector`` (path plus BuildKit's
``ChecksumOpts``). Every function takes ``memo`` (``statmemo.StatMemo``), an
``opener`` (how regular files are opened, e.g. confined to a root) and ``visible``
(hide entries: hash a filtered build context in place).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

from solver.cache.hashtree import ChecksumNotFoundError, ContentHashError, HashTree, Visible, key_path
from solver.cache.statmemo import StatMemo
from solver.cache.tarsum import EMPTY_DIGEST, Opener, open_nofollow, sha256_digest
from solver.llb import gopath
from solver.llb.patternmatch import MatchInfo, PatternMatcher, contains_wildcards, path_match


# ---------------------------------------------------------------------- selectors


@dataclass(frozen=True)
class Selector:
    """One path selection with BuildKit's ``ChecksumOpts``."""

    path: str
    follow_symlinks: bool = False
    wildcard: bool = False
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    # Each must prefix some selected path (checked with filters only, as in BuildKit).
    required_paths: tuple[str, ...] = ()

    @property
    def has_filters(self) -> bool:
        return self.wildcard or bool(self.include_patterns) or bool(self.exclude_patterns)


def _split_wildcards(p: str) -> tuple[str, str]:
    """The literal prefix and the wildcard rest of a pattern (``splitWildcards``)."""
    p1: list[str] = []
    p2: list[str] = []
    found = False
    for part in gopath.join(p).split("/"):
        if not found and contains_wildcards(part):
            found = True
        part = part or "/"
        (p2 if found else p1).append(part)
    return gopath.join(*p1), gopath.join(*p2)


def _key_bytes(rel: str) -> bytes:
    """A path as a radix-tree key: '/' becomes NUL; the empty key is written as NUL."""
    return os.fsencode(rel).replace(b"/", b"\0") or b"\0"


@dataclass
class _Included:
    """One entry picked by a filtered selector (``includedPath``)."""

    path: str
    real: str = ""
    is_header: bool = False
    is_symlink: bool = False
    follow: bool = False
    included: bool = False
    digest: str = ""
    include_info: MatchInfo = field(default_factory=MatchInfo)
    exclude_info: MatchInfo = field(default_factory=MatchInfo)


@dataclass
class _Filter:
    """The include/exclude matchers of a selector."""

    include: PatternMatcher | None
    exclude: PatternMatcher | None

    @classmethod
    def of(cls, sel: Selector) -> "_Filter":
        try:
            inc = PatternMatcher(sel.include_patterns) if sel.include_patterns else None
            exc = PatternMatcher(sel.exclude_patterns) if sel.exclude_patterns else None
        except ValueError as exc_info:
            raise ContentHashError(f"invalid patterns: {exc_info}") from exc_info
        return cls(inc, exc)

    def should_include(self, candidate: str, item: _Included, parent: _Included | None) -> bool:
        """``shouldIncludePath``: include patterns must match, exclude patterns must not."""
        if self.include is not None:
            base = parent.include_info if parent is not None else MatchInfo()
            matched, item.include_info = self.include.matches_using_parent_results(candidate, base)
            if not matched:
                return False
        if self.exclude is not None:
            base = parent.exclude_info if parent is not None else MatchInfo()
            matched, item.exclude_info = self.exclude.matches_using_parent_results(candidate, base)
            if matched:
                return False
        return True


def _trim_candidate(fn: str, base: str) -> str:
    """``TrimSuffix(TrimPrefix(fn+"/", base+"/"), "/")``."""
    return (fn + "/").removeprefix(base + "/").removesuffix("/")


def _start_of(tree: HashTree, sel: Selector, p: str) -> tuple[str, str | None]:
    """The literal prefix of the selector and the real path its walk starts at (or None)."""
    if sel.wildcard:
        d1, d2 = _split_wildcards(p)
        if d1 == "/":
            return "", ""
        real = tree.resolve(d1, follow_trailing=d2 != "")
        return d1, (real if tree.lstat(real) is not None else None)
    real = tree.resolve(p, follow_trailing=False)
    if p == "":
        return "", ""
    return p, (real if tree.lstat(real) is not None else None)


def _included_paths(tree: HashTree, sel: Selector) -> tuple[str, list[_Included]]:
    """BuildKit's ``includedPaths``: the entries a filtered selector picks, in order."""
    ends_in_sep = sel.path.endswith("/")
    p = key_path(sel.path)
    filters = _Filter.of(sel)
    orig_prefix, start = _start_of(tree, sel, p)
    if start is None:
        return orig_prefix, []
    resolved_prefix = start
    included: list[_Included] = []
    parents: list[_Included] = []
    last_matched = ""
    for entry in tree.entries(start):
        fn = entry.real
        if fn.startswith(resolved_prefix):
            fn = orig_prefix + fn[len(resolved_prefix):]
        while parents and not (fn + ("/" if entry.is_header else "")).startswith(parents[-1].path + "/"):
            parents.pop()
        parent = parents[-1] if parents else None
        if entry.is_header and fn == p and ends_in_sep:
            continue
        item = _Included(
            path=fn,
            real=entry.real,
            is_header=entry.is_header,
            is_symlink=entry.is_symlink,
            follow=parent is None and sel.follow_symlinks,
        )
        if sel.wildcard:
            if p != "" and (last_matched == "" or not fn.startswith(last_matched + "/")):
                if not _pattern_matches(p, fn):
                    continue
                last_matched = fn
            base = last_matched
        else:
            base = p
        should = filters.should_include(_trim_candidate(fn, base), item, parent)
        if not should and not entry.is_header:
            continue
        item.digest = tree.record(entry.real)
        if should:
            for ancestor in parents:
                if not ancestor.included:
                    included.append(ancestor)
                    ancestor.included = True
            included.append(item)
            item.included = True
        if entry.is_header:
            parents.append(item)
    _check_required(sel, included)
    return orig_prefix, included


def _check_required(sel: Selector, included: list[_Included]) -> None:
    for required in sel.required_paths:
        if not any(item.path.startswith(required) for item in included):
            raise ChecksumNotFoundError(f"{required!r}: not found")


def _pattern_matches(pattern: str, name: str) -> bool:
    try:
        return path_match(pattern, name)
    except ValueError as exc:
        raise ContentHashError(f"bad wildcard {pattern!r}: {exc}") from exc


def _follow_included(tree: HashTree, included: list[_Included]) -> None:
    """Top-level symlinks of a following selector hash as their targets."""
    for item in included:
        if item.follow and item.is_symlink:
            item.digest = tree.lazy_checksum(item.path, True)
            item.is_symlink = False


def _filtered_checksum(tree: HashTree, sel: Selector) -> str:
    prefix, included = _included_paths(tree, sel)
    _follow_included(tree, included)
    if not included:
        return EMPTY_DIGEST
    if len(included) == 1 and gopath.base(sel.path) == gopath.base(included[0].path):
        return included[0].digest
    h = hashlib.sha256()
    for item in included:
        h.update(_key_bytes(item.path.removeprefix(prefix)) + item.digest.encode())
    return "sha256:" + h.hexdigest()


def _checksum(tree: HashTree, sel: Selector) -> str:
    if not sel.has_filters:
        return tree.lazy_checksum(sel.path, sel.follow_symlinks)
    return _filtered_checksum(tree, sel)


def _make_selector(
    selector: str | Selector,
    follow_symlinks: bool,
    wildcard: bool,
    include_patterns: Sequence[str],
    exclude_patterns: Sequence[str],
) -> Selector:
    if isinstance(selector, Selector):
        return selector
    return Selector(selector, follow_symlinks, wildcard, tuple(include_patterns), tuple(exclude_patterns))


# --------------------------------------------------------------------- public API


def checksum(
    root: str | Path,
    selector: str | Selector,
    *,
    follow_symlinks: bool = False,
    wildcard: bool = False,
    include_patterns: Sequence[str] = (),
    exclude_patterns: Sequence[str] = (),
    memo: StatMemo | None = None,
    opener: Opener = open_nofollow,
    visible: Visible | None = None,
    known_stats: Mapping[str, os.stat_result] | None = None,
) -> str:
    """BuildKit's ``contenthash.Checksum`` of ``selector`` inside the tree at ``root``.

    ``selector`` is a path relative to ``root`` ("/" or "" for the root itself), or a
    pattern when ``wildcard`` is set. Raises ``ChecksumNotFoundError`` for a missing
    path without filters. ``visible`` hides entries, as if they were not in the tree.
    """
    sel = _make_selector(selector, follow_symlinks, wildcard, include_patterns, exclude_patterns)
    tree = HashTree(root, memo, opener, visible, known_stats)
    return _checksum(tree, sel)


def checksum_many(
    root: str | Path,
    selectors: Sequence[str | Selector],
    *,
    follow_symlinks: bool = False,
    wildcard: bool = False,
    include_patterns: Sequence[str] = (),
    exclude_patterns: Sequence[str] = (),
    memo: StatMemo | None = None,
    opener: Opener = open_nofollow,
    visible: Visible | None = None,
    known_stats: Mapping[str, os.stat_result] | None = None,
) -> str:
    """The content-hash dep of a vertex input (``NewContentHashFunc``).

    Each selector path is joined to "/" first (so a trailing slash is dropped); no
    selectors means the whole tree. The result is SHA-256 of the "\\0"-joined digests.
    """
    tree = HashTree(root, memo, opener, visible, known_stats)
    chosen = list(selectors) or [""]
    digests: list[bytes] = []
    for raw in chosen:
        sel = _make_selector(raw, follow_symlinks, wildcard, include_patterns, exclude_patterns)
        sel = replace(sel, path=gopath.clean("/" + sel.path))
        digests.append(_checksum(tree, sel).encode())
    return sha256_digest(b"\0".join(digests))


def file_digests(
    root: str | Path,
    selector: str | Selector,
    *,
    follow_symlinks: bool = False,
    wildcard: bool = False,
    include_patterns: Sequence[str] = (),
    exclude_patterns: Sequence[str] = (),
    memo: StatMemo | None = None,
    opener: Opener = open_nofollow,
    visible: Visible | None = None,
    known_stats: Mapping[str, os.stat_result] | None = None,
) -> dict[str, str]:
    """Every entry a selector picks, as path relative to ``root`` -> record digest.

    Directories appear with their header record, the root as ".". Without filters the
    selected directory's own header is listed, as its contents digest covers it.
    Comparing two such maps tells which files were added, removed or changed.
    """
    sel = _make_selector(selector, follow_symlinks, wildcard, include_patterns, exclude_patterns)
    if not sel.has_filters:
        sel = replace(sel, path=key_path(sel.path))
    tree = HashTree(root, memo, opener, visible, known_stats)
    _, included = _included_paths(tree, sel)
    _follow_included(tree, included)
    return {(item.path.lstrip("/") or "."): item.digest for item in included}


def diff_digests(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, list[str]]:
    """Which paths were added, removed or changed between two ``file_digests`` maps."""
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k]),
    }
