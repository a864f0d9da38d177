"""Confined extraction of layer tars into a rootfs directory.

Every path is resolved component by component from an open file descriptor of the
root, openat-style: each parent directory is opened with O_NOFOLLOW relative to the
one before it, and a symlink met on the way is resolved *inside* the root (an absolute
target restarts at the root, `..` never climbs above it), the way a container sees it.
The final component is always created with `*at` calls relative to its parent's fd and
never followed. So:

- a member name with `..` that would climb above the root is refused (`UnsafeTarError`),
- absolute member names are re-rooted (`/etc/x` → `<root>/etc/x`),
- writing through a symlink that points outside (`lib -> /usr/lib`, `x -> ../../..`)
  lands inside the root,
- hard links may only point at entries inside the root,
- device nodes are created only with `allow_devices` and when running as root,
- as root, uid/gid, mode (including setuid bits), mtime and xattrs are preserved.

Whiteouts (`WhiteoutMode`):
- `apply`: OCI semantics for a flattened (native) snapshot: `.wh.name` deletes `name`,
  `.wh..wh..opq` empties its directory of everything not written by this same layer.
- `overlay`: convert to overlayfs form for an upperdir / layer dir: `.wh.name` becomes a
  0/0 character device `name`, `.wh..wh..opq` becomes the xattr
  `trusted.overlay.opaque=y` (`user.overlay.opaque` when not root, for userxattr mounts).
"""

from __future__ import annotations

import enum
import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from solver.errors import LLBookError, shorten

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
MAX_SYMLINK_HOPS = 255
_MAX_CACHED_DIRS = 256
_COPY_CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TarExtractError(LLBookError):
    """A layer entry that cannot be extracted (e.g. its parent is a regular file)."""


class UnsafeTarError(TarExtractError):
    """A layer entry that tries to reach outside the rootfs."""


class WhiteoutMode(str, enum.Enum):
    APPLY = "apply"
    OVERLAY = "overlay"


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract. `None` fields mean "decide by whether we run as root"."""

    whiteouts: WhiteoutMode = WhiteoutMode.APPLY
    same_owner: bool | None = None  # chown to the tar's uid/gid
    allow_devices: bool = False  # create block/char devices (needs root as well)
    xattrs: bool = True
    overlay_xattr_prefix: str | None = None  # "trusted." as root, else "user."
    owner_access: bool | None = None  # add u+rw (files) / u+rwx (dirs); default when not root

    def resolved(self) -> "ExtractOptions":
        root = os.geteuid() == 0
        return ExtractOptions(
            whiteouts=WhiteoutMode(self.whiteouts),
            same_owner=root if self.same_owner is None else self.same_owner,
            allow_devices=self.allow_devices and root,
            xattrs=self.xattrs,
            overlay_xattr_prefix=self.overlay_xattr_prefix or ("trusted." if root else "user."),
            owner_access=(not root) if self.owner_access is None else self.owner_access,
        )


@dataclass
class ExtractStats:
    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    whiteouts: int = 0
    opaque_dirs: int = 0
    bytes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def member_parts(name: str) -> tuple[str, ...]:
    """Lexically clean a member name into components; absolute names are re-rooted.

    Raises UnsafeTarError when `..` would climb above the root.
    """
    parts: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise UnsafeTarError(f"tar entry {name!r} climbs out of the root with '..'; refused")
            parts.pop()
            continue
        parts.append(comp)
    return tuple(parts)


@dataclass
class _DirMeta:
    parts: tuple[str, ...]
    mode: int
    mtime: float


class _Extractor:
    """One extraction run; owns the root fd and the bookkeeping of this layer."""

    def __init__(self, root: Path, options: ExtractOptions) -> None:
        self.root = root
        self.options = options
        self.stats = ExtractStats()
        self.unpacked: set[tuple[str, ...]] = set()
        self.dirs: list[_DirMeta] = []
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        # Parent directories resolved before, by the parts asked for: consecutive members
        # mostly share a parent. Valid while nothing is removed (only a removal can change
        # what a resolved path leads to); `replace` drops them all.
        self._dir_cache: dict[tuple[str, ...], tuple[int, tuple[str, ...]]] = {}
        self._stale: list[int] = []  # dropped fds that may still be in use by the current member

    def close(self) -> None:
        self._forget_dirs()
        self._close_stale()
        os.close(self.root_fd)

    def _forget_dirs(self) -> None:
        self._stale += [fd for fd, _ in self._dir_cache.values()]
        self._dir_cache.clear()

    def _close_stale(self) -> None:
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()

    def cached_dir(self, parts: tuple[str, ...], create: bool, what: str) -> tuple[int, tuple[str, ...]]:
        """`open_dir`, remembered: the fd belongs to the cache (the caller does not close it)."""
        found = self._dir_cache.get(parts)
        if found is None:
            if len(self._dir_cache) >= _MAX_CACHED_DIRS:
                self._forget_dirs()
                self._close_stale()
            found = self.open_dir(parts, create, what)
            self._dir_cache[parts] = found
        return found

    # -- confined path resolution --

    def open_dir(self, parts: tuple[str, ...], create: bool, what: str) -> tuple[int, tuple[str, ...]]:
        """Open the directory at `parts`, resolving symlinks inside the root.

        Returns (fd, real components). Missing directories are created when `create`.
        """
        real: list[str] = []
        fds = [os.dup(self.root_fd)]
        pending = list(parts)
        hops = 0
        try:
            while pending:
                comp = pending.pop(0)
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if real:
                        real.pop()
                        os.close(fds.pop())
                    continue
                cur = fds[-1]
                st = _lstat_or_mkdir(cur, comp, create)
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise UnsafeTarError(f"{what}: too many levels of symlinks under {self.root}")
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith("/"):
                        for fd in fds[1:]:
                            os.close(fd)
                        del fds[1:]
                        real.clear()
                    pending = target.split("/") + pending
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise TarExtractError(f"{what}: /{'/'.join(real + [comp])} is not a directory")
                fds.append(os.open(comp, _DIR_FLAGS, dir_fd=cur))
                real.append(comp)
            result = fds.pop()
            return result, tuple(real)
        finally:
            for fd in fds:
                os.close(fd)

    # -- entry handlers --

    def extract_member(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.stats.entries += 1
        parts = member_parts(member.name)
        if not parts:
            self.stats.skipped.append((member.name, "the root directory itself"))
            return
        name = parts[-1]
        if name.startswith(WHITEOUT_PREFIX):
            self.whiteout(member.name, parts)
            return
        what = f"tar entry {member.name!r}"
        parent_fd, real_parent = self.cached_dir(parts[:-1], True, what)
        try:
            self.unpacked.add(real_parent + (name,))
            if member.isdir():
                self.make_dir(parent_fd, name, member, real_parent + (name,))
            elif member.isreg():
                self.make_file(parent_fd, name, member, archive)
            elif member.issym():
                self.make_symlink(parent_fd, name, member)
            elif member.islnk():
                self.make_hardlink(parent_fd, name, member)
            elif member.isfifo():
                self.replace(parent_fd, name, keep_dir=False)
                os.mkfifo(name, self.file_mode(member.mode), dir_fd=parent_fd)
                self.set_metadata_at(parent_fd, name, member)
            elif member.ischr() or member.isblk():
                self.make_device(parent_fd, name, member)
            else:
                self.stats.skipped.append((member.name, f"unsupported tar type {member.type!r}"))
        finally:
            self._close_stale()

    def replace(self, parent_fd: int, name: str, keep_dir: bool) -> bool:
        """Remove what is at `name` (never following it). True if a directory was kept."""
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode) and keep_dir:
            return True
        self._forget_dirs()
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
        return False

    def file_mode(self, mode: int) -> int:
        mode &= 0o7777
        return mode | 0o600 if self.options.owner_access else mode

    def make_dir(self, parent_fd: int, name: str, member: tarfile.TarInfo, real: tuple[str, ...]) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            if not self.replace(parent_fd, name, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=parent_fd)
        if self.options.xattrs and _xattrs(member):
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                self.set_owner_xattrs_fd(fd, member)
            finally:
                os.close(fd)
        elif self.options.same_owner:  # no xattrs: no need to open it
            os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
        mode = member.mode & 0o7777
        self.dirs.append(_DirMeta(real, mode | 0o700 if self.options.owner_access else mode, member.mtime))
        self.stats.dirs += 1

    def make_file(self, parent_fd: int, name: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
        except FileExistsError:
            self.replace(parent_fd, name, keep_dir=False)
            fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
        try:  # plain fd calls: a Python file object would add fstat, ioctl and lseek per file
            source = archive.extractfile(member)
            if source is not None:
                while chunk := source.read(_COPY_CHUNK):
                    _write_all(fd, chunk)
            self.set_owner_xattrs_fd(fd, member)
            os.chmod(fd, self.file_mode(member.mode))
            os.utime(fd, ns=(_ns(member.mtime), _ns(member.mtime)))
        finally:
            os.close(fd)
        self.stats.files += 1
        self.stats.bytes += member.size

    def make_symlink(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        try:
            os.symlink(member.linkname, name, dir_fd=parent_fd)
        except FileExistsError:
            self.replace(parent_fd, name, keep_dir=False)
            os.symlink(member.linkname, name, dir_fd=parent_fd)
        if self.options.same_owner:
            os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
        os.utime(name, ns=(_ns(member.mtime), _ns(member.mtime)), dir_fd=parent_fd, follow_symlinks=False)
        self.stats.symlinks += 1

    def make_hardlink(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        what = f"hard link {member.name!r} -> {member.linkname!r}"
        target = member_parts(member.linkname)
        if not target:
            raise UnsafeTarError(f"{what}: target is the root directory; refused")
        try:
            target_fd, _ = self.open_dir(target[:-1], False, what)
        except FileNotFoundError:
            raise TarExtractError(f"{what}: target does not exist in the rootfs") from None
        try:
            st = os.stat(target[-1], dir_fd=target_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeTarError(f"{what}: target is a directory; refused")
            self.replace(parent_fd, name, keep_dir=False)
            os.link(target[-1], name, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise TarExtractError(f"{what}: target does not exist in the rootfs") from None
        finally:
            os.close(target_fd)
        self.stats.hardlinks += 1

    def make_device(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        if not self.options.allow_devices:
            self.stats.skipped.append((member.name, "device node (devices not allowed)"))
            return
        self.replace(parent_fd, name, keep_dir=False)
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(name, kind | (member.mode & 0o7777), os.makedev(member.devmajor, member.devminor),
                 dir_fd=parent_fd)
        self.set_metadata_at(parent_fd, name, member)

    # -- metadata --

    def set_owner_xattrs_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        if self.options.same_owner:
            os.chown(fd, member.uid, member.gid)
        if self.options.xattrs:
            for key, value in _xattrs(member).items():
                self.set_xattr(fd, key, value, member.name)

    def set_xattr(self, fd: int, key: str, value: bytes, name: str) -> None:
        if not self.options.same_owner and not key.startswith("user."):
            self.stats.skipped.append((name, f"xattr {key} (needs root)"))
            return
        try:
            os.setxattr(fd, key, value)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP):
                raise
            self.stats.skipped.append((name, f"xattr {key}: {exc.strerror}"))

    def set_metadata_at(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        if self.options.same_owner:
            os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
        os.chmod(name, member.mode & 0o7777, dir_fd=parent_fd)
        os.utime(name, ns=(_ns(member.mtime), _ns(member.mtime)), dir_fd=parent_fd, follow_symlinks=False)

    def finish_dirs(self) -> None:
        """Directory modes and mtimes last, deepest first, so children do not disturb them."""
        for meta in sorted(self.dirs, key=lambda d: len(d.parts), reverse=True):
            try:
                parent_fd, _ = self.cached_dir(meta.parts[:-1], False, "directory metadata")
            except (FileNotFoundError, TarExtractError):
                continue
            try:
                fd = os.open(meta.parts[-1], _DIR_FLAGS, dir_fd=parent_fd)
            except OSError:
                continue  # removed or replaced by a non-directory later in the layer
            try:
                os.chmod(fd, meta.mode)
                os.utime(fd, ns=(_ns(meta.mtime), _ns(meta.mtime)))
            finally:
                os.close(fd)

    # -- whiteouts --

    def whiteout(self, raw_name: str, parts: tuple[str, ...]) -> None:
        name = parts[-1]
        what = f"whiteout {raw_name!r}"
        if name != WHITEOUT_OPAQUE and name.startswith(WHITEOUT_META_PREFIX):
            self.stats.skipped.append((raw_name, "AUFS metadata"))
            return
        overlay = self.options.whiteouts == WhiteoutMode.OVERLAY
        try:
            parent_fd, real_parent = self.open_dir(parts[:-1], overlay, what)
        except FileNotFoundError:
            self.stats.whiteouts += 1
            return  # nothing below to hide
        try:
            if name == WHITEOUT_OPAQUE:
                self.opaque(parent_fd, real_parent)
            else:
                self.whiteout_one(parent_fd, real_parent, name[len(WHITEOUT_PREFIX):], what)
        finally:
            os.close(parent_fd)

    def opaque(self, dir_fd: int, real_dir: tuple[str, ...]) -> None:
        self.stats.opaque_dirs += 1
        if self.options.whiteouts == WhiteoutMode.OVERLAY:
            os.setxattr(dir_fd, f"{self.options.overlay_xattr_prefix}overlay.opaque", b"y")
            return
        for entry in os.listdir(dir_fd):
            if real_dir + (entry,) not in self.unpacked:
                self.replace(dir_fd, entry, keep_dir=False)

    def whiteout_one(self, parent_fd: int, real_parent: tuple[str, ...], target: str, what: str) -> None:
        if not target or target in (".", ".."):
            raise UnsafeTarError(f"{what}: names no entry; refused")
        self.stats.whiteouts += 1
        if self.options.whiteouts == WhiteoutMode.APPLY:
            if real_parent + (target,) not in self.unpacked:  # same-layer entries stay (OCI spec)
                self.replace(parent_fd, target, keep_dir=False)
            return
        self.replace(parent_fd, target, keep_dir=False)
        try:
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
        except PermissionError as exc:
            raise TarExtractError(f"{what}: cannot create the overlay whiteout device "
                                  f"(needs CAP_MKNOD or a kernel that allows 0/0 whiteouts): {exc}") from exc
        self.unpacked.add(real_parent + (target,))


def _lstat_or_mkdir(dir_fd: int, name: str, create: bool) -> os.stat_result:
    """lstat `name` in `dir_fd`; a missing entry becomes a 0755 directory when `create`."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        if not create:
            raise
    os.mkdir(name, 0o755, dir_fd=dir_fd)
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _ns(mtime: float) -> int:
    return int(round(float(mtime) * 1_000_000_000))


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            out[key[len("SCHILY.xattr."):]] = value.encode("utf-8", "surrogateescape")
    return out


def _extract_one(extractor: _Extractor, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    try:
        extractor.extract_member(archive, member)
    except (OSError, ValueError) as exc:
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)  # the name once, shortened
        raise TarExtractError(f"{shorten(cause)}: cannot extract tar entry {shorten(repr(member.name))} "
                              f"into {extractor.root}") from exc


def extract(stream: BinaryIO, root: Path | str, options: ExtractOptions | None = None) -> ExtractStats:
    """Extract an uncompressed tar stream into `root`, confined to it (see module doc).

    The stream is read sequentially (`r|`); the caller may keep reading it afterwards
    (e.g. to hash the tar's trailing padding).
    """
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    extractor = _Extractor(root_path, (options or ExtractOptions()).resolved())
    try:
        with tarfile.open(fileobj=stream, mode="r|", errorlevel=2) as archive:
            for member in archive:
                _extract_one(extractor, archive, member)
        extractor.finish_dirs()
    except tarfile.TarError as exc:
        raise TarExtractError(f"corrupt layer tar while extracting into {root_path}: {exc}") from exc
    finally:
        extractor.close()
    return extractor.stats
