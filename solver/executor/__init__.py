"""Sandboxed RUN behind one interface: runc (root or rootless) and proot.

- ``base``: ``Executor.run(rootfs, ProcessSpec, [MountSpec], stdout=, stderr=, cancel=,
  stdin=) -> exit code``, ``ProcessSpec``, ``MountSpec`` and the errors
  (``UserNotFoundError``, ``ExecCancelledError``, ``ExecutorUnavailableError``).
- ``runc``: ``RuncExecutor``; ``ocispec``: the config.json; ``seccomp``: Docker's default
  seccomp profile, converted; ``proot``: ``ProotExecutor``.
- ``user``: user/group resolution; ``etcfiles``: hosts and resolv.conf; ``stubs``: mount
  stub cleanup; ``rootpath``: confined path resolution; ``proctree``, ``streams``.
- ``probe``: ``choose_executor(preference)``, ``choose_snapshotter(root)``.

Sandbox mode applies Docker's default seccomp profile (an allowlist: other calls fail
with EPERM), as BuildKit does; insecure mode runs unconfined. No AppArmor profile.
"""

from solver.executor.base import (
    ExecCancelledError,
    Executor,
    ExecutorError,
    ExecutorUnavailableError,
    MountSpec,
    ProcessSpec,
    UserNotFoundError,
)
from solver.executor.probe import choose_executor, choose_snapshotter
from solver.executor.proot import ProotExecutor
from solver.executor.runc import RuncExecutor

__all__ = [
    "ExecCancelledError", "Executor", "ExecutorError", "ExecutorUnavailableError", "MountSpec",
    "ProcessSpec", "ProotExecutor", "RuncExecutor", "UserNotFoundError", "choose_executor",
    "choose_snapshotter",
]
