"""A RUN's own network namespace with user-space connectivity (slirp4netns) that does not
reach the host's loopback.

As rootless Docker and BuildKit do: a new network namespace, held by a small process
(util-linux ``unshare --net``, waiting on a pipe), and ``slirp4netns --configure
--disable-host-loopback`` attached to it, which gives it ``tap0`` (10.0.2.100/24, gateway
10.0.2.2, DNS 10.0.2.3) and NATs its connections through sockets of the host's
namespace, except to the host's 127.0.0.0/8. The container joins the namespace by path.
Both helpers end when their pipes close, so they also end when this process dies.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field

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
    _log: list[str] = field(default_factory=list)

    def start(self) -> str:
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
        """End slirp4netns (its exit pipe) and the holder (its stdin); wait for both."""
        if self._exit_w >= 0:
            os.close(self._exit_w)
            self._exit_w = -1
        for proc in (self.slirp, self.holder):
            if proc is None:
                continue
            if proc is self.holder and proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        self.slirp = self.holder = None
