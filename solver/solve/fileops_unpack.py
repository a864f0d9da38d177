"""ADD's ``attemptUnpackDockerCompatibility``: extract a local tar archive into the destination.

Follows BuildKit's ``solver/llbsolver/file/unpack.go`` and the extractor it calls,
``moby/go-archive`` ``Untar``/``Unpack``:

- a source is an archive when it is a regular file (after resolving symlinks inside
  the source root) whose content, once decompressed (gzip, bzip2, xz, zstd or none,
  detected by magic bytes), starts with a valid tar header;
- the destination directory is created (``0755``, owner and timestamp of the action);
- entries keep their mode, owner, times and ``SCHILY.xattr`` attributes; the action's
  ``ChownOpt`` owns only the destination directories made here, not the entries, as in
  docker build (dockerd 20.10's BuildKit 0.8 calls ``Untar(file, dest, nil)``; BuildKit
  46e52f47, 2025, dockerfile 1.17, applies it to every entry: this project follows
  docker build); ``.wh.`` files are ordinary files here (no whiteouts);
- without root, owners are best effort, entries keep owner access and device nodes are
  skipped (``fileops_attrs``' unprivileged policy);
- confinement: leading ``/`` is stripped, a name or hardlink target that climbs out
  with ``..`` fails the whole ADD, and parent directories are resolved inside the
  destination like a chroot, so a symlink in the archive or the destination cannot
  redirect a later entry outside it.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import stat
import tarfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

from solver.llb import gopath
from solver.errors import FileOpError
from solver.solve.fileops_attrs import Owner, lchown_best_effort, mkdir_all, unprivileged, with_owner_access
from solver.solve.fileops_paths import display_path, root_path
from solver.solve.fileops_primitives import remove_all

IMPLIED_DIRECTORY_MODE = 0o755
_XATTR_PREFIX = "SCHILY.xattr."
_MAX_UNIX_NS = (1 << 63) - 1
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ArchiveBreakoutError(FileOpError):
    """An archive entry that would be written outside the extraction directory."""


def _zstd_error() -> type[Exception]:
    """``zstandard.ZstdError`` when the package is installed (else ValueError, caught anyway)."""
    try:
        import zstandard
    except ImportError:
        return ValueError
    return zstandard.ZstdError


def detect_compression(head: bytes) -> str:
    """go-archive's ``compression.Detect`` on the first bytes of a stream."""
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if len(head) >= 8 and int.from_bytes(head[:4], "little") & 0xFFFFFFF0 == 0x184D2A50:
        return "zstd"
    return "none"


@contextmanager
def open_decompressed(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for reading, decompressed according to its magic bytes."""
    with open(path, "rb") as raw:
        kind = detect_compression(raw.read(10))
        raw.seek(0)
        if kind == "gzip":
            stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb")
        elif kind == "bzip2":
            stream = bz2.BZ2File(raw, "rb")
        elif kind == "xz":
            stream = lzma.LZMAFile(raw, "rb")
        elif kind == "zstd":
            import zstandard  # a project dependency; imported here so the rest works without it

            stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        else:
            stream = raw
        with stream:
            yield stream


def is_archive(path: Path) -> bool:
    """BuildKit's ``isArchivePath``: a regular file whose decompressed start is a tar header."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open_decompressed(path) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return tar.firstmember is not None
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError, ValueError, _zstd_error()):
        return False


def attempt_unpack(src_root: Path, src: str, dest_root: Path, dest: str, owner: Owner | None,
                   timestamp_ns: int | None) -> bool:
    """Unpack ``src`` (in ``src_root``) into directory ``dest`` (in ``dest_root``) if it is
    an archive; return whether it was."""
    archive = root_path(src_root, src)
    if not is_archive(archive):
        return False
    target = root_path(dest_root, dest)
    try:
        mkdir_all(target, IMPLIED_DIRECTORY_MODE, owner, timestamp_ns)
    except OSError as exc:
        shown = display_path(dest_root, exc.filename or target)
        raise FileOpError(f"mkdir {shown}: {exc.strerror}", shown) from exc
    untar(archive, target, None, name=gopath.join("/", src))  # entries keep the archive's owners
    return True


def untar(archive: Path, dest_dir: Path, owner: Owner | None = None, *, name: str = "") -> None:
    """Extract ``archive`` (compressed or not) into the existing directory ``dest_dir``,
    confined to it; ``name`` is how errors call the archive."""
    shown = name or str(archive)
    try:
        with open_decompressed(archive) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                _Extractor(Path(dest_dir), owner, shown).run(tar)
    except FileOpError:
        raise
    except (OSError, EOFError, tarfile.TarError, zlib.error, lzma.LZMAError, ValueError,
            _zstd_error()) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise FileOpError(f"failed to unpack {shown}: {reason}", shown) from exc


def _pax_time_ns(member: tarfile.TarInfo, key: str) -> int | None:
    """A PAX time record ("secs[.frac]") in nanoseconds, exactly."""
    raw = member.pax_headers.get(key)
    if raw is None:
        return None
    sign = -1 if raw.startswith("-") else 1
    secs, _, frac = raw.lstrip("-").partition(".")
    try:
        return sign * (int(secs or "0") * 1_000_000_000 + int((frac + "000000000")[:9]))
    except ValueError:
        return None


def _bound(ns: int) -> int:
    """go-archive ``boundTime``: times before the epoch (or past int64) become the epoch."""
    return ns if 0 <= ns <= _MAX_UNIX_NS else 0


@dataclass
class _Extractor:
    """Writes the members of one tar stream below ``root``."""

    root: Path
    owner: Owner | None
    archive_name: str

    def run(self, tar: tarfile.TarFile) -> None:
        dirs: list[tuple[str, tarfile.TarInfo]] = []
        for member in tar:
            path = self._extract(tar, member)
            if path is not None and member.isdir():
                dirs.append((path, member))
        for path, member in dirs:
            self._set_times(path, member, follow=True)

    def _fail(self, message: str, name: str) -> ArchiveBreakoutError:
        return ArchiveBreakoutError(f"failed to unpack {self.archive_name}: {message}", name)

    def _local_name(self, name: str) -> str | None:
        """The root-relative entry name, None for the root itself; raises on escapes."""
        cleaned = gopath.clean(name.lstrip("/"))
        if cleaned == ".":
            return None
        if cleaned == ".." or cleaned.startswith("../"):
            raise self._fail(f"invalid entry name {name!r}", name)
        return cleaned

    def _resolve(self, name: str) -> str:
        """Where entry ``name`` goes: its parent resolved inside the root, its base kept."""
        parent, base = gopath.split(name)
        return str(root_path(self.root, parent) / base)

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> str | None:
        name = self._local_name(member.name)
        if name is None:
            return None
        path = self._resolve(name)
        link_target = self._hardlink_target(member) if member.islnk() else None
        self._clear_existing(path, member)
        try:
            self._make_implied_dirs(Path(path).parent)
            if not self._create(tar, member, path, link_target):
                return None
            self._apply_metadata(member, path, link_target)
        except OSError as exc:
            raise FileOpError(f"failed to unpack {self.archive_name}: {member.name}: {exc.strerror}",
                              member.name) from exc
        return path

    def _hardlink_target(self, member: tarfile.TarInfo) -> str:
        cleaned = gopath.clean(member.linkname)
        if cleaned.startswith("/"):
            cleaned = gopath.clean(member.linkname.lstrip("/"))
        if cleaned == "." or cleaned == ".." or cleaned.startswith("../"):
            raise self._fail(f"invalid hardlink target {member.linkname!r}", member.name)
        return self._resolve(cleaned)

    def _clear_existing(self, path: str, member: tarfile.TarInfo) -> None:
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        if not (stat.S_ISDIR(st.st_mode) and member.isdir()):
            remove_all(path)

    def _make_implied_dirs(self, parent: Path) -> None:
        if not os.path.lexists(parent):
            mkdir_all(parent, IMPLIED_DIRECTORY_MODE, None, None)

    def _create(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str,
                link_target: str | None) -> bool:
        """Create the entry's node; False when it is skipped (a device node without root)."""
        perm = member.mode & 0o777
        if member.isdir():
            if not os.path.isdir(path) or os.path.islink(path):
                os.mkdir(path, with_owner_access(perm, True))
        elif member.isreg():
            self._write_file(tar, member, path, perm)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif link_target is not None:
            os.link(link_target, path, follow_symlinks=False)
        elif (member.ischr() or member.isblk()) and unprivileged():
            return False
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            os.mknod(path, kind | (member.mode & 0o7777), os.makedev(member.devmajor, member.devminor))
        else:
            raise OSError(errno.EINVAL, f"unhandled tar header type {member.type!r}")
        return True

    @staticmethod
    def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str, perm: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, perm)
        with os.fdopen(fd, "wb") as out:
            data = tar.extractfile(member)
            if data is not None:
                while chunk := data.read(1 << 20):
                    out.write(chunk)

    def _apply_metadata(self, member: tarfile.TarInfo, path: str, link_target: str | None) -> None:
        owner = self.owner or Owner(member.uid, member.gid)
        lchown_best_effort(path, owner.uid, owner.gid)
        self._set_xattrs(member, path)
        target_is_symlink = link_target is not None and os.path.islink(link_target)
        if not member.issym() and not target_is_symlink:
            os.chmod(path, with_owner_access(member.mode & 0o7777, member.isdir()))
        if member.isdir():
            return  # directory times are set once everything below them is written
        if member.issym():
            self._set_times(path, member, follow=False)
        elif not target_is_symlink:
            self._set_times(path, member, follow=True)

    @staticmethod
    def _set_xattrs(member: tarfile.TarInfo, path: str) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PREFIX):
                continue
            data = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(path, key[len(_XATTR_PREFIX):], data, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    @staticmethod
    def _set_times(path: str, member: tarfile.TarInfo, *, follow: bool) -> None:
        mtime = _pax_time_ns(member, "mtime")
        if mtime is None:
            mtime = int(member.mtime) * 1_000_000_000
        atime = _pax_time_ns(member, "atime")
        atime = mtime if atime is None or atime < mtime else atime
        os.utime(path, ns=(_bound(atime), _bound(mtime)), follow_symlinks=follow)
