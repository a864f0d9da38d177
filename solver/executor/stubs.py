"""Mount stubs: the empty files and directories a runtime creates as mount targets.

Before a run, ``MountStubs.record`` notes which mount destinations do not exist in the
root filesystem yet; after it, ``cleanup`` removes the ones that are still empty and
restores the times of the directory they were created in, so a RUN's layer does not gain ``/proc`` or an
empty ``/etc/hosts`` (BuildKit's ``executor/stubs.go``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from solver.executor.rootpath import first_missing, resolve_in_root


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
                if path not in self.stubs:
                    self.stubs.append(path)
                if path == top or path.parent == path:
                    break
                path = path.parent
            try:
                st = os.lstat(top.parent)
                self.parent_times.setdefault(top.parent, (st.st_atime_ns, st.st_mtime_ns))
            except FileNotFoundError:
                pass

    def cleanup(self) -> None:
        for stub in sorted(self.stubs, key=lambda p: -len(p.parts)):
            _remove_if_empty(stub)
        for parent, times in self.parent_times.items():
            try:
                os.utime(parent, ns=times, follow_symlinks=False)
            except OSError:
                pass


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
