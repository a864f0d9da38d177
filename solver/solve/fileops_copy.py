"""The copy engine behind FileOp ``copy`` actions, and the confined-path primitives.

This follows what BuildKit's FileOp backend calls: ``github.com/tonistiigi/fsutil``
``copy/copy.go`` (``Copy``, ``prepareTargetDir``, the recursive copier, ``MkdirAll``,
``ResolveWildcards``), ``containerd/continuity`` ``fs.RootPath`` (chroot-like symlink
resolution) and ``tonistiigi/dchapes-mode`` (symbolic ``chmod`` strings).

Every path that comes from an action is resolved inside its root with ``root_path``:
symlinks met on the way are followed as if the root were ``/`` (an absolute target
restarts at the root, ``..`` stops at the root), so no action reads or writes outside
the directories it was given. Below that point the copier never follows a symlink: it
``lstat``s sources, replaces non-directory targets instead of writing through them,
and opens files with ``O_NOFOLLOW``.

Process umask is not consulted: modes are set with explicit ``chmod`` after creation,
which is what BuildKit gets by running with ``umask 0``.

Without root (the binder case: no namespaces, one uid) owners cannot be given away, so
``chown`` is best effort, and created entries keep owner access (``u+rw``, ``u+rwx`` for
directories) so that later steps can still write into them; device nodes are skipped.
This is the same policy as ``solver.source.tarsafe``. As root nothing of this applies.
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
from solver.llb.patternmatch import (
    BadPatternError,
    MatchInfo,
    PatternMatcher,
    contains_wildcards,
    path_match,
)

DEFAULT_DIRECTORY_MODE = 0o755
MAX_SYMLINKS = 255
_NO_MATCH_INFO = MatchInfo()


@dataclass(frozen=True)
class Owner:
    """Numeric owner applied to created files (a resolved ``ChownOpt``)."""

    uid: int
    gid: int


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
    The result always lies inside ``root``.
    """
    pending = [c for c in path.split("/") if c not in ("", ".")]
    pending.reverse()  # a stack: the next component is at the end
    resolved: list[str] = []
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, name)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(name)
            continue
        except OSError as exc:
            raise FileOpError(f"failed to resolve {path}: {exc.strerror}", path) from exc
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(name)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise FileOpError(f"failed to resolve {path}: too many links", path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([c for c in target.split("/") if c not in ("", ".")]))
    return Path(os.path.join(root, *resolved))


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


# ----------------------------------------------------------------- symbolic modes

_S_ISUID, _S_ISGID, _S_ISTXT = 0o4000, 0o2000, 0o1000
_RWXU, _RWXG, _RWXO = 0o700, 0o070, 0o007
_R_ALL, _W_ALL, _X_ALL = 0o444, 0o222, 0o111
_STANDARD_BITS = _S_ISUID | _S_ISGID | _RWXU | _RWXG | _RWXO
_MODET_MASK = 0xFFFF
_CMD2_CLEAR, _CMD2_SET, _CMD2_GBITS, _CMD2_OBITS, _CMD2_UBITS = 1, 2, 4, 8, 16


class ModeSyntaxError(FileOpError):
    """A ``chmod`` mode string that cannot be parsed."""


@dataclass(frozen=True)
class _BitCmd:
    cmd: str
    cmd2: int
    bits: int


@dataclass(frozen=True)
class ModeSet:
    """A parsed chmod(1) mode (octal or symbolic such as ``u+x,g-w``), as dchapes-mode.

    ``apply`` takes and returns the 12 permission bits (``0o7777``).
    """

    cmds: tuple[_BitCmd, ...]

    @classmethod
    def parse(cls, text: str) -> "ModeSet":
        """``mode.ParseWithUmask(text, 0)``."""
        if text == "":
            raise ModeSyntaxError("invalid mode \"\": invalid syntax")
        if text[0].isdigit():
            return cls(tuple(_parse_octal_mode(text)))
        return cls(tuple(_SymbolicParser(text).parse()))

    def apply(self, perm: int, is_dir: bool) -> int:
        """The permission bits after applying this mode to ``perm``."""
        old = perm & 0o7777
        new = old
        for c in self.cmds:
            if c.cmd == "u":
                new = _apply_copy(c, new, (new & _RWXU) >> 6)
            elif c.cmd == "g":
                new = _apply_copy(c, new, (new & _RWXG) >> 3)
            elif c.cmd == "o":
                new = _apply_copy(c, new, new & _RWXO)
            elif c.cmd == "+":
                new |= c.bits
            elif c.cmd == "-":
                new &= ~c.bits
            elif c.cmd == "X" and (old & _X_ALL or is_dir):
                new |= c.bits
        return new & 0o7777


def _apply_copy(c: _BitCmd, new: int, value: int) -> int:
    """The 'u', 'g', 'o' commands: copy one class's bits to the others."""
    if c.cmd2 & _CMD2_CLEAR:
        clr = _RWXO if c.cmd2 & _CMD2_SET else value
        if c.cmd2 & _CMD2_UBITS:
            new &= ~((clr << 6) & c.bits)
        if c.cmd2 & _CMD2_GBITS:
            new &= ~((clr << 3) & c.bits)
        if c.cmd2 & _CMD2_OBITS:
            new &= ~(clr & c.bits)
    if c.cmd2 & _CMD2_SET:
        if c.cmd2 & _CMD2_UBITS:
            new |= (value << 6) & c.bits
        if c.cmd2 & _CMD2_GBITS:
            new |= (value << 3) & c.bits
        if c.cmd2 & _CMD2_OBITS:
            new |= value & c.bits
    return new & _MODET_MASK


def _parse_octal_mode(text: str) -> list[_BitCmd]:
    if any(ch not in "01234567" for ch in text):
        raise ModeSyntaxError(f"invalid mode {text!r}: invalid syntax")
    value = int(text, 8)
    if value > 0x7FFF or value & ~(_STANDARD_BITS | _S_ISTXT):
        raise ModeSyntaxError(f"invalid mode {text!r}: invalid syntax")
    return _add_cmd("=", _STANDARD_BITS | _S_ISTXT, value)


def _add_cmd(op: str, who: int, oparg: int) -> list[_BitCmd]:
    """dchapes-mode ``addcmd`` with an all-ones mask (umask 0)."""
    mask = _MODET_MASK
    if op == "=":
        clear = _BitCmd("-", 0, who if who else _STANDARD_BITS)
        return [clear, _BitCmd("+", 0, (who & oparg) if who else (mask & oparg))]
    if op in "+-X":
        return [_BitCmd(op, 0, (who & oparg) if who else (mask & oparg))]
    cmd2 = 0
    if who:
        if who & 0o400:
            cmd2 |= _CMD2_UBITS
        if who & 0o040:
            cmd2 |= _CMD2_GBITS
        if who & 0o004:
            cmd2 |= _CMD2_OBITS
        bits = _MODET_MASK
    else:
        cmd2 = _CMD2_UBITS | _CMD2_GBITS | _CMD2_OBITS
        bits = mask
    cmd2 |= {"+": _CMD2_SET, "-": _CMD2_CLEAR, "=": _CMD2_SET | _CMD2_CLEAR}[chr(oparg)]
    return [_BitCmd(op, cmd2, bits)]


class _SymbolicParser:
    """The symbolic branch of BSD ``setmode`` as ported by dchapes-mode."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.s = text
        self.cmds: list[_BitCmd] = []

    def fail(self) -> ModeSyntaxError:
        return ModeSyntaxError(f"invalid mode {self.text!r}: invalid syntax")

    def parse(self) -> list[_BitCmd]:
        while True:
            who = self._parse_who()
            while True:
                op = self._parse_op()
                who &= ~_S_ISTXT
                who = self._parse_perms(op, who)
                if self.s == "":
                    return self.cmds
                if self.s[0] == ",":
                    self.s = self.s[1:]
                    break

    def _parse_who(self) -> int:
        who = 0
        while True:
            if self.s == "":
                raise self.fail()
            ch = self.s[0]
            if ch == "a":
                who |= _STANDARD_BITS
            elif ch == "u":
                who |= _S_ISUID | _RWXU
            elif ch == "g":
                who |= _S_ISGID | _RWXG
            elif ch == "o":
                who |= _RWXO
            else:
                return who
            self.s = self.s[1:]

    def _parse_op(self) -> str:
        if self.s == "":
            raise self.fail()
        op, self.s = self.s[0], self.s[1:]
        if op not in "+-=":
            raise self.fail()
        return op

    def _parse_perms(self, op: str, who: int) -> int:
        perm = perm_x = 0
        equal_done = False
        while True:
            ch = self.s[0] if self.s else ""
            if ch == "r":
                perm |= _R_ALL
            elif ch == "s":
                if who == 0 or who & ~_RWXO:
                    perm |= _S_ISUID | _S_ISGID
            elif ch == "t":
                if who == 0 or who & ~_RWXO:
                    who |= _S_ISTXT
                    perm |= _S_ISTXT
            elif ch == "w":
                perm |= _W_ALL
            elif ch == "X":
                if op == "+":
                    perm_x = _X_ALL
            elif ch == "x":
                perm |= _X_ALL
            elif ch in ("u", "g", "o"):
                if perm:
                    self.cmds += _add_cmd(op, who, perm)
                    perm = 0
                if op == "=":
                    equal_done = True
                if perm_x:
                    self.cmds += _add_cmd("X", who, perm_x)
                    perm_x = 0
                self.cmds += _add_cmd(ch, who, ord(op))
            else:
                if perm or (op == "=" and not equal_done):
                    self.cmds += _add_cmd(op, who, perm)
                if perm_x:
                    self.cmds += _add_cmd("X", who, perm_x)
                return who
            self.s = self.s[1:]


# ----------------------------------------------------------------- metadata helpers


def unprivileged() -> bool:
    """True when not running as root (see the module notes)."""
    return os.geteuid() != 0


def with_owner_access(mode: int, is_dir: bool) -> int:
    """``mode``, plus owner read/write (and search for directories) when unprivileged."""
    if not unprivileged():
        return mode
    return mode | (0o700 if is_dir else 0o600)


def lchown_best_effort(path: str | Path, uid: int, gid: int) -> None:
    """``lchown``; without root, giving a file away is refused by the kernel and skipped."""
    try:
        os.lchown(path, uid, gid)
    except PermissionError:
        if not unprivileged():
            raise


def set_times(path: str | Path, timestamp_ns: int | None) -> None:
    """Set atime and mtime of ``path`` itself (not a symlink's target); None keeps them."""
    if timestamp_ns is None:
        return
    os.utime(path, ns=(timestamp_ns, timestamp_ns), follow_symlinks=False)


def chown_path(path: str | Path, owner: Owner | None) -> None:
    """``lchown`` when an owner is given."""
    if owner is not None:
        lchown_best_effort(path, owner.uid, owner.gid)


def mkdir_all(path: Path, mode: int, owner: Owner | None, timestamp_ns: int | None) -> list[Path]:
    """fsutil's ``MkdirAll`` on an already-resolved path: create missing directories
    with ``mode & 0o777``, chown and time them; return the ones created, outermost first.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return []
        raise _os_error(path, errno.ENOTDIR)
    created: list[Path] = []
    parent = path.parent
    if parent != path:
        created = mkdir_all(parent, mode, owner, timestamp_ns)
    try:
        os.mkdir(path, mode & 0o777)
    except FileExistsError:
        if os.path.isdir(path) and not os.path.islink(path):
            return created
        raise
    os.chmod(path, with_owner_access(mode & 0o777, True))
    chown_path(path, owner)
    set_times(path, timestamp_ns)
    created.append(path)
    return created


def _os_error(path: Path | str, code: int) -> OSError:
    return OSError(code, os.strerror(code), str(path))


def copy_xattrs(src: str, dst: str) -> None:
    """Copy extended attributes without following symlinks; failures are ignored,
    as BuildKit's FileOp logs and ignores them."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            continue


# ----------------------------------------------------------------- the copier


@dataclass
class CopyOptions:
    """The knobs of one copy (fsutil's ``CopyInfo`` as BuildKit fills it)."""

    owner: Owner | None = None  # None keeps each source file's uid/gid
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
        dir_mode = DEFAULT_DIRECTORY_MODE if opts.mode is None else opts.mode
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
        target_st = _lstat_or_none(target)
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
        target_st = _lstat_or_none(dst)
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
        owner = self.options.owner or Owner(src_st.st_uid, src_st.st_gid)
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


def _lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def remove_all(path: str | Path) -> None:
    """``os.RemoveAll``: remove ``path`` and everything below it, never following symlinks."""
    st = _lstat_or_none(str(path))
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    for name in os.listdir(path):
        remove_all(os.path.join(path, name))
    os.rmdir(path)


def copy_file_content(src: str, dst: str) -> None:
    """Copy a regular file's bytes into a new ``dst`` (kernel copy when possible)."""
    src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            _copy_fd(src_fd, dst_fd, os.fstat(src_fd).st_size)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _copy_fd(src_fd: int, dst_fd: int, size: int) -> None:
    written = 0
    try:
        while written < size:
            n = os.copy_file_range(src_fd, dst_fd, min(size - written, 1 << 30))
            if n == 0:
                break
            written += n
        return
    except OSError as exc:
        if written or exc.errno not in (errno.ENOSYS, errno.EXDEV, errno.EPERM, errno.EIO,
                                        errno.EOPNOTSUPP, errno.EINVAL):
            raise
    try:  # across filesystems (context -> overlay snapshot): still an in-kernel copy
        while written < size:
            n = os.sendfile(dst_fd, src_fd, written, min(size - written, 1 << 30))
            if n == 0:
                break
            written += n
        return
    except OSError as exc:
        if written or exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(src_fd, 1 << 20):
        os.write(dst_fd, chunk)


def copy_tree(src_dir: Path, dest_dir: Path) -> None:
    """Make ``dest_dir`` a full copy of ``src_dir`` (modes, owners, times, xattrs,
    symlinks, hardlinks, devices), like ``cp -a src_dir/. dest_dir``."""
    Copier(Path(src_dir), Path(dest_dir), CopyOptions(copy_dir_contents=True)).copy("/", "/")
    st = os.lstat(src_dir)
    lchown_best_effort(dest_dir, st.st_uid, st.st_gid)
    os.chmod(dest_dir, with_owner_access(stat.S_IMODE(st.st_mode), True))
    copy_xattrs(str(src_dir), str(dest_dir))
    os.utime(dest_dir, ns=(st.st_atime_ns, st.st_mtime_ns))
