"""A RUN's own network namespace with user-space connectivity (slirp4netns) that does not
reach the host's loopback.

As rootless Docker and BuildKit do: a new network namespace, held by a small process
(util-linux ``unshare --net``, waiting on a pipe), and ``slirp4netns --configure
--disable-host-loopback`` attached to it, which gives it ``tap0`` (10.0.2.100/24, gateway
10.0.2.2, DNS 10.0.2.3) and NATs its connections through sockets of the host's
namespace, except to the host's 127.0.0.0/8. The container joins the namespace by path.
Both helpers end when their pipes close, so they also end when this process dies. One
namespace is kept ready ahead (``SPARE``), so that a build's next RUN does not wait for
slirp4netns' start-up; each RUN still gets a namespace of its own.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

from solver.executor.base import ExecutorError, ExecutorUnavailableError

READY_TIMEOUT = 10.0
MTU = 65520  # slirp4netns' recommended MTU


def slirp_available() -> bool:
    return shutil.which("slirp4netns") is not None and shutil.which("unshare") is not None \
        and os.path.exists("/dev/net/tun")


@dataclass
class SandboxNetwork:
    """One namespace for one RUN: ``start()`` returns the path the container joins."""

    holder: subprocess.Popen | None = None
    slirp: subprocess.Popen | None = None
    _exit_w: int = -1

    def start(self) -> str:
        """The path of a ready namespace: the spare one if there is one, else a new one;
        then a new spare is made in the background for the next RUN."""
        spare = SPARE.take()
        if spare is not None:
            self.holder, self.slirp, self._exit_w = spare.holder, spare.slirp, spare._exit_w
            assert self.holder is not None
            path = f"/proc/{self.holder.pid}/ns/net"
        else:
            path = self._launch()
        SPARE.refill()
        return path

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.holder, self.slirp))

    def _launch(self) -> str:
        unshare, slirp = shutil.which("unshare"), shutil.which("slirp4netns")
        if unshare is None or slirp is None:
            raise ExecutorUnavailableError("the RUN network needs slirp4netns and util-linux unshare")
        # the holder blocks reading its stdin, which is ours: it ends with this process
        self.holder = subprocess.Popen([unshare, "--net", "--", "cat"], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       start_new_session=True)
        path = f"/proc/{self.holder.pid}/ns/net"
        self._wait_for_own_namespace(path)
        ready_r, ready_w = os.pipe()
        exit_r, self._exit_w = os.pipe()
        try:
            self.slirp = subprocess.Popen(
                [slirp, "--configure", f"--mtu={MTU}", "--disable-host-loopback",
                 f"--ready-fd={ready_w}", f"--exit-fd={exit_r}", str(self.holder.pid), "tap0"],
                pass_fds=(ready_w, exit_r), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True)
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            self._wait_ready(ready_r)
        finally:
            os.close(ready_r)
        return path

    def _wait_for_own_namespace(self, path: str) -> None:
        """Wait until the holder has left our namespace (unshare has run)."""
        ours = os.stat("/proc/self/ns/net").st_ino
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.holder is not None
            if self.holder.poll() is not None:
                raise ExecutorError(f"unshare --net failed: {self._stderr(self.holder)}")
            try:
                if os.stat(path).st_ino != ours:
                    return
            except OSError:
                pass
            time.sleep(0.002)
        raise ExecutorError("the RUN's network namespace was not created in time")

    def _wait_ready(self, ready_r: int) -> None:
        assert self.slirp is not None
        readable, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
        if not readable or not os.read(ready_r, 1):
            self.slirp.kill()
            self.slirp.wait()
            raise ExecutorError(f"slirp4netns did not configure the RUN network: {self._stderr(self.slirp)}")

    @staticmethod
    def _stderr(proc: subprocess.Popen) -> str:
        if proc.poll() is None or proc.stderr is None:
            return "(still running)"
        return proc.stderr.read().decode(errors="replace").strip()[-500:]

    def close(self) -> None:
        """End slirp4netns and the holder (SIGKILL: neither keeps state); they are reaped
        on a thread, since their exit waits for the kernel to tear the namespace down."""
        if self._exit_w >= 0:
            os.close(self._exit_w)
            self._exit_w = -1
        procs = [p for p in (self.slirp, self.holder) if p is not None]
        self.slirp = self.holder = None
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if procs:
            with _REAPING_LOCK:
                _REAPING.update(p.pid for p in procs)
            threading.Thread(target=_reap, args=(procs,), name="llbook-netns-reap", daemon=True).start()


_REAPING: set[int] = set()
_REAPING_LOCK = threading.Lock()


def _reap(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.wait()
        for pipe in (proc.stdin, proc.stderr):
            if pipe is not None:
                pipe.close()
        with _REAPING_LOCK:
            _REAPING.discard(proc.pid)


def helper_pids() -> set[int]:
    """This process's children that serve RUN networks: the spare's, and the ones still
    being reaped (they end on their own; tests that count children leave them out)."""
    with _REAPING_LOCK:
        pids = set(_REAPING)
    return pids | SPARE.pids()


class _Spare:
    """One namespace made ahead, so that a build's next RUN does not wait for slirp4netns
    to start. Each RUN still gets a namespace nobody used before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: SandboxNetwork | None = None
        self._making: SandboxNetwork | None = None  # the spare being made
        self._owner = 0

    def pids(self) -> set[int]:
        with self._lock:
            items = [i for i in (self._item, self._making) if i is not None]
        return {p.pid for i in items for p in (i.holder, i.slirp) if p is not None}

    def take(self) -> SandboxNetwork | None:
        with self._lock:
            item, self._item = (self._item if self._owner == os.getpid() else None), None
        if item is not None and not item.alive():
            item.close()
            return None
        return item

    def refill(self) -> None:
        with self._lock:
            if self._making is not None or (self._item is not None and self._owner == os.getpid()):
                return
            self._making = SandboxNetwork()
        threading.Thread(target=self._fill, args=(self._making,), name="llbook-netns-spare",
                         daemon=True).start()

    def _fill(self, network: SandboxNetwork) -> None:
        try:
            network._launch()
            ready = True
        except (ExecutorError, OSError):
            ready = False
        with self._lock:
            self._making = None
            keep = ready and self._item is None
            if keep:
                self._item, self._owner = network, os.getpid()
        if not keep:
            network.close()


SPARE = _Spare()
