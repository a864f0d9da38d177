"""The walk of a build context (fsutil's ``filterFS.Walk``): which entries the include and exclude patterns select."""

from __future__ import annotations

import os
import stat as st_mod
from dataclasses import dataclass, field

from solver.source.context_confined import DIR_FLAGS
from solver.source.context_entries import ContextEntry, EntryKind, owned_by_root
from solver.llb.patternmatch import MatchInfo, PatternMatcher

_PATTERN_CHARS = "*[]?^\\"


@dataclass
class _VisitedDir:
    """A directory on the walk path, with its match results and whether it was emitted."""

    entry: ContextEntry
    include_info: MatchInfo = field(default_factory=MatchInfo)
    exclude_info: MatchInfo = field(default_factory=MatchInfo)
    emitted: bool = False


def only_prefixes(matcher: PatternMatcher | None, exclusions: bool) -> bool:
    """fsutil's ``onlyPrefix*``: no pattern of that polarity uses wildcard characters."""
    if matcher is None:
        return True
    return not any(
        p.exclusion == exclusions and any(c in p.without_trailing_glob() for c in _PATTERN_CHARS)
        for p in matcher.patterns
    )


def _could_match_below(matcher: PatternMatcher, path: str, exclusions: bool) -> bool:
    """Could a pattern of that polarity name something inside the directory ``path``?"""
    return any(
        (p.without_trailing_glob() + "/").startswith(path + "/")
        for p in matcher.patterns
        if p.exclusion == exclusions
    )


@dataclass
class ContextWalker:
    """fsutil ``filterFS.Walk`` over a real directory (through directory fds)."""

    root_fd: int
    include: PatternMatcher | None
    exclude: PatternMatcher | None
    only_prefix_includes: bool
    only_prefix_exceptions: bool
    out: list[ContextEntry] = field(default_factory=list)
    stats: dict[str, os.stat_result] = field(default_factory=dict)

    def walk(self) -> list[ContextEntry]:
        self._walk_dir(self.root_fd, "", [])
        return self.out

    def _walk_dir(self, dir_fd: int, prefix: str, parents: list[_VisitedDir]) -> None:
        names = sorted(os.listdir(dir_fd), key=os.fsencode)
        for name in names:
            path = prefix + name
            try:
                st = owned_by_root(os.lstat(name, dir_fd=dir_fd))
            except FileNotFoundError:
                continue
            if st_mod.S_ISSOCK(st.st_mode):
                continue  # sockets are not transferred, so they are not part of the context
            link = os.readlink(name, dir_fd=dir_fd) if st_mod.S_ISLNK(st.st_mode) else ""
            entry = ContextEntry.from_stat(path, st, link)
            self.stats[path] = st
            self._visit(dir_fd, name, entry, parents)

    def _visit(self, dir_fd: int, name: str, entry: ContextEntry, parents: list[_VisitedDir]) -> None:
        is_dir = entry.kind == EntryKind.DIR
        parent = parents[-1] if parents else None
        visited = _VisitedDir(entry)
        skip = False
        if self.include is not None:
            base = parent.include_info if parent is not None else MatchInfo()
            matched, visited.include_info = self.include.matches_using_parent_results(entry.path, base)
            if not matched:
                if is_dir and self.only_prefix_includes and not _could_match_below(
                    self.include, entry.path, False
                ):
                    return
                skip = True
        if self.exclude is not None:
            base = parent.exclude_info if parent is not None else MatchInfo()
            matched, visited.exclude_info = self.exclude.matches_using_parent_results(entry.path, base)
            if matched:
                if is_dir and self.only_prefix_exceptions and (
                    not self.exclude.exclusions or not _could_match_below(self.exclude, entry.path, True)
                ):
                    return
                skip = True
        if not skip:
            self._emit(parents, visited)
        if is_dir:
            fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            try:
                self._walk_dir(fd, entry.path + "/", parents + [visited])
            finally:
                os.close(fd)

    def _emit(self, parents: list[_VisitedDir], visited: _VisitedDir) -> None:
        """Emit the directories above that were skipped themselves, then this entry."""
        for ancestor in parents:
            if not ancestor.emitted:
                self.out.append(ancestor.entry)
                ancestor.emitted = True
        self.out.append(visited.entry)
        visited.emitted = True

