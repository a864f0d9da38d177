"""Run a process with runc (or a runc-compatible runtime) from a generated bundle.

Each run gets a bundle directory with config.json (``ocispec.build_spec``) and the
generated resolv.conf and hosts files, and a fresh container id. ``runc run`` runs in
the foreground with the process's stdout and stderr streamed to the callbacks. On
cancel, or on any exception in the caller's thread (KeyboardInterrupt included), the
container's processes are killed (``runc kill --all ... KILL``), the container is
deleted (``runc delete -f``), and the bundle and mount stubs are removed: nothing is
left behind. Should this process die without that cleanup (kill -9), the watcher of
``reaper.py`` ends the container and removes the bundle; container ids and bundle names
carry this process's pid, so ``llbook check`` can end what a killed watcher left.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solver.executor.base import (
    NETWORK_HOST,
    NETWORK_SANDBOX,
    ExecCancelledError,
    Executor,
    ExecutorError,
    ExecutorUnavailableError,
    MountSpec,
    Output,
    ProcessSpec,
    _discard,
)
from solver.executor.etcfiles import hosts_file, resolv_conf
from solver.executor.netns import SandboxNetwork, slirp_available
from solver.executor.ocispec import SpecInputs, build_spec, current_capabilities, rootless_mappings
from solver.executor.proctree import descendants, identity, wait_gone
from solver.executor.reaper import REAPER, Watched, bundle_prefix, container_id_for
from solver.executor.rootpath import resolve_in_root
from solver.executor.seccomp import load_profile
from solver.executor.streams import Pipes
from solver.executor.stubs import MountStubs, mount_targets
from solver.executor.terminal import flush_stdio, forward_resizes, require_terminal, saved_modes
from solver.executor.user import ResolvedUser, resolve_user

KILL_TIMEOUT = 2.0
RUNC_TIMEOUT = 10.0  # for runc's own housekeeping commands on a loaded machine
POLL = 0.05
RUNC_DEFAULT_MOUNTS = ("/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hosts")


class _ExitWatch:
    """Waits for a child's exit and wakes at once when it exits (a pidfd where the kernel
    has them), instead of sleeping in steps as ``Popen.wait(timeout)`` does."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.pidfd: int | None = None
        try:
            self.pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None when the child still runs after ``timeout`` seconds."""
        if self.pidfd is None:
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        select.select([self.pidfd], [], [], timeout)
        return self.proc.poll()

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def default_state_root() -> Path:
    if os.geteuid() == 0:
        return Path("/run/llbook/runc")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/llbook-{os.geteuid()}"
    return Path(runtime_dir) / "llbook" / "runc"


def runtime_commands(state_root: Path | None = None) -> list[list[str]]:
    """The command prefix of each installed runtime over the default state root (for
    housekeeping such as ending the containers of dead builds)."""
    root = str(state_root or default_state_root())
    rootless = ["--rootless=true"] if os.geteuid() != 0 else []
    return [[found, "--root", root, *rootless]
            for found in (shutil.which(name) for name in ("runc", "crun")) if found]


def ensure_cwd(rootfs: Path, cwd: str) -> None:
    """Create the working directory in the rootfs if missing, as BuildKit does."""
    target = resolve_in_root(rootfs, cwd or "/")
    if not target.exists():
        target.mkdir(mode=0o755, parents=True)


@dataclass
class RuncExecutor(Executor):
    """Sandboxed RUN through runc; ``rootless`` adds a user namespace with id mappings."""

    runtime: str = "runc"
    state_root: Path = field(default_factory=default_state_root)
    rootless: bool = field(default_factory=lambda: os.geteuid() != 0)
    bundle_parent: Path | None = None
    seccomp: bool = True  # Docker's default seccomp profile (seccomp.py) in sandbox mode
    name: str = "runc"

    def __post_init__(self) -> None:
        found = shutil.which(self.runtime)
        if found is None:
            raise ExecutorUnavailableError(f"{self.runtime} is not installed")
        self.runtime = found
        self.state_root = Path(self.state_root)
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- public ---------------------------------------------------------------------------
    def run(self, rootfs: Path, process: ProcessSpec, mounts: Sequence[MountSpec] = (), *,
            stdout: Output = _discard, stderr: Output = _discard,
            cancel: threading.Event | None = None, stdin: bytes | None = None) -> int:
        rootfs = Path(rootfs).resolve()
        user = resolve_user(rootfs, process.user)
        ensure_cwd(rootfs, process.cwd)
        container_id = container_id_for(os.getpid())
        bundle = Path(tempfile.mkdtemp(prefix=bundle_prefix(os.getpid()), dir=self.bundle_parent))
        stubs = MountStubs(rootfs)
        network = SandboxNetwork()
        try:
            netns = self._sandbox_network(network, process, stderr)
            self._write_bundle(bundle, rootfs, process, mounts, user, container_id, netns)
            stubs.record(RUNC_DEFAULT_MOUNTS)
            stubs.mountpoints(mount_targets(mounts))
            return self._run_container(container_id, bundle, stdout, stderr, cancel, stdin,
                                       terminal=process.terminal)
        finally:
            try:
                stubs.cleanup()
            finally:
                shutil.rmtree(bundle, ignore_errors=True)
                if not self._state_exists(container_id):  # else the watcher ends it when we exit
                    REAPER.done(container_id)
                network.close()

    def _sandbox_network(self, network: SandboxNetwork, process: ProcessSpec, stderr: Output) -> str:
        """The namespace path a sandbox-network RUN joins; "" (the host's network, said on
        the RUN's stderr) where slirp4netns is missing or runc is rootless."""
        if process.network != NETWORK_SANDBOX:
            return ""
        if self.rootless or not slirp_available():
            why = "rootless runc" if self.rootless else "slirp4netns is not installed"
            stderr(f"llbook: this RUN shares the host's network ({why})\n".encode())
            return ""
        return network.start()

    def list_containers(self) -> list[str]:
        """Ids of the containers runc knows under our state root."""
        proc = subprocess.run(self._runc("list", "--format", "json"), capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExecutorError(f"runc list: {proc.stderr.strip()}")
        return [c["id"] for c in json.loads(proc.stdout or "null") or []]

    # -- bundle ---------------------------------------------------------------------------
    def _write_bundle(self, bundle: Path, rootfs: Path, process: ProcessSpec,
                      mounts: Sequence[MountSpec], user: ResolvedUser, container_id: str,
                      netns: str = "") -> None:
        resolv = bundle / "resolv.conf"
        hosts = bundle / "hosts"
        resolv.write_text(resolv_conf(process.network == NETWORK_HOST or
                                      (process.network == NETWORK_SANDBOX and not netns)))
        hosts.write_text(hosts_file(process.hostname, process.extra_hosts))
        for path in (resolv, hosts):
            os.chmod(path, 0o644)
        os.chmod(bundle, 0o755)
        uid_maps, gid_maps = rootless_mappings(os.geteuid(), os.getegid())
        inputs = SpecInputs(
            rootfs=rootfs, resolv_conf=resolv, hosts=hosts, user=user, mounts=mounts,
            cgroups_path="" if self.rootless else f"/llbook/{container_id}",
            rootless=self.rootless,
            uid_mappings=uid_maps if self.rootless else (),
            gid_mappings=gid_maps if self.rootless else (),
            held_capabilities=current_capabilities(),
            seccomp_profile=load_profile()[1] if self.seccomp else None,
            netns_path=netns,
        )
        spec = build_spec(process, inputs)
        (bundle / "config.json").write_text(json.dumps(spec, indent=2))

    # -- running --------------------------------------------------------------------------
    def _runc(self, *args: str) -> list[str]:
        base = [self.runtime, "--root", str(self.state_root)]
        if self.rootless:
            base.append("--rootless=true")
        return [*base, *args]

    def _run_container(self, container_id: str, bundle: Path, stdout: Output, stderr: Output,
                       cancel: threading.Event | None, stdin: bytes | None, terminal: bool = False) -> int:
        cmd = self._runc("run", "--bundle", str(bundle), "--no-new-keyring", container_id)
        cmd[1:1] = ["--log", str(bundle / "runc.log")]  # runc's warnings stay out of the RUN's log
        if terminal:  # runc relays between our terminal (its stdio) and the container's pty
            require_terminal()
            flush_stdio()
        proc = subprocess.Popen(cmd, stdin=None if terminal else subprocess.PIPE if stdin is not None
                                else subprocess.DEVNULL, stdout=None if terminal else subprocess.PIPE,
                                stderr=None if terminal else subprocess.PIPE,
                                start_new_session=True, cwd=bundle)
        cancelled = False
        killed: list[tuple[int, int]] = []
        restore: list[Callable[[], object]] = []
        pipes = Pipes()
        exited = _ExitWatch(proc)
        try:  # from here on, an interrupt (SIGINT, SIGHUP, SIGTERM) kills the container
            started = identity(proc.pid)
            REAPER.started(Watched(container_id, self._runc(), str(bundle), proc.pid,
                                   started[1] if started is not None else 0))
            pipes = Pipes.start(proc, stdout, stderr, None if terminal else stdin)
            if terminal:
                restore += [saved_modes(), forward_resizes(proc.pid)]
            while True:
                code = exited.wait(POLL)
                if code is not None:
                    break
                if cancel is not None and cancel.is_set():
                    killed = self._kill(container_id, proc)
                    cancelled = True
                    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
                    break
        except BaseException:
            killed = self._kill(container_id, proc)
            raise
        finally:
            exited.close()
            for undo in restore:
                undo()
            # `runc run` deletes its container when it exits by itself; only a container
            # whose state is still there (runc killed, cancel, error) needs `runc delete`.
            if killed or cancelled or proc.returncode is None or self._state_exists(container_id):
                self._delete(container_id)
            if killed and not wait_gone(killed, KILL_TIMEOUT):
                raise ExecutorError(f"processes of container {container_id} survived SIGKILL")
            pipes.join()
        if cancelled:
            raise ExecCancelledError(f"run of container {container_id} was cancelled")
        return code

    def _runc_quiet(self, *args: str, timeout: float = RUNC_TIMEOUT) -> subprocess.CompletedProcess | None:
        """Run a runc housekeeping command; None when it did not finish in time."""
        try:
            return subprocess.run(self._runc(*args), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _container_processes(self, container_id: str) -> list[tuple[int, int]]:
        """Identities of the container's processes: runc's list (its cgroup), plus the
        init process and its descendants (rootless runs may have no cgroup)."""
        pids: set[int] = set()
        ps = self._runc_quiet("ps", "--format", "json", container_id)
        if ps is not None and ps.returncode == 0:
            pids.update(json.loads(ps.stdout or "null") or [])
        state = self._runc_quiet("state", container_id)
        if state is not None and state.returncode == 0:
            init = int(json.loads(state.stdout).get("pid") or 0)
            if init > 0:
                pids.update([init, *descendants(init)])
        return [i for i in (identity(pid) for pid in sorted(pids)) if i is not None]

    def _kill(self, container_id: str, proc: subprocess.Popen) -> list[tuple[int, int]]:
        """Kill every process of the container, then runc itself if it lingers; return
        the processes that were in the container."""
        members = self._container_processes(container_id)
        deadline = time.monotonic() + KILL_TIMEOUT
        for args in (("kill", "--all", container_id, "KILL"), ("kill", container_id, "KILL")):
            result = self._runc_quiet(*args)
            if result is not None and result.returncode == 0:
                break
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        return members

    def _state_exists(self, container_id: str) -> bool:
        return (self.state_root / container_id).exists()

    def _delete(self, container_id: str) -> None:
        """``runc delete --force``, once more when the state is still there (a timeout on a
        loaded machine)."""
        for _ in range(2):
            self._runc_quiet("delete", "--force", container_id)
            if not self._state_exists(container_id):
                return
