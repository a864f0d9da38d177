"""BuildKit's record of one filesystem entry (``filehash.go``, ``tarsum.go``): the tarsum-v1 header and the record digest.

SHA-256 over the tarsum-v1 header strings ``"name"+""``, ``"mode"+<perm|suid|sgid|sticky
in decimal>``, ``"uid"``, ``"gid"``, ``"size"``, ``"typeflag"``, ``"linkname"``,
``"uname"+""``, ``"gname"+""``, ``"devmajor"``, ``"devminor"``, then the sorted xattrs
(``security.*`` and ``system.*`` left out, except ``security.capability``), then the
file content. mtime is not in it. Symlinks have mode 0777 and typeflag '2';
directories typeflag '5' and size 0; only regular files have a size and content.
"""

from __future__ import annotations

import hashlib
import os
import stat as st_mod
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

from solver.cache.statmemo import Fingerprint, StatMemo

EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"").hexdigest()
READ_CHUNK = 1 << 20

Opener = Callable[[str], BinaryIO]


def open_nofollow(path: str) -> BinaryIO:
    """Open a file for reading without following a symlink in its last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    return os.fdopen(fd, "rb")


def sha256_digest(data: bytes) -> str:
    """``"sha256:<hex>"`` of ``data``."""
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
        return sha256_digest(header)
    fingerprint = Fingerprint(
        st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_mode, sha256_digest(header), st.st_ctime_ns
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
