"""The entries of a build context: their kinds, the stat each was selected with, and the context's error."""

from __future__ import annotations

import os
import stat as st_mod
from dataclasses import dataclass
from enum import Enum

from solver.errors import LLBookError


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


_HIDDEN_STAT_FIELDS = (
    "st_atime", "st_mtime", "st_ctime", "st_atime_ns", "st_mtime_ns", "st_ctime_ns",
    "st_blksize", "st_blocks", "st_rdev",
)


def owned_by_root(st: os.stat_result) -> os.stat_result:
    """The stat with uid and gid 0, as BuildKit's client sends context entries.

    The client's file sync (``session/filesync``, ``resetUIDAndGID``) maps every entry to
    0:0 before sending, so a COPY without --chown gives root-owned files, whatever their
    owner on disk; checksums and copies of a local context therefore see 0:0 too.
    """
    if st.st_uid == 0 and st.st_gid == 0:
        return st
    fields = list(st)
    fields[4] = fields[5] = 0
    hidden = {name: getattr(st, name) for name in _HIDDEN_STAT_FIELDS if hasattr(st, name)}
    return os.stat_result(fields, hidden)


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

