"""Mount stubs: the files and directories a runtime creates as mount targets.

Before a run, ``MountStubs.record`` notes which mount destinations do not exist in the
root filesystem yet; after it, ``cleanup`` removes the ones that are still empty and
restores the times of the directory they were created in, so a RUN's layer does not gain
``/proc`` or an empty ``/etc/hosts`` (BuildKit's ``executor/stubs.go``).

The RUN's own mounts (``--mount=type=cache|bind|tmpfs|secret``) are different:
``mountpoints`` creates each missing directory level (0755, the container's root, as
runc's ``MkdirAllInRoot`` does) and they stay in the image, as docker build leaves them
(``/p`` for a target ``/p``; ``/run`` and ``/run/secrets`` for a secret). Only an
empty *file* stub (the target of a file mount such as a secret) is removed, as BuildKit
v0.8's ``MountStubsCleaner`` (17b4ca1ed, the one in dockerd 20.10) does: it removes
non-empty-size-zero entries, which a directory never is.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from solver.executor.base import MountSpec
from solver.executor.rootpath import first_missing, resolve_in_root

MOUNTPOINT_MODE = 0o755


@dataclass
class MountStubs:
    rootfs: Path
    stubs: list[Path] = field(default_factory=list)
    parent_times: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def record(self, destinations: Iterable[str]) -> None:
        """Note every missing level of each destination (the runtime creates them all)."""
        for dest in destinations:
            top = first_missing(self.rootfs, dest)
            if top is None:
                continue
            path = resolve_in_root(self.rootfs, dest)
            while True:
                self._add(path)
                if path == top or path.parent == path:
                    break
                path = path.parent
            self._keep_times(top.parent)

    def mountpoints(self, mounts: Iterable[tuple[str, bool]]) -> None:
        """Create the missing directories of the RUN's mounts, given as (destination, the
        source is a directory); they stay. A file mount's missing target is only noted: the
        runtime creates it empty and ``cleanup`` removes it."""
        for dest, is_dir in mounts:
            top = first_missing(self.rootfs, dest)
            if top is None:
                continue
            path = resolve_in_root(self.rootfs, dest)
            self._keep_times(top.parent)
            directory = path if is_dir else path.parent
            if not is_dir:
                self._add(path)
            _make_dirs(self.rootfs, directory)

    def cleanup(self) -> None:
        for stub in sorted(self.stubs, key=lambda p: -len(p.parts)):
            _remove_if_empty(stub)
        for parent, times in self.parent_times.items():
            try:
                os.utime(parent, ns=times, follow_symlinks=False)
            except OSError:
                pass

    def _add(self, path: Path) -> None:
        if path not in self.stubs:
            self.stubs.append(path)

    def _keep_times(self, parent: Path) -> None:
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            return
        self.parent_times.setdefault(parent, (st.st_atime_ns, st.st_mtime_ns))


def mount_targets(mounts: Iterable[MountSpec]) -> list[tuple[str, bool]]:
    """(destination, is a directory mount) of each mount, for ``MountStubs.mountpoints``."""
    return [(m.dest, m.type == "tmpfs" or os.path.isdir(m.source)) for m in mounts]


def _make_dirs(rootfs: Path, directory: Path) -> None:
    """mkdir -p inside the rootfs with 0755 whatever the umask (owner: whoever the
    container's root is on the host, the user running the build)."""
    missing: list[Path] = []
    current = directory
    while current != rootfs and not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        os.mkdir(path)
        os.chmod(path, MOUNTPOINT_MODE)


def _remove_if_empty(path: Path) -> None:
    """Remove ``path`` if it is an empty directory or an empty regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)  # fails when not empty: then it is the user's
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)
    except OSError:
        pass
