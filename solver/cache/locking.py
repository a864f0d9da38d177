"""Cross-process locks on files in ``<cache>/locks/`` with ``fcntl.flock``.

- ``Locks.key(cache_key)``: exclusive while a process builds that vertex. A second
  process building the same vertex waits here, then finds the record the first one
  stored and skips the work.
- ``Locks.cache_mount(id, sharing)``: the three sharing modes of
  ``RUN --mount=type=cache`` (BuildKit's ``CacheSharingOpt``):
  SHARED takes a shared lock (many writers at once, while prune's exclusive lock waits),
  LOCKED takes an exclusive lock and waits for it, PRIVATE takes the first free
  instance ``id``, ``id#1``, ``id#2``... without waiting (each instance is its own
  directory).

flock locks belong to an open file description, so two ``FileLock`` objects on the same
name conflict even inside one process (and across threads). The kernel drops the lock
when the process dies, so a ``kill -9`` never leaves a stale lock. Lock files may be
unlinked by their holder (``release(unlink=True)``); acquirers check after locking that
the file they hold is still the one at the path, and retry if not.

This module also owns process identity (pid + start time) used by leases, so a
recycled pid is not mistaken for a live owner.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import TracebackType

from solver.errors import LLBookError

_SAFE_RE = re.compile(r"[^A-Za-z0-9_.-]")
_POLL_MIN = 0.005
_POLL_MAX = 0.1


class LockError(LLBookError):
    """Base class of locking errors."""


class LockTimeout(LockError, TimeoutError):
    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        super().__init__(f"timed out after {timeout:.1f}s waiting for lock {path}")


class CacheSharing(IntEnum):
    """BuildKit's ``pb.CacheSharingOpt`` values."""

    SHARED = 0
    PRIVATE = 1
    LOCKED = 2


class FileLock:
    """One flock on one file. Re-entrant use of the same object is an error."""

    def __init__(self, path: Path | str, shared: bool = False) -> None:
        self.path = Path(path)
        self.shared = shared
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock. Non-blocking or timed-out attempts return False / raise LockTimeout."""
        if self._fd is not None:
            raise LockError(f"lock {self.path} is already held by this object")
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _POLL_MIN
        while True:
            fd = self._open()
            if self._try_flock(fd, blocking and deadline is None):
                if self._still_linked(fd):
                    self._fd = fd
                    return True
                os.close(fd)  # holder unlinked it meanwhile: lock the new file
                continue
            os.close(fd)
            if not blocking:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(self.path, timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _try_flock(self, fd: int, wait: bool) -> bool:
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        if not wait:
            mode |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, mode)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            os.close(fd)
            raise
        return True

    def _still_linked(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def release(self, unlink: bool = False) -> None:
        """Drop the lock. ``unlink=True`` (exclusive holders only) also removes the file."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if unlink and not self.shared:
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
        finally:
            os.close(fd)  # closing the last fd drops the flock

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


@dataclass
class CacheMountLock:
    """A held cache-mount lock: which instance of the id it is, and the lock itself."""

    id: str
    sharing: CacheSharing
    instance: int
    lock: FileLock

    @property
    def instance_name(self) -> str:
        """Key of the directory to use: ``id`` for instance 0, else ``id#<n>``."""
        return self.id if self.instance == 0 else f"{self.id}#{self.instance}"

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> "CacheMountLock":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def lock_file_name(kind: str, name: str) -> str:
    """A safe, bounded file name for a lock of ``kind`` named ``name``."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    readable = _SAFE_RE.sub("_", name)[-40:]
    return f"{kind}-{digest}-{readable}.lock"


class Locks:
    """Factory of the locks of one cache directory."""

    def __init__(self, locks_dir: Path | str) -> None:
        self.dir = Path(locks_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def named(self, name: str, shared: bool = False) -> FileLock:
        return FileLock(self.dir / lock_file_name("named", name), shared=shared)

    def key(self, cache_key: str) -> FileLock:
        """Exclusive lock held while building the vertex with this cache key."""
        return FileLock(self.dir / lock_file_name("key", cache_key))

    def gc(self, shared: bool = False) -> FileLock:
        """Exclusive for prune/check; shared for operations that must not overlap them."""
        return FileLock(self.dir / "gc.lock", shared=shared)

    def mount_lock(self, instance_name: str, shared: bool) -> FileLock:
        return FileLock(self.dir / lock_file_name("mount", instance_name), shared=shared)

    def cache_mount(self, mount_id: str, sharing: CacheSharing | int,
                    timeout: float | None = None, max_private: int = 1024) -> CacheMountLock:
        """Acquire a cache mount with BuildKit's sharing semantics."""
        sharing = CacheSharing(sharing)
        if sharing is CacheSharing.PRIVATE:
            return self._private_mount(mount_id, max_private)
        lock = self.mount_lock(mount_id, shared=sharing is CacheSharing.SHARED)
        lock.acquire(timeout=timeout)
        return CacheMountLock(mount_id, sharing, 0, lock)

    def _private_mount(self, mount_id: str, max_private: int) -> CacheMountLock:
        for instance in range(max_private):
            name = mount_id if instance == 0 else f"{mount_id}#{instance}"
            lock = self.mount_lock(name, shared=False)
            if lock.acquire(blocking=False):
                return CacheMountLock(mount_id, CacheSharing.PRIVATE, instance, lock)
        raise LockError(f"cache mount {mount_id!r}: more than {max_private} private instances busy")

    def cache_mount_in_use(self, instance_name: str) -> bool:
        """True when any process holds the mount (shared or exclusive)."""
        probe = self.mount_lock(instance_name, shared=False)
        if probe.acquire(blocking=False):
            probe.release()
            return False
        return True


# --- process identity ------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessId:
    """A process, robust against pid reuse: pid plus its start time (clock ticks since boot)."""

    pid: int
    start: str

    @classmethod
    def current(cls) -> "ProcessId":
        pid = os.getpid()
        return cls(pid, process_start_time(pid) or "")

    def alive(self) -> bool:
        return pid_alive(self.pid, self.start)


def process_start_time(pid: int) -> str | None:
    """Start time of ``pid`` from /proc (None where /proc is unavailable or pid is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2:].split()
    # fields[0] is field 3 (state); starttime is field 22
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start: str = "") -> bool:
    """True when ``pid`` runs and (if known) started at ``start``. Zombies count as dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    state = _process_state(pid)
    if state == "Z":
        return False
    if start:
        current = process_start_time(pid)
        if current is not None and current != start:
            return False
    return True


def _process_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:]
    return rest[:1] or None
