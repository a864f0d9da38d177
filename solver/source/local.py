"""The local build context as a source (what ``local://context`` transfers): ``LocalContext`` and its ``Selection``.

``LocalContext`` selects the entries of a directory the way BuildKit's file sync does
(``tonistiigi/fsutil`` ``filterFS.Walk``, ``context_walk.py``):

- paths are relative, slash-separated, walked in byte order, symlinks never followed;
- include patterns must match (or match a parent), exclude patterns (.dockerignore)
  must not; ``!`` exceptions can bring back entries below an excluded directory, and
  the excluded directories on the way are then kept too (without their other
  contents);
- ``follow_paths`` names paths whose symlinks are resolved (inside the context) and
  whose targets are added to the include patterns (``context_follow.py``).

It can list the selection, copy it into a directory (``context_copy.py``: modes, owners,
xattrs, symlinks, hard links and timestamps kept), and compute BuildKit content checksums
of it with a ``StatMemo`` -- the digests equal those of the copied tree, without copying.

Safety: the walk uses ``lstat`` and never descends into symlinks; every file is opened
through directory descriptors with ``O_NOFOLLOW`` on each component, both in the context
and in the destination (``context_confined.py``), so a symlink (even one swapped in during
the copy) can never make a read or a write land outside its root. Symlinks themselves are
copied as symlinks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from solver.cache.contenthash import (
    Selector,
    checksum as content_checksum,
    checksum_many as content_checksum_many,
    file_digests as content_file_digests,
)
from solver.cache.statmemo import StatMemo
from solver.source.context_confined import DIR_FLAGS, ConfinedOpener, open_file_beneath
from solver.source.context_copy import ContextCopier
from solver.source.context_entries import ContextEntry, ContextError, EntryKind
from solver.source.context_follow import dedupe_paths, follow_targets
from solver.source.context_walk import ContextWalker, only_prefixes
from solver.llb.patternmatch import PatternMatcher
from solver.source.dockerignore import DockerIgnore


@dataclass(frozen=True)
class Selection:
    """The entries a context selects, in walk order (parents before children)."""

    entries: tuple[ContextEntry, ...]
    paths: frozenset[str] = field(init=False, repr=False, compare=False)
    # the lstat each entry was selected with (by path), so checksums need not stat again
    stats: dict[str, os.stat_result] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", frozenset(e.path for e in self.entries))

    def __contains__(self, relpath: object) -> bool:
        return relpath in self.paths

    def __iter__(self) -> Iterator[ContextEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def files(self) -> list[str]:
        """Relative paths of the selected non-directories."""
        return [e.path for e in self.entries if e.kind != EntryKind.DIR]

    @property
    def total_size(self) -> int:
        return sum(e.size for e in self.entries)



class LocalContext:
    """A directory used as build context, with its include/exclude selection."""

    def __init__(
        self,
        path: str | Path,
        *,
        exclude_patterns: Sequence[str] = (),
        include_patterns: Sequence[str] = (),
        follow_paths: Sequence[str] = (),
        memo: StatMemo | None = None,
    ) -> None:
        self.root = Path(os.path.realpath(os.fspath(path)))
        if not self.root.is_dir():
            raise ContextError(f"{self.root}: build context is not a directory")
        self.exclude_patterns = tuple(exclude_patterns)
        self.include_patterns = tuple(include_patterns)
        self.follow_paths = tuple(follow_paths)
        self.memo = memo
        try:
            self._exclude = PatternMatcher(self.exclude_patterns) if self.exclude_patterns else None
            PatternMatcher(self.include_patterns)
        except ValueError as exc:
            raise ContextError(f"invalid patterns: {exc}") from exc

    @classmethod
    def with_dockerignore(
        cls,
        path: str | Path,
        *,
        dockerfile: str | Path | None = None,
        include_patterns: Sequence[str] = (),
        follow_paths: Sequence[str] = (),
        memo: StatMemo | None = None,
    ) -> "LocalContext":
        """A context excluding what its .dockerignore (or <Dockerfile>.dockerignore) says."""
        ignore = DockerIgnore.for_context(path, dockerfile)
        return cls(
            path,
            exclude_patterns=ignore.patterns,
            include_patterns=include_patterns,
            follow_paths=follow_paths,
            memo=memo,
        )

    def _open_root(self) -> int:
        return os.open(self.root, DIR_FLAGS)

    def _include_matcher(self, root_fd: int) -> PatternMatcher | None:
        """Include patterns plus the resolved follow paths (fsutil ``NewFilterFS``)."""
        includes: list[str] | None = list(self.include_patterns)
        if self.follow_paths:
            targets = follow_targets(root_fd, self.follow_paths)
            if targets is not None:
                includes = dedupe_paths(list(includes or []) + targets)
        return PatternMatcher(includes) if includes else None

    def select(self) -> Selection:
        """Walk the context and return the selected entries."""
        root_fd = self._open_root()
        try:
            include = self._include_matcher(root_fd)
            walker = ContextWalker(
                root_fd,
                include,
                self._exclude,
                only_prefixes(include, False),
                only_prefixes(self._exclude, True),
            )
            entries = tuple(walker.walk())
            return Selection(entries, stats=walker.stats)
        finally:
            os.close(root_fd)

    def files(self) -> list[str]:
        """Relative paths of the selected files, symlinks and other non-directories."""
        return self.select().files()

    def paths(self) -> list[str]:
        """Relative paths of every selected entry, directories included."""
        return [e.path for e in self.select()]

    def materialise(self, target: str | Path, selection: Selection | None = None) -> Selection:
        """Copy the selection into ``target`` (created if needed); return what was copied."""
        chosen = selection if selection is not None else self.select()
        dest = Path(target)
        dest.mkdir(parents=True, exist_ok=True)
        real_dest = Path(os.path.realpath(dest))
        if real_dest == self.root or self.root in real_dest.parents:
            raise ContextError(f"{dest}: cannot copy a context into itself")
        src_fd = self._open_root()
        dst_fd = os.open(dest, DIR_FLAGS)
        copier = ContextCopier(src_fd, dst_fd)
        try:
            for entry in chosen:
                try:
                    copier.copy(entry)
                except OSError as exc:
                    raise ContextError(f"{entry.path!r}: cannot copy: {exc}") from exc
            copier.finish_dirs()
        finally:
            copier.close()
            os.close(dst_fd)
            os.close(src_fd)
        return chosen

    def checksum(
        self,
        selector: str | Selector = "/",
        *,
        follow_symlinks: bool = False,
        wildcard: bool = False,
        include_patterns: Sequence[str] = (),
        exclude_patterns: Sequence[str] = (),
        selection: Selection | None = None,
    ) -> str:
        """Content checksum of a path of the selected context (as if it were copied)."""
        chosen = selection if selection is not None else self.select()
        with ConfinedOpener(self.root) as opener:
            return content_checksum(
                self.root,
                selector,
                follow_symlinks=follow_symlinks,
                wildcard=wildcard,
                include_patterns=include_patterns,
                exclude_patterns=exclude_patterns,
                memo=self.memo,
                opener=opener,
                visible=chosen.__contains__,
                known_stats=chosen.stats,
            )

    def checksum_many(self, selectors: Sequence[str | Selector], selection: Selection | None = None) -> str:
        """The content-hash dep of several selectors over the selected context."""
        chosen = selection if selection is not None else self.select()
        with ConfinedOpener(self.root) as opener:
            return content_checksum_many(
                self.root, selectors, memo=self.memo, opener=opener, visible=chosen.__contains__,
                known_stats=chosen.stats,
            )

    def file_digests(self, selector: str | Selector = "/", selection: Selection | None = None) -> dict[str, str]:
        """Record digest of every selected entry below ``selector`` (see contenthash)."""
        chosen = selection if selection is not None else self.select()
        with ConfinedOpener(self.root) as opener:
            return content_file_digests(
                self.root, selector, memo=self.memo, opener=opener, visible=chosen.__contains__,
                known_stats=chosen.stats,
            )

    def open_file(self, relpath: str, selection: Selection | None = None) -> BinaryIO:
        """Open a selected regular file for reading, confined to the context."""
        chosen = selection if selection is not None else self.select()
        if relpath not in chosen:
            raise ContextError(f"{relpath!r} is not in the context")
        return open_file_beneath(self.root, relpath)
