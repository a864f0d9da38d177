"""BuildKit's content checksums (``cache/contenthash``), computed from a real directory.

What is hashed (all digests are ``"sha256:<hex>"``):

- **Record of one entry** (``filehash.go``, ``tarsum.go``): SHA-256 over the tarsum-v1
  header strings ``"name"+""``, ``"mode"+<perm|suid|sgid|sticky in decimal>``, ``"uid"``,
  ``"gid"``, ``"size"``, ``"typeflag"``, ``"linkname"``, ``"uname"+""``, ``"gname"+""``,
  ``"devmajor"``, ``"devminor"``, then the sorted xattrs (``security.*`` and
  ``system.*`` left out, except ``security.capability``), then the file content. mtime
  is not in it. Symlinks have mode 0777 and typeflag '2'; directories typeflag '5' and
  size 0; only regular files have a size and content.
- **Directory contents** (``checksum.go``, a ``Dir`` record ``/dir``): SHA-256 over
  ``"\\0" + <header record of the directory>`` (the ``/dir/`` record) followed by,
  for every child in byte order, ``"\\0" + name + <child digest>``, where a child
  directory contributes its own contents digest and symlinks are never followed.
- **Plain selector** (no wildcard, no patterns): the digest of the path after resolving
  symlinks inside the root (the last component only with ``follow_symlinks``).
- **Wildcard / include / exclude selectors** (``includedPaths``): the selected file
  records and directory headers, in tree order, hashed as ``key + digest`` with the
  path relative to the selector's literal prefix and '/' written as "\\0"; a single
  selected entry named like the selector is returned as is, nothing selected gives
  the digest of empty input. A selector ending in '/' leaves out its own header.
- **Several selectors** (``NewContentHashFunc``): SHA-256 of the ``"\\0"``-joined digests.

Symlinks are resolved like BuildKit does, confined to the root: absolute targets start
again at the root and ``..`` never climbs above it.

``StatMemo`` remembers the record digest of each regular file by (path, size,
mtime_ns, inode, mode and the header), so re-checking a large unchanged tree costs one
``lstat`` per file and no reads. It can be saved to and loaded from a JSON file.

API: ``checksum(root, selector, ...)``, ``checksum_many(root, selectors, ...)``,
``file_digests(root, selector, ...)`` (which entries a selector picks, with their
record digests), ``diff_digests(before, after)``, ``record_digest(path)``,
``Selector`` (path plus BuildKit's ``ChecksumOpts``), ``StatMemo``. Every function
takes ``memo``, an ``opener`` (how regular files are opened, e.g. confined to a root)
and ``visible`` (hide entries: hash a filtered build context in place).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat as st_mod
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Mapping, Sequence

from solver.errors import LLBookError
from solver.llb import gopath
from solver.source.dockerignore import (
    MatchInfo,
    PatternMatcher,
    clean_path,
    contains_wildcards,
    path_match,
)

__all__ = [
    "EMPTY_DIGEST",
    "ChecksumNotFoundError",
    "ContentHashError",
    "Opener",
    "Selector",
    "StatMemo",
    "Visible",
    "checksum",
    "checksum_many",
    "file_digests",
    "record_digest",
]

EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()
MAX_SYMLINKS = 255
READ_CHUNK = 1 << 20

Opener = Callable[[str], BinaryIO]
# Which entries exist in the tree: a path relative to the root ("src/a.py") -> bool.
# Used to hash a local context as the filtered copy a build would transfer.
Visible = Callable[[str], bool]


class ContentHashError(LLBookError):
    """A checksum that cannot be computed (bad pattern, symlink loop, unreadable file)."""


class ChecksumNotFoundError(ContentHashError, FileNotFoundError):
    """The selected path does not exist in the tree (BuildKit's ``errNotFound``)."""


def open_nofollow(path: str) -> BinaryIO:
    """Open a file for reading without following a symlink in its last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    return os.fdopen(fd, "rb")


# ------------------------------------------------------------------------ records


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _xattrs(path: str) -> list[tuple[bytes, bytes]]:
    """The xattrs BuildKit hashes, sorted by name (security./system. ones left out)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out: list[tuple[bytes, bytes]] = []
    for name in names:
        if name != "security.capability" and name.startswith(("security.", "system.")):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out.append((os.fsencode(name), value))
    out.sort()
    return out


_TYPEFLAGS = {
    st_mod.S_IFDIR: b"5",
    st_mod.S_IFLNK: b"2",
    st_mod.S_IFCHR: b"3",
    st_mod.S_IFBLK: b"4",
    st_mod.S_IFIFO: b"6",
}
_HEADER_FORMAT = (
    b"name" b"mode%d" b"uid%d" b"gid%d" b"size%d" b"typeflag%s" b"linkname%s"
    b"uname" b"gname" b"devmajor%d" b"devminor%d"
)


def tarsum_header(st: os.stat_result, linkname: bytes, xattrs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The tarsum-v1 header bytes of one entry (everything hashed before its content).

    Regular files, and sockets (Go clears the socket bit, leaving a "regular" file),
    have typeflag '0' and their size; every other type has size 0.
    """
    fmt = st_mod.S_IFMT(st.st_mode)
    perm = st_mod.S_IMODE(st.st_mode)
    if fmt == st_mod.S_IFLNK:
        perm |= 0o777
    typeflag = _TYPEFLAGS.get(fmt, b"0")
    size = st.st_size if typeflag == b"0" else 0
    devmajor = devminor = 0
    if fmt in (st_mod.S_IFCHR, st_mod.S_IFBLK):
        devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    header = _HEADER_FORMAT % (perm, st.st_uid, st.st_gid, size, typeflag, linkname, devmajor, devminor)
    if xattrs:
        header += b"".join(k + v for k, v in xattrs)
    return header


@dataclass(frozen=True)
class _Fingerprint:
    """What must be unchanged for a memoised file record to be reused.

    ``ctime_ns`` moves on every change of the inode (content, mode, owner, xattrs,
    links) and, unlike mtime, cannot be set back: a rewrite that keeps the size and puts
    the mtime back is still a miss. With it unchanged, ``StatMemo.quick_lookup`` may skip
    listing xattrs and hashing the header. Entries saved before ctime was recorded
    (``-1``) miss once.
    """

    size: int
    mtime_ns: int
    inode: int
    device: int
    mode: int
    header: str  # sha256 of the tarsum header: uid, gid, xattrs, ...
    ctime_ns: int = -1

    def as_list(self) -> list[int | str]:
        return [self.size, self.mtime_ns, self.inode, self.device, self.mode, self.header, self.ctime_ns]

    @classmethod
    def from_list(cls, raw: Sequence[int | str]) -> "_Fingerprint":
        size, mtime_ns, inode, device, mode, header = raw[:6]
        ctime_ns = int(raw[6]) if len(raw) > 6 else -1
        return cls(int(size), int(mtime_ns), int(inode), int(device), int(mode), str(header), ctime_ns)

    def same_inode_state(self, st: os.stat_result) -> bool:
        """Nothing of the file changed since this fingerprint (ctime moves on every change
        of content, mode, owner, xattrs or links, and cannot be set back by users)."""
        return (self.ctime_ns == st.st_ctime_ns and self.ctime_ns >= 0 and self.size == st.st_size
                and self.mtime_ns == st.st_mtime_ns and self.inode == st.st_ino
                and self.device == st.st_dev and self.mode == st.st_mode)


class StatMemo:
    """Record digests of regular files, keyed by path and checked against their stat.

    A hit costs an ``lstat`` (plus listing xattrs); a miss reads the file. ``hits`` and
    ``misses`` count lookups since the memo was created or loaded. One memo can be
    shared by threads; several processes saving the same file keep the last write.
    """

    FILE_NAME = "contenthash-memo.json"
    VERSION = 1

    def __init__(self, path: str | Path | None = None) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self._entries: dict[str, tuple[_Fingerprint, str]] = {}
        self.hits = 0
        self.misses = 0
        self._dirty = False
        self._lock = threading.Lock()

    @classmethod
    def in_dir(cls, cache_dir: str | Path) -> "StatMemo":
        """The memo persisted in ``cache_dir`` (created empty if there is none yet)."""
        return cls.load(Path(cache_dir) / cls.FILE_NAME)

    @classmethod
    def load(cls, path: str | Path) -> "StatMemo":
        """Load a saved memo; a missing or unreadable file gives an empty memo."""
        memo = cls(path)
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return memo
        if not isinstance(raw, dict) or raw.get("version") != cls.VERSION:
            return memo
        for key, (fingerprint, digest) in raw.get("entries", {}).items():
            memo._entries[key] = (_Fingerprint.from_list(fingerprint), str(digest))
        return memo

    def save(self, path: str | Path | None = None) -> Path:
        """Write the memo atomically (to ``path`` or the path it was loaded from)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("StatMemo.save needs a path")
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            entries = sorted(self._entries.items())
            self._dirty = False
        payload = {
            "version": self.VERSION,
            "entries": {k: [fp.as_list(), d] for k, (fp, d) in entries},
        }
        fd, tmp = tempfile.mkstemp(prefix=".memo-", dir=target.parent)
        with os.fdopen(fd, "w") as out:
            json.dump(payload, out, separators=(",", ":"))
        os.replace(tmp, target)
        return target

    def save_if_changed(self) -> None:
        if self._dirty and self.path is not None:
            self.save()

    def __len__(self) -> int:
        return len(self._entries)

    def quick_lookup(self, path: str, st: os.stat_result) -> str | None:
        """The digest of ``path`` when its inode is unchanged since it was stored (no
        xattr listing or header hashing needed); None otherwise (then use ``lookup``)."""
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0].same_inode_state(st):
                self.hits += 1
                return entry[1]
            return None

    def lookup(self, path: str, fingerprint: _Fingerprint) -> str | None:
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[0] == fingerprint:
                self.hits += 1
                return entry[1]
            self.misses += 1
            return None

    def store(self, path: str, fingerprint: _Fingerprint, digest: str) -> None:
        with self._lock:
            self._entries[path] = (fingerprint, digest)
            self._dirty = True

    def forget_under(self, root: str | Path) -> int:
        """Drop the entries below ``root`` whose files are gone; return how many."""
        prefix = os.path.abspath(root).rstrip("/") + "/"
        with self._lock:
            keys = [k for k in self._entries if k.startswith(prefix)]
        gone = [k for k in keys if not os.path.lexists(k)]
        with self._lock:
            for key in gone:
                self._entries.pop(key, None)
            self._dirty = self._dirty or bool(gone)
        return len(gone)


def _hash_stream(h: "hashlib._Hash", path: str, opener: Opener) -> None:
    with opener(path) as stream:
        while True:
            chunk = stream.read(READ_CHUNK)
            if not chunk:
                return
            h.update(chunk)


def record_digest(
    path: str | Path,
    st: os.stat_result | None = None,
    *,
    memo: StatMemo | None = None,
    opener: Opener = open_nofollow,
) -> str:
    """The record digest of one filesystem entry (a directory gives its header record)."""
    fs_path = os.fspath(path)
    if st is None:
        st = os.lstat(fs_path)
    if memo is not None and st.st_size > 0 and st_mod.S_ISREG(st.st_mode):
        known = memo.quick_lookup(fs_path, st)
        if known is not None:
            return known
    linkname = os.readlink(os.fsencode(fs_path)) if st_mod.S_ISLNK(st.st_mode) else b""
    header = tarsum_header(st, linkname, _xattrs(fs_path))
    if not (st_mod.S_ISREG(st.st_mode) and st.st_size > 0):
        return _sha256(header)
    fingerprint = _Fingerprint(
        st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_mode, _sha256(header), st.st_ctime_ns
    )
    if memo is not None:
        known = memo.lookup(fs_path, fingerprint)
        if known is not None:
            return known
    h = hashlib.sha256(header)
    _hash_stream(h, fs_path, opener)
    digest = "sha256:" + h.hexdigest()
    if memo is not None:
        memo.store(fs_path, fingerprint, digest)
    return digest


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


def _key_path(p: str) -> str:
    """BuildKit's ``keyPath``: cleaned absolute path, with the root written as ""."""
    cleaned = clean_path("/" + p)
    return "" if cleaned == "/" else cleaned


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


@dataclass(frozen=True)
class _Entry:
    """A header or a non-directory entry of the tree, in radix-key order."""

    real: str  # path inside the root, "" for the root itself
    is_header: bool
    is_symlink: bool


class _Tree:
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
            nxt = _key_path(current + "/" + part)
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
        real = self.resolve(_key_path(selector), follow_trailing)
        st = self.lstat(real)
        if st is None:
            raise ChecksumNotFoundError(f"{clean_path('/' + selector)!r}: not found")
        return self.dir_digest(real) if st_mod.S_ISDIR(st.st_mode) else self.record(real)

    def entries(self, start: str) -> Iterator[_Entry]:
        """Headers and non-directories of the subtree at ``start``, in radix-key order."""
        st = self.lstat(start)
        if st is None:
            return
        if not st_mod.S_ISDIR(st.st_mode):
            yield _Entry(start, False, st_mod.S_ISLNK(st.st_mode))
            return
        yield _Entry(start, True, False)
        for name in self.children(start):
            yield from self.entries(start + "/" + name)


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


def _start_of(tree: _Tree, sel: Selector, p: str) -> tuple[str, str | None]:
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


def _included_paths(tree: _Tree, sel: Selector) -> tuple[str, list[_Included]]:
    """BuildKit's ``includedPaths``: the entries a filtered selector picks, in order."""
    ends_in_sep = sel.path.endswith("/")
    p = _key_path(sel.path)
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


def _follow_included(tree: _Tree, included: list[_Included]) -> None:
    """Top-level symlinks of a following selector hash as their targets."""
    for item in included:
        if item.follow and item.is_symlink:
            item.digest = tree.lazy_checksum(item.path, True)
            item.is_symlink = False


def _filtered_checksum(tree: _Tree, sel: Selector) -> str:
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


def _checksum(tree: _Tree, sel: Selector) -> str:
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
    tree = _Tree(root, memo, opener, visible, known_stats)
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
    tree = _Tree(root, memo, opener, visible, known_stats)
    chosen = list(selectors) or [""]
    digests: list[bytes] = []
    for raw in chosen:
        sel = _make_selector(raw, follow_symlinks, wildcard, include_patterns, exclude_patterns)
        sel = replace(sel, path=clean_path("/" + sel.path))
        digests.append(_checksum(tree, sel).encode())
    return _sha256(b"\0".join(digests))


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
        sel = replace(sel, path=_key_path(sel.path))
    tree = _Tree(root, memo, opener, visible, known_stats)
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
