"""One tar header for one file on disk, as image layers and rootfs tars write it."""

from __future__ import annotations

import os
import stat
import tarfile

from solver.snapshot.fsutil import read_xattrs


def tar_info(name: str, host_path: str, st: os.stat_result, epoch: int | None,
             links: dict[tuple[int, int], str]) -> tarfile.TarInfo:
    """The header of ``host_path`` stored as ``name``: owners and mode kept, no user names,
    mtime clamped to ``epoch`` when given, later hardlinks of an inode as LNKTYPE
    (``links`` remembers inodes seen), xattrs as PAX ``SCHILY.xattr.*`` records."""
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = min(int(st.st_mtime), epoch) if epoch is not None else int(st.st_mtime)
    mode = st.st_mode
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
        else:
            links[key] = name
            info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host_path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    if not stat.S_ISLNK(mode):
        for key_name, value in sorted(read_xattrs(host_path).items()):
            info.pax_headers["SCHILY.xattr." + key_name] = value.decode("utf-8", "surrogateescape")
    return info
