"""Choosing the executor (and, re-exported, the snapshotter) that works on this machine.

``choose_executor``: ``LLBOOK_EXECUTOR`` or the ``preference`` (runc | crun | proot | auto);
auto takes runc, then crun, when we are root or user namespaces exist and a probe
container really runs, else proot. Probe results are cached per process.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

from solver.executor.base import (
    Executor,
    ExecutorError,
    ExecutorUnavailableError,
    MountSpec,
    ProcessSpec,
)
from solver.executor.proot import ProotExecutor
from solver.executor.runc import RuncExecutor
from solver.snapshot.probe import choose_snapshotter

__all__ = ["choose_executor", "choose_snapshotter", "probe_proot", "probe_runtime",
           "user_namespaces_available"]

RUNTIMES = ("runc", "crun")
HOST_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr")


def user_namespaces_available() -> bool:
    """True when an unprivileged user could create a user namespace."""
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return False
    except (OSError, ValueError):
        return False
    try:
        return Path("/proc/sys/kernel/unprivileged_userns_clone").read_text().strip() != "0"
    except OSError:
        return True


def _probe_rootfs(base: Path) -> tuple[Path, list[MountSpec]]:
    """An empty rootfs with the host's program directories bound in read-only."""
    rootfs = base / "rootfs"
    rootfs.mkdir()
    mounts = []
    for host_dir in HOST_DIRS:
        if os.path.islink(host_dir):
            os.symlink(os.readlink(host_dir), rootfs / host_dir.lstrip("/"))
        elif os.path.isdir(host_dir):
            mounts.append(MountSpec(host_dir, host_dir, readonly=True))
    return rootfs, mounts


def _probe(executor: Executor) -> bool:
    base = Path(tempfile.mkdtemp(prefix="llbook-probe-"))
    try:
        rootfs, mounts = _probe_rootfs(base)
        out = bytearray()
        code = executor.run(rootfs, ProcessSpec(["/bin/sh", "-c", "echo ok"], network="none"), mounts,
                            stdout=out.extend)
        return code == 0 and out.strip() == b"ok"
    except (ExecutorError, OSError):
        return False
    finally:
        shutil.rmtree(base, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def probe_runtime(runtime: str) -> bool:
    """Does a container really run with this OCI runtime here?"""
    if shutil.which(runtime) is None:
        return False
    if os.geteuid() != 0 and not user_namespaces_available():
        return False
    try:
        return _probe(RuncExecutor(runtime=runtime))
    except ExecutorError:
        return False


@functools.lru_cache(maxsize=None)
def probe_proot() -> bool:
    if shutil.which("proot") is None:
        return False
    return _probe(ProotExecutor())


def choose_executor(preference: str | None = None) -> Executor:
    """The executor to use, from ``preference`` or ``LLBOOK_EXECUTOR`` (default auto)."""
    wanted = (preference if preference is not None
              else os.environ.get("LLBOOK_EXECUTOR", "")).strip().lower() or "auto"
    if wanted in RUNTIMES:
        if not probe_runtime(wanted):
            raise ExecutorUnavailableError(f"{wanted} cannot run containers on this machine")
        return RuncExecutor(runtime=wanted)
    if wanted == "proot":
        if not probe_proot():
            raise ExecutorUnavailableError("proot is not installed or does not work here")
        return ProotExecutor()
    if wanted != "auto":
        raise ExecutorError(f"unknown executor {wanted!r}; use runc, crun, proot or auto")
    for runtime in RUNTIMES:
        if probe_runtime(runtime):
            return RuncExecutor(runtime=runtime)
    if probe_proot():
        return ProotExecutor()
    raise ExecutorUnavailableError("no OCI runtime can run containers here and proot is missing")
