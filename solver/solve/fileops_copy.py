"""The copy walk behind FileOp ``copy`` actions: fsutil's ``Copy``, ``prepareTargetDir`` and recursive copier.

This follows what BuildKit's FileOp backend calls: ``github.com/tonistiigi/fsutil``
``copy/copy.go``. Sources and destinations are resolved inside their roots first
(``fileops_paths``); below that point the copier never follows a symlink: it ``lstat``s
sources, replaces non-directory targets instead of writing through them, and opens files
with ``O_NOFOLLOW`` (``fileops_primitives``). Owners, modes and times are applied as
``fileops_attrs`` says (best effort without root; device nodes are skipped without root).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import FileOpError
from solver.llb import gopath
from solver.llb.patternmatch import BadPatternError, MatchInfo, PatternMatcher
from solver.solve.fileops_attrs import Owner, copy_xattrs, lchown_best_effort, mkdir_all, set_times, unprivileged, with_owner_access
from solver.solve.fileops_mode import ModeSet
from solver.solve.fileops_paths import display_path, root_path, root_path_parent
from solver.solve.fileops_primitives import copy_file_content, lstat_or_none, remove_all

DEFAULT_DIRECTORY_MODE = 0o755
_NO_MATCH_INFO = MatchInfo()


@dataclass
class CopyOptions:
    """The knobs of one copy (fsutil's ``CopyInfo`` as BuildKit fills it)."""

    owner: Owner | None = None  # None keeps each source file's uid/gid
    source_owner: Owner | None = None  # without ``owner``: the uid/gid every source entry has
    mode: int | None = None  # octal mode for every copied entry (FileActionCopy.mode unless -1)
    mode_str: str = ""  # symbolic mode; wins over ``mode``
    timestamp_ns: int | None = None  # None keeps the source times
    copy_dir_contents: bool = False
    follow_links: bool = False
    include_patterns: Sequence[str] = ()
    exclude_patterns: Sequence[str] = ()
    always_replace_existing_dest_paths: bool = False


@dataclass
class _ParentDir:
    src: str
    dst: str
    copied: bool
    created_late: bool = False  # made by _create_parent_dirs for an included descendant


@dataclass
class Copier:
    """Copies one source tree onto a destination with ``cp -a`` semantics and options.

    With ``track_included``, ``included`` collects the source paths (as seen inside
    ``src_root``) that were copied, for BuildKit's ``required_paths`` check.
    """

    src_root: Path
    dest_root: Path
    options: CopyOptions
    track_included: bool = False
    included: list[str] = field(default_factory=list, init=False)
    _mode_set: ModeSet | None = field(default=None, init=False)
    _include: PatternMatcher | None = field(default=None, init=False)
    _exclude: PatternMatcher | None = field(default=None, init=False)
    _inodes: dict[tuple[int, int], str] = field(default_factory=dict, init=False)
    _parents: list[_ParentDir] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.src_root = Path(os.path.abspath(self.src_root))
        self.dest_root = Path(os.path.abspath(self.dest_root))
        if self.options.mode_str:
            self._mode_set = ModeSet.parse(self.options.mode_str)
        self._include = _matcher(self.options.include_patterns, "includepatterns")
        self._exclude = _matcher(self.options.exclude_patterns, "excludepatterns")

    # -- entry point: one source below src_root to one destination below dest_root
    def copy(self, src: str, dest: str) -> list[Path]:
        """Copy root-relative ``src`` to ``dest`` (fsutil ``Copy`` without wildcards).

        Returns the directories created on the way, for the caller to re-time.
        """
        opts = self.options
        # Created parents and a directory copy's destination are 0755 whatever --chmod says,
        # as in docker build's BuildKit (v0.8, dockerd 20.10); fsutil since 183e7fb (2025)
        # gives them the --chmod mode instead (DEVELOPERS.md, "docker build here vs current BuildKit").
        dir_mode = DEFAULT_DIRECTORY_MODE
        created: list[Path] = []
        ensure = dest
        head, tail = gopath.split(dest)
        if tail not in ("", "."):
            ensure = head
        if ensure:
            created += self._mkdir_all(root_path(self.dest_root, ensure), dir_mode)
        dest_path = root_path(self.dest_root, gopath.clean(dest))
        src_followed = root_path_parent(self.src_root, src, opts.follow_links)
        target, more = self._prepare_target_dir(src_followed, src, dest_path, dir_mode)
        created += more
        self._copy(str(src_followed), "", target, False, _NO_MATCH_INFO, _NO_MATCH_INFO)
        return created

    def _mkdir_all(self, path: Path, mode: int) -> list[Path]:
        try:
            return mkdir_all(path, mode, self.options.owner, self.options.timestamp_ns)
        except OSError as exc:
            shown = display_path(self.dest_root, exc.filename or path)
            raise FileOpError(f"mkdir {shown}: {exc.strerror}", shown) from exc

    def _prepare_target_dir(self, src_followed: Path, src: str, dest_path: Path,
                            dir_mode: int) -> tuple[str, list[Path]]:
        try:
            src_st = os.lstat(src_followed)
        except OSError as exc:
            shown = gopath.join("/", src)
            raise FileOpError(f'"{shown}": not found' if exc.errno == errno.ENOENT
                              else f"lstat {shown}: {exc.strerror}", shown) from exc
        try:
            dest_st: os.stat_result | None = os.stat(dest_path)
        except (FileNotFoundError, NotADirectoryError):
            dest_st = None
        src_is_dir = stat.S_ISDIR(src_st.st_mode)
        dest_is_dir = dest_st is not None and stat.S_ISDIR(dest_st.st_mode)
        target = str(dest_path)
        if (not self.options.copy_dir_contents and src_is_dir and dest_st is not None) or \
                (not src_is_dir and dest_is_dir):
            target = os.path.join(target, gopath.base(src)) if gopath.base(src) not in (".", "/") else target
        parent = target if (self.options.copy_dir_contents and src_is_dir and dest_st is None) \
            else os.path.dirname(target)
        if not _is_within(parent, self.dest_root):
            return target, []  # the target is the root itself, which exists
        return target, self._mkdir_all(Path(parent), dir_mode)

    # -- recursion
    def _copy(self, src: str, comps: str, target: str, overwrite: bool,
              parent_inc: MatchInfo, parent_exc: MatchInfo) -> None:
        include, excluded = True, False
        inc_info = exc_info = _NO_MATCH_INFO
        if comps:
            include, inc_info = self._match_include(comps, parent_inc)
            matched_exclude, exc_info = self._match_exclude(comps, parent_exc)
            if matched_exclude:
                include, excluded = False, True
            if not include and self._include is None and \
                    (self._exclude is None or not self._exclude.exclusions):
                return
        src_st = self._lstat_src(src)
        is_dir = stat.S_ISDIR(src_st.st_mode)
        if not include and not is_dir:
            return
        target_st = lstat_or_none(target)
        if include:
            if self._remove_target_if_needed(target, src_st, target_st):
                target_st = None
            self._create_parent_dirs(overwrite)  # ancestors only: target_st stays right
            self._note_included(src)
        if not is_dir:
            self._ensure_empty_file_target(target, target_st)
        copy_info, restore_times = include, False
        if is_dir:
            created = self._copy_directory(src, comps, target, src_st, overwrite,
                                           include, excluded, inc_info, exc_info)
            if not overwrite:
                copy_info, restore_times = created, not created
        elif not self._copy_leaf(src, target, src_st):
            return
        if copy_info:
            self._copy_file_info(src_st, target)
            copy_xattrs(src, target)
        elif restore_times and target_st is not None:
            self._copy_times(src_st, target)

    def _match_include(self, comps: str, parent: MatchInfo) -> tuple[bool, MatchInfo]:
        if self._include is None:
            return True, _NO_MATCH_INFO
        return self._include.matches_using_parent_results(comps, parent)

    def _match_exclude(self, comps: str, parent: MatchInfo) -> tuple[bool, MatchInfo]:
        if self._exclude is None:
            return False, _NO_MATCH_INFO
        return self._exclude.matches_using_parent_results(comps, parent)

    def _lstat_src(self, src: str) -> os.stat_result:
        try:
            return os.lstat(src)
        except OSError as exc:
            shown = display_path(self.src_root, src)
            raise FileOpError(f"failed to stat {shown}: {exc.strerror}", shown) from exc

    def _note_included(self, src: str) -> None:
        if self.track_included:
            self.included.append(display_path(self.src_root, src))

    def _remove_target_if_needed(self, target: str, src_st: os.stat_result,
                                 target_st: os.stat_result | None) -> bool:
        """Remove an existing target the copy replaces; True when it was removed."""
        if not self.options.always_replace_existing_dest_paths or target_st is None:
            return False
        if stat.S_ISDIR(src_st.st_mode) and stat.S_ISDIR(target_st.st_mode):
            return False
        remove_all(target)
        return True

    def _create_parent_dirs(self, overwrite: bool) -> None:
        """Create the directories whose creation was delayed by include patterns."""
        for parent in self._parents:
            if parent.copied:
                continue
            st = os.stat(parent.src)
            if not stat.S_ISDIR(st.st_mode):
                raise FileOpError(f"{display_path(self.src_root, parent.src)} is not a directory")
            if self._copy_directory_only(parent.dst, st, overwrite):
                self._copy_file_info(st, parent.dst)
                copy_xattrs(parent.src, parent.dst)
                parent.created_late = True
            parent.copied = True

    def _copy_directory(self, src: str, comps: str, dst: str, src_st: os.stat_result,
                        overwrite: bool, include: bool, excluded: bool,
                        inc_info: MatchInfo, exc_info: MatchInfo) -> bool:
        created = False
        parent = _ParentDir(src, dst, copied=False)
        if include:
            created = self._copy_directory_only(dst, src_st, overwrite)
            parent.copied = True
        self._parents.append(parent)
        try:
            if excluded and (self._exclude is None or not self._exclude.exclusions):
                return False
            for name in sorted(os.listdir(src)):
                self._copy(os.path.join(src, name), f"{comps}/{name}" if comps else name,
                           os.path.join(dst, name), True, inc_info, exc_info)
        finally:
            self._parents.pop()
        if parent.created_late:
            # fsutil leaves these with the mtime their children gave them; restoring the
            # source (or fixed) time keeps COPY --parents reproducible.
            self._copy_times(src_st, dst)
        return created

    def _copy_directory_only(self, dst: str, src_st: os.stat_result, overwrite: bool) -> bool:
        target_st = lstat_or_none(dst)
        if target_st is None:
            mode = with_owner_access(stat.S_IMODE(src_st.st_mode), True)
            os.mkdir(dst, mode)
            os.chmod(dst, mode)
            return True
        if not stat.S_ISDIR(target_st.st_mode):
            shown = display_path(self.dest_root, dst)
            raise FileOpError(f"cannot copy to non-directory: {shown}", shown)
        if overwrite:
            os.chmod(dst, with_owner_access(stat.S_IMODE(src_st.st_mode), True))
        return False

    def _ensure_empty_file_target(self, target: str, st: os.stat_result | None) -> None:
        """Make room for a non-directory at ``target`` (``st``: its lstat, just taken)."""
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            shown = display_path(self.dest_root, target)
            raise FileOpError(f"cannot replace to directory {shown} with file", shown)
        os.unlink(target)

    def _copy_leaf(self, src: str, target: str, src_st: os.stat_result) -> bool:
        """Create the non-directory ``target``; False when it is skipped (a device node
        without root)."""
        kind = stat.S_IFMT(src_st.st_mode)
        if kind == stat.S_IFREG:
            first = self._hardlink_source(target, src_st)
            if first is not None:
                os.link(first, target)
            else:
                copy_file_content(src, target)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(src), target)
        elif kind == stat.S_IFSOCK:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))  # socket stub
        elif kind in (stat.S_IFCHR, stat.S_IFBLK) and unprivileged():
            return False
        else:
            os.mknod(target, src_st.st_mode, src_st.st_rdev)
        return True

    def _hardlink_source(self, target: str, src_st: os.stat_result) -> str | None:
        """The first copy of a multiply-linked source file, or None (and remember this one)."""
        if src_st.st_nlink <= 1:
            return None
        key = (src_st.st_dev, src_st.st_ino)
        first = self._inodes.get(key)
        if first is None:
            self._inodes[key] = target
        return first

    def _copy_file_info(self, src_st: os.stat_result, target: str) -> None:
        owner = self.options.owner or self.options.source_owner or Owner(src_st.st_uid, src_st.st_gid)
        lchown_best_effort(target, owner.uid, owner.gid)
        if not stat.S_ISLNK(src_st.st_mode):
            os.chmod(target, with_owner_access(self._target_mode(src_st), stat.S_ISDIR(src_st.st_mode)))
        self._copy_times(src_st, target)

    def _target_mode(self, src_st: os.stat_result) -> int:
        perm = stat.S_IMODE(src_st.st_mode)
        if self._mode_set is not None:
            return self._mode_set.apply(perm, stat.S_ISDIR(src_st.st_mode))
        if self.options.mode is not None:
            return self.options.mode & 0o7777
        return perm

    def _copy_times(self, src_st: os.stat_result, target: str) -> None:
        if self.options.timestamp_ns is not None:
            set_times(target, self.options.timestamp_ns)
            return
        os.utime(target, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _matcher(patterns: Sequence[str], what: str) -> PatternMatcher | None:
    if not patterns:
        return None
    try:
        return PatternMatcher(patterns)
    except BadPatternError as exc:
        raise FileOpError(f"invalid {what}: {list(patterns)}: {exc}") from exc


def _is_within(path: str, root: Path) -> bool:
    base = str(root)
    return path == base or path.startswith(base.rstrip("/") + "/")


def copy_tree(src_dir: Path, dest_dir: Path) -> None:
    """Make ``dest_dir`` a full copy of ``src_dir`` (modes, owners, times, xattrs,
    symlinks, hardlinks, devices), like ``cp -a src_dir/. dest_dir``."""
    Copier(Path(src_dir), Path(dest_dir), CopyOptions(copy_dir_contents=True)).copy("/", "/")
    st = os.lstat(src_dir)
    lchown_best_effort(dest_dir, st.st_uid, st.st_gid)
    os.chmod(dest_dir, with_owner_access(stat.S_IMODE(st.st_mode), True))
    copy_xattrs(str(src_dir), str(dest_dir))
    os.utime(dest_dir, ns=(st.st_atime_ns, st.st_mtime_ns))
