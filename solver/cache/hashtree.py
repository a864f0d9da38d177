"""One root directory under checksum: confined symlink resolution, the tree walk, and directory contents digests (``checksum.go``).

- **Directory contents** (a ``Dir`` record ``/dir``): SHA-256 over
  ``"\\0" + <header record of the directory>`` (the ``/dir/`` record) followed by,
  for every child in byte order, ``"\\0" + name + <child digest>``, where a child
  directory contributes its own contents digest and symlinks are never followed.
- **Plain selector** (no wildcard, no patterns, ``lazy_checksum``): the digest of the
  path after resolving symlinks inside the root (the last component only with
  ``follow_symlinks``).

Symlinks are resolved like BuildKit does, confined to the root: absolute targets start
again at the root and ``..`` never climbs above it.
"""

from __future__ import annotations

import hashlib
import os
import stat as st_mod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

from solver.cache.statmemo import StatMemo
from solver.cache.tarsum import Opener, record_digest
from solver.errors import LLBookError
from solver.llb import gopath

MAX_SYMLINKS = 255

# Which entries exist in the tree: a path relative to the root ("src/a.py") -> bool.
# Used to hash a local context as the filtered copy a build would transfer.
Visible = Callable[[str], bool]


class ContentHashError(LLBookError):
    """A checksum that cannot be computed (bad pattern, symlink loop, unreadable file)."""


class ChecksumNotFoundError(ContentHashError, FileNotFoundError):
    """The selected path does not exist in the tree (BuildKit's ``errNotFound``)."""


def key_path(p: str) -> str:
    """BuildKit's ``keyPath``: cleaned absolute path, with the root written as ""."""
    cleaned = gopath.clean("/" + p)
    return "" if cleaned == "/" else cleaned


@dataclass(frozen=True)
class TreeEntry:
    """A header or a non-directory entry of the tree, in radix-key order."""

    real: str  # path inside the root, "" for the root itself
    is_header: bool
    is_symlink: bool


class HashTree:
    """Checksums of one root directory; caches what one call computes."""

    def __init__(
        self, root: str | Path, memo: StatMemo | None, opener: Opener, visible: Visible | None = None,
        known_stats: Mapping[str, os.stat_result] | None = None,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.memo = memo
        self.opener = opener
        self.visible = visible
        self.known_stats = known_stats  # relative path -> lstat taken by the caller just before
        self._records: dict[str, str] = {}
        self._dirs: dict[str, str] = {}
        self._stats: dict[str, os.stat_result | None] = {}

    # -- filesystem access below the root. Paths reach here only after resolve() walked
    #    them component by component, so none of their components is a symlink.
    def fs_path(self, p: str) -> str:
        return self.root + p if p else self.root

    def lstat(self, p: str) -> os.stat_result | None:
        """lstat of a real path below the root (None when missing or hidden), cached."""
        if p in self._stats:
            return self._stats[p]
        st: os.stat_result | None = None
        if not (p and self.visible is not None and not self.visible(p[1:])):
            known = self.known_stats.get(p[1:]) if self.known_stats is not None and p else None
            if known is not None:
                self._stats[p] = known
                return known
            try:
                st = os.lstat(self.fs_path(p))
            except (FileNotFoundError, NotADirectoryError):
                st = None
        self._stats[p] = st
        return st

    def readlink(self, p: str) -> str:
        return os.readlink(self.fs_path(p))

    def children(self, p: str) -> list[str]:
        names = os.listdir(self.fs_path(p))
        if self.visible is not None:
            prefix = p[1:] + "/" if p else ""
            names = [n for n in names if self.visible(prefix + n)]
        names.sort(key=os.fsencode)
        return names

    # -- symlink resolution (getFollowLinksCallback)
    def resolve(self, p: str, follow_trailing: bool) -> str:
        """Resolve symlinks of a key path inside the root; the result may not exist."""
        current = ""
        remaining = p.lstrip("/") if p else ""
        links = 0
        while remaining:
            part, _, remaining = remaining.partition("/")
            nxt = key_path(current + "/" + part)
            st = self.lstat(nxt)
            if st is None or not st_mod.S_ISLNK(st.st_mode):
                current = nxt
                continue
            if not follow_trailing and remaining == "":
                current = nxt
                break
            links += 1
            if links > MAX_SYMLINKS:
                raise ContentHashError(f"{p}: too many links")
            target = self.readlink(nxt)
            remaining = target + "/" + remaining
            if target.startswith("/"):
                current = ""
        return current

    # -- digests
    def record(self, p: str) -> str:
        """Record digest of the entry at real path ``p`` (a directory: its header)."""
        known = self._records.get(p)
        if known is None:
            st = self.lstat(p)
            if st is None:
                raise ChecksumNotFoundError(f"{p or '/'!r}: not found")
            known = record_digest(self.fs_path(p), st, memo=self.memo, opener=self.opener)
            self._records[p] = known
        return known

    def dir_digest(self, p: str) -> str:
        """Contents digest of the directory at real path ``p`` (header, then children)."""
        known = self._dirs.get(p)
        if known is not None:
            return known
        h = hashlib.sha256(b"\0" + self.record(p).encode())
        for name in self.children(p):
            child = p + "/" + name
            st = self.lstat(child)
            if st is None:
                continue
            digest = self.dir_digest(child) if st_mod.S_ISDIR(st.st_mode) else self.record(child)
            h.update(b"\0" + os.fsencode(name) + digest.encode())
        known = "sha256:" + h.hexdigest()
        self._dirs[p] = known
        return known

    def lazy_checksum(self, selector: str, follow_trailing: bool) -> str:
        """Digest of one path without filters (``lazyChecksum``)."""
        real = self.resolve(key_path(selector), follow_trailing)
        st = self.lstat(real)
        if st is None:
            raise ChecksumNotFoundError(f"{gopath.clean('/' + selector)!r}: not found")
        return self.dir_digest(real) if st_mod.S_ISDIR(st.st_mode) else self.record(real)

    def entries(self, start: str) -> Iterator[TreeEntry]:
        """Headers and non-directories of the subtree at ``start``, in radix-key order."""
        st = self.lstat(start)
        if st is None:
            return
        if not st_mod.S_ISDIR(st.st_mode):
            yield TreeEntry(start, False, st_mod.S_ISLNK(st.st_mode))
            return
        yield TreeEntry(start, True, False)
        for name in self.children(start):
            yield from self.entries(start + "/" + name)
