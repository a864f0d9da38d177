"""Run a process with proot, for machines without namespaces (e.g. mybinder.org).

``proot -0 -r ROOTFS -b /dev -b /proc -b /sys -w CWD ARGS`` with fake root (or
``-i uid:gid`` for another user), the generated /etc/hosts and /etc/resolv.conf bound in,
and exactly the process's environment. proot is not a sandbox: the network is always
the host's (neither the default namespace of its own nor ``network="none"``: the latter is
reported on stderr, not enforced), read-only binds
are writable, there is no hostname or pid isolation and no additional groups. On
cancel the whole process tree is killed (process group plus every descendant found in
/proc).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from solver.executor.base import (
    NETWORK_NONE,
    ExecCancelledError,
    Executor,
    ExecutorUnavailableError,
    MountSpec,
    Output,
    ProcessSpec,
    _discard,
)
from solver.executor.etcfiles import hosts_file, resolv_conf
from solver.executor.proctree import kill_tree
from solver.executor.runc import ensure_cwd
from solver.executor.streams import Pipes
from solver.executor.stubs import MountStubs, mount_targets
from solver.executor.terminal import flush_stdio, require_terminal
from solver.executor.user import ResolvedUser, resolve_user

POLL = 0.05
HOST_BINDS = ("/dev", "/proc", "/sys")


def proot_args(proot: str, rootfs: Path, process: ProcessSpec, user: ResolvedUser,
               binds: Sequence[tuple[str, str]]) -> list[str]:
    """The proot command line."""
    identity = ["-0"] if user.uid == 0 and user.gid == 0 else ["-i", f"{user.uid}:{user.gid}"]
    args = [proot, *identity, "-r", str(rootfs)]
    for host in HOST_BINDS:
        args += ["-b", host]
    for src, dest in binds:
        args += ["-b", f"{src}:{dest}"]
    args += ["-w", process.cwd or "/"]
    return [*args, *process.args]


def with_ulimits(cmd: list[str], process: ProcessSpec) -> list[str]:
    """Wrap ``cmd`` in util-linux ``prlimit`` when the process asks for resource limits."""
    if not process.ulimits:
        return cmd
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise ExecutorUnavailableError("ulimits with the proot executor need prlimit (util-linux)")
    limits = [f"--{name.lower()}={soft}:{hard}" for name, soft, hard in process.ulimits]
    return [prlimit, *limits, *cmd]


def proot_env(process: ProcessSpec, user: ResolvedUser) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.env_with_defaults():
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("HOME", user.home)
    return env


@dataclass
class ProotExecutor(Executor):
    """Unsandboxed RUN through proot's ptrace-based fake chroot."""

    proot: str = "proot"
    name: str = "proot"

    def __post_init__(self) -> None:
        found = shutil.which(self.proot)
        if found is None:
            raise ExecutorUnavailableError(f"{self.proot} is not installed")
        self.proot = found

    def run(self, rootfs: Path, process: ProcessSpec, mounts: Sequence[MountSpec] = (), *,
            stdout: Output = _discard, stderr: Output = _discard,
            cancel: threading.Event | None = None, stdin: bytes | None = None) -> int:
        rootfs = Path(rootfs).resolve()
        user = resolve_user(rootfs, process.user)
        ensure_cwd(rootfs, process.cwd)
        if process.network == NETWORK_NONE:
            stderr(b"llbook: the proot executor cannot isolate the network; "
                   b"--network=none is not enforced\n")
        work = Path(tempfile.mkdtemp(prefix="llbook-proot-"))
        stubs = MountStubs(rootfs)
        try:
            binds = self._binds(work, process, mounts)
            stubs.record([*HOST_BINDS, *(dest for _, dest in binds[:2])])  # + resolv.conf, hosts
            stubs.mountpoints(mount_targets(mounts))
            cmd = with_ulimits(proot_args(self.proot, rootfs, process, user, binds), process)
            return self._run(cmd, proot_env(process, user), stdout, stderr, cancel, stdin,
                             terminal=process.terminal)
        finally:
            try:
                stubs.cleanup()
            finally:
                shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _binds(work: Path, process: ProcessSpec, mounts: Sequence[MountSpec]) -> list[tuple[str, str]]:
        (work / "resolv.conf").write_text(resolv_conf(process.network != NETWORK_NONE))
        (work / "hosts").write_text(hosts_file(process.hostname, process.extra_hosts))
        binds = [(str(work / "resolv.conf"), "/etc/resolv.conf"), (str(work / "hosts"), "/etc/hosts")]
        for i, m in enumerate(mounts):
            source = m.source
            if m.type == "tmpfs":
                source = str(work / f"tmpfs-{i}")
                os.mkdir(source, 0o1777)
            binds.append((source, m.dest))
        return binds

    @staticmethod
    def _run(cmd: list[str], env: dict[str, str], stdout: Output, stderr: Output,
             cancel: threading.Event | None, stdin: bytes | None, terminal: bool = False) -> int:
        if terminal:  # the process reads and writes our terminal itself
            require_terminal()
            flush_stdio()
        proc = subprocess.Popen(cmd, env=env, start_new_session=True,
                                stdin=None if terminal else subprocess.PIPE if stdin is not None
                                else subprocess.DEVNULL, stdout=None if terminal else subprocess.PIPE,
                                stderr=None if terminal else subprocess.PIPE)
        pipes = Pipes.start(proc, stdout, stderr, None if terminal else stdin)
        try:
            while True:
                try:
                    code = proc.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancel is not None and cancel.is_set():
                    kill_tree(proc.pid, proc.pid)
                    proc.wait()
                    raise ExecCancelledError("proot run was cancelled")
        except BaseException:
            if proc.returncode is None:
                kill_tree(proc.pid, proc.pid)
                proc.wait()
            raise
        finally:
            kill_tree(proc.pid, proc.pid, timeout=0.5, root_alive=False)  # leftovers in the group
            pipes.join()
        return code
