"""The executor interface: run one process in a root filesystem, sandboxed.

``Executor.run`` takes a mounted, writable root filesystem, a ``ProcessSpec`` (what to
run, as whom, with which network and security mode) and extra ``MountSpec``s, streams
the output to callbacks and returns the exit code. Setting ``cancel`` kills the whole
process tree and makes ``run`` raise ``ExecCancelledError`` once everything is cleaned up.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import LLBookError

NETWORK_SANDBOX = "sandbox"  # a namespace of its own with user-space connectivity
NETWORK_HOST = "host"
NETWORK_NONE = "none"
SECURITY_SANDBOX = "sandbox"
SECURITY_INSECURE = "insecure"

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Output = Callable[[bytes], None]


class ExecutorError(LLBookError):
    """The sandbox could not be set up or torn down."""


class UserNotFoundError(ExecutorError):
    """The process's user or group is not in the root filesystem's /etc/passwd or /etc/group."""


class ExecCancelledError(ExecutorError):
    """The run was cancelled; its processes are gone and its state cleaned up."""


class ExecutorUnavailableError(ExecutorError):
    """No working executor on this machine (or not the one asked for)."""


@dataclass(frozen=True)
class ProcessSpec:
    """What to run. ``user`` is ``name``, ``uid``, ``uid:gid`` or ``name:group``."""

    args: Sequence[str]
    env: Sequence[str] = ()
    cwd: str = "/"
    user: str = ""
    hostname: str = "buildkitsandbox"
    network: str = NETWORK_SANDBOX  # sandbox | host | none
    security: str = SECURITY_SANDBOX  # sandbox | insecure
    valid_exit_codes: Sequence[int] = ()
    extra_hosts: Sequence[tuple[str, str]] = ()  # (host, ip) lines added to /etc/hosts
    ulimits: Sequence[tuple[str, int, int]] = ()  # (name like "nofile", soft, hard)
    # interactive: the process gets this process's own terminal (stdin, stdout, stderr must
    # be a tty) instead of the output callbacks; runc gives it a pty of its own (terminal.py)
    terminal: bool = False

    def __post_init__(self) -> None:
        if not self.args:
            raise ExecutorError("a process needs at least one argument")
        if self.network not in (NETWORK_SANDBOX, NETWORK_HOST, NETWORK_NONE):
            raise ExecutorError(f"unknown network mode {self.network!r}")
        if self.security not in (SECURITY_SANDBOX, SECURITY_INSECURE):
            raise ExecutorError(f"unknown security mode {self.security!r}")

    def exit_ok(self, code: int) -> bool:
        """BuildKit's rule: 0 only, unless valid exit codes were given."""
        return code in self.valid_exit_codes if self.valid_exit_codes else code == 0

    def env_with_defaults(self) -> list[str]:
        """The environment, with a default PATH added when missing (as containerd does)."""
        env = list(self.env)
        if not any(item.startswith("PATH=") for item in env):
            env.insert(0, DEFAULT_PATH)
        return env


@dataclass(frozen=True)
class MountSpec:
    """An extra mount: a bind of a host path, or a tmpfs (``source`` ""), at ``dest``."""

    dest: str
    source: str = ""
    type: str = "bind"  # bind | tmpfs
    readonly: bool = False
    options: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.type not in ("bind", "tmpfs"):
            raise ExecutorError(f"unknown mount type {self.type!r} for {self.dest}")
        if self.type == "bind" and not self.source:
            raise ExecutorError(f"bind mount at {self.dest} needs a source")
        if not self.dest.startswith("/"):
            raise ExecutorError(f"mount destination {self.dest!r} must be absolute")


def _discard(_: bytes) -> None:
    return None


class Executor(abc.ABC):
    """Runs processes in root filesystems."""

    name: str = ""

    @abc.abstractmethod
    def run(self, rootfs: Path, process: ProcessSpec, mounts: Sequence[MountSpec] = (), *,
            stdout: Output = _discard, stderr: Output = _discard,
            cancel: threading.Event | None = None, stdin: bytes | None = None) -> int:
        """Run ``process`` in ``rootfs`` and return its exit code."""
