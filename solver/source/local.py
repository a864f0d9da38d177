"""The local build context as a source (what ``local://context`` transfers).

``LocalContext`` selects the entries of a directory the way BuildKit's file sync does
(``tonistiigi/fsutil`` ``filterFS.Walk``):

- paths are relative, slash-separated, walked in byte order, symlinks never followed;
- include patterns must match (or match a parent), exclude patterns (.dockerignore)
  must not; ``!`` exceptions can bring back entries below an excluded directory, and
  the excluded directories on the way are then kept too (without their other
  contents);
- ``follow_paths`` names paths whose symlinks are resolved (inside the context) and
  whose targets are added to the include patterns.

It can list the selection, copy it into a directory (modes, owners, xattrs, symlinks,
hard links and timestamps kept), and compute BuildKit content checksums of it with a
``StatMemo`` -- the digests equal those of the copied tree, without copying.

Safety: the walk uses ``lstat`` and never descends into symlinks; every file is opened
through directory descriptors with ``O_NOFOLLOW`` on each component, both in the context
and in the destination, so a symlink (even one swapped in during the copy) can never make
a read or a write land outside its root. Symlinks themselves are copied as symlinks.
"""

from __future__ import annotations

import errno
import os
import stat as st_mod
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence

from solver.cache.contenthash import (
    Selector,
    checksum as content_checksum,
    checksum_many as content_checksum_many,
    file_digests as content_file_digests,
)
from solver.cache.statmemo import StatMemo
from solver.errors import LLBookError
from solver.source.dockerignore import (
    DockerIgnore,
    MatchInfo,
    PatternMatcher,
    clean_path,
    contains_wildcards,
    filepath_match,
)

__all__ = ["ContextEntry", "ContextError", "EntryKind", "LocalContext", "Selection", "resolve_follow_paths"]

_PATTERN_CHARS = "*[]?^\\"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20
_MAX_LINKS = 255


class ContextError(LLBookError):
    """A context that cannot be read or copied safely."""


class EntryKind(Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    CHAR = "char"
    BLOCK = "block"
    SOCKET = "socket"

    @classmethod
    def of(cls, mode: int) -> "EntryKind":
        return _KIND_BY_FORMAT.get(st_mod.S_IFMT(mode), cls.FILE)


_KIND_BY_FORMAT = {
    st_mod.S_IFDIR: EntryKind.DIR,
    st_mod.S_IFLNK: EntryKind.SYMLINK,
    st_mod.S_IFIFO: EntryKind.FIFO,
    st_mod.S_IFCHR: EntryKind.CHAR,
    st_mod.S_IFBLK: EntryKind.BLOCK,
    st_mod.S_IFSOCK: EntryKind.SOCKET,
}


@dataclass(frozen=True)
class ContextEntry:
    """One selected entry of the context, with the stat it was selected with."""

    path: str  # relative, slash-separated: "src/main.py"
    kind: EntryKind
    mode: int  # full st_mode
    uid: int
    gid: int
    size: int
    mtime_ns: int
    inode: int
    device: int
    rdev: int = 0
    linkname: str = ""  # symlink target, verbatim

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result, linkname: str = "") -> "ContextEntry":
        return cls(
            path=path,
            kind=EntryKind.of(st.st_mode),
            mode=st.st_mode,
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size if st_mod.S_ISREG(st.st_mode) else 0,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            device=st.st_dev,
            rdev=st.st_rdev,
            linkname=linkname,
        )

    @property
    def perm(self) -> int:
        return st_mod.S_IMODE(self.mode)


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


# ------------------------------------------------------------ fd-confined access


def _split(relpath: str) -> list[str]:
    parts = [p for p in relpath.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ContextError(f"{relpath!r}: path escapes its root")
    return parts


class _ConfinedOpener:
    """The file opener of one checksum pass: a path below ``root`` is opened through
    directory descriptors with ``O_NOFOLLOW`` on every level, as ``_open_beneath`` does,
    but the descriptors of the current directory path stay open from one file to the next
    (a tree is hashed directory by directory), so a file costs one open, not one per level."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_fd = -1
        self.dirs: _DirStack | None = None

    def __enter__(self) -> "_ConfinedOpener":
        self.root_fd = os.open(self.root, _DIR_FLAGS)
        self.dirs = _DirStack(self.root_fd)
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
        parts = _split(rel)
        if not parts:
            raise ContextError("the context root is not a file")
        assert self.dirs is not None, "use _ConfinedOpener in a with block"
        dir_fd = self.dirs.fd_for(parts[:-1])
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        return os.fdopen(fd, "rb")


def _open_dir_beneath(base_fd: int, parts: Sequence[str]) -> int:
    """Open the directory ``parts`` below ``base_fd``, refusing symlinks on the way."""
    fd = os.dup(base_fd)
    try:
        for part in parts:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        raise
    return fd


class _DirStack:
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
                _ensure_dir(parent, part)
            self._stack.append((part, os.open(part, _DIR_FLAGS, dir_fd=parent)))
        return self._stack[-1][1] if self._stack else self.root_fd

    def close(self) -> None:
        for _, fd in self._stack:
            os.close(fd)
        self._stack.clear()


def _ensure_dir(parent_fd: int, name: str) -> None:
    """Make ``name`` a real directory in ``parent_fd`` (replacing a non-directory)."""
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except FileNotFoundError:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        return
    if not st_mod.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        os.mkdir(name, 0o700, dir_fd=parent_fd)


def _remove_existing(parent_fd: int, name: str) -> None:
    """Remove a non-directory ``name`` so that a new entry can take its place."""
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    if st_mod.S_ISDIR(st.st_mode):
        raise ContextError(f"{name!r}: a directory is in the way")
    os.unlink(name, dir_fd=parent_fd)


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


# ------------------------------------------------------------------ follow paths


class _FollowResolver:
    """fsutil's ``FollowLinks``: symlinks on the follow paths, resolved in the context."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.resolved: set[str] = set()
        self.depth = 0

    def lstat(self, relpath: str) -> os.stat_result | None:
        parts = _split(relpath)
        if not parts:
            return None
        try:
            fd = _open_dir_beneath(self.root_fd, parts[:-1])
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
            fd = _open_dir_beneath(self.root_fd, _split(relpath))
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
        fd = _open_dir_beneath(self.root_fd, _split(parent))
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


def _dedupe(paths: Iterable[str]) -> list[str] | None:
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
    root_fd = os.open(os.fspath(root), _DIR_FLAGS)
    try:
        return _follow_targets(root_fd, paths)
    finally:
        os.close(root_fd)


def _follow_targets(root_fd: int, paths: Sequence[str]) -> list[str] | None:
    resolver = _FollowResolver(root_fd)
    for p in paths:
        resolver.depth = 0
        resolver.append(p)
    return _dedupe(p.lstrip("/") for p in resolver.resolved)


# -------------------------------------------------------------------------- walk


@dataclass
class _VisitedDir:
    """A directory on the walk path, with its match results and whether it was emitted."""

    entry: ContextEntry
    include_info: MatchInfo = field(default_factory=MatchInfo)
    exclude_info: MatchInfo = field(default_factory=MatchInfo)
    emitted: bool = False


def _only_prefixes(matcher: PatternMatcher | None, exclusions: bool) -> bool:
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
class _Walker:
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
                st = os.lstat(name, dir_fd=dir_fd)
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
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
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


# ------------------------------------------------------------------ materialise


@dataclass
class _Copier:
    """Writes selected entries below a destination directory, confined by fds."""

    src_root_fd: int
    dst_root_fd: int
    src: _DirStack = field(init=False)
    dst: _DirStack = field(init=False)
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    dirs: list[ContextEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.src = _DirStack(self.src_root_fd)
        self.dst = _DirStack(self.dst_root_fd, create=True)

    def close(self) -> None:
        self.src.close()
        self.dst.close()

    def copy(self, entry: ContextEntry) -> None:
        parts = _split(entry.path)
        parent_parts, name = parts[:-1], parts[-1]
        dst_parent = self.dst.fd_for(parent_parts)
        if entry.kind == EntryKind.DIR:
            _ensure_dir(dst_parent, name)
            self.dirs.append(entry)
            return
        _remove_existing(dst_parent, name)
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
            first_parts = _split(first)
            first_dir = _open_dir_beneath(self.dst_root_fd, first_parts[:-1])
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
            parts = _split(entry.path)
            fd = _open_dir_beneath(self.dst_root_fd, parts)
            src_fd = _open_dir_beneath(self.src_root_fd, parts)
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


# --------------------------------------------------------------------- context


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
        return os.open(self.root, _DIR_FLAGS)

    def _include_matcher(self, root_fd: int) -> PatternMatcher | None:
        """Include patterns plus the resolved follow paths (fsutil ``NewFilterFS``)."""
        includes: list[str] | None = list(self.include_patterns)
        if self.follow_paths:
            targets = _follow_targets(root_fd, self.follow_paths)
            if targets is not None:
                includes = _dedupe(list(includes or []) + targets)
        return PatternMatcher(includes) if includes else None

    def select(self) -> Selection:
        """Walk the context and return the selected entries."""
        root_fd = self._open_root()
        try:
            include = self._include_matcher(root_fd)
            walker = _Walker(
                root_fd,
                include,
                self._exclude,
                _only_prefixes(include, False),
                _only_prefixes(self._exclude, True),
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
        dst_fd = os.open(dest, _DIR_FLAGS)
        copier = _Copier(src_fd, dst_fd)
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
        with _ConfinedOpener(self.root) as opener:
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
        with _ConfinedOpener(self.root) as opener:
            return content_checksum_many(
                self.root, selectors, memo=self.memo, opener=opener, visible=chosen.__contains__,
                known_stats=chosen.stats,
            )

    def file_digests(self, selector: str | Selector = "/", selection: Selection | None = None) -> dict[str, str]:
        """Record digest of every selected entry below ``selector`` (see contenthash)."""
        chosen = selection if selection is not None else self.select()
        with _ConfinedOpener(self.root) as opener:
            return content_file_digests(
                self.root, selector, memo=self.memo, opener=opener, visible=chosen.__contains__,
                known_stats=chosen.stats,
            )

    def open_file(self, relpath: str, selection: Selection | None = None) -> BinaryIO:
        """Open a selected regular file for reading, confined to the context."""
        chosen = selection if selection is not None else self.select()
        if relpath not in chosen:
            raise ContextError(f"{relpath!r} is not in the context")
        return self._open_beneath(relpath)

    def _open_beneath(self, relpath: str) -> BinaryIO:
        parts = _split(relpath)
        if not parts:
            raise ContextError("the context root is not a file")
        root_fd = self._open_root()
        try:
            dir_fd = _open_dir_beneath(root_fd, parts[:-1])
        finally:
            os.close(root_fd)
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        return os.fdopen(fd, "rb")
