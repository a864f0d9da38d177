"""What every op executor gets: the solve's services, and helpers over result refs.

``OpContext`` bundles the cache store, snapshotter, executor, progress emitter, cancel
event, secrets, ssh agent sockets and context directories of one solve. ``OutputResult`` is what an op
returns per output. The helpers open a ref read-only as a directory for the length of
a ``with`` block and create fresh snapshot names.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.cache.leases import Lease
from solver.cache.store import CacheStore
from solver.llb import pb
from solver.solve.progress import ProgressEvent
from solver.solve.result import Ref
from solver.solve.scheduler import Canceled


def private_tmp_base() -> str:
    """A tmpfs we can write to when there is one (secrets, agent sockets), so they never touch a
    disk; the paths are short, as a unix socket's must be."""
    for candidate in ("/dev/shm", "/run"):
        if os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


def mount_parent(tmp: Path, pid: int) -> Path:
    return tmp / f"mnt-{pid}"


@dataclass(frozen=True)
class OutputResult:
    """One output of an executed op, ready to be recorded."""

    ref: Ref
    size: int = 0
    parents: tuple[str, ...] = ()  # snapshots the result's snapshot needs
    blobs: tuple[str, ...] = ()  # content-store digests the result references
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class VertexInfo:
    """The vertex being executed, as op executors see it."""

    digest: str
    name: str
    op: pb.Op
    metadata: pb.OpMetadata | None
    filename: str | None = None
    line: int | None = None


@dataclass
class OpContext:
    store: CacheStore
    snapshotter: Any  # solver.snapshot.base.Snapshotter
    executor_factory: Callable[[], Any]  # lazily probed executor
    emit: Callable[[ProgressEvent], None]
    cancel: threading.Event
    lease: Lease
    context_dirs: dict[str, Path] = field(default_factory=dict)
    secrets: dict[str, Path] = field(default_factory=dict)
    ssh: dict[str, Path] = field(default_factory=dict)  # --ssh id -> the client's agent socket
    registry_config: Any = None
    platform: pb.Platform | None = None
    memo: Any = None  # contenthash StatMemo shared by the solve
    # local ref -> ops_local.ContextMemo, kept by the Solver across solves (a notebook kernel)
    context_memo: dict[Ref, Any] | None = None
    image_source_factory: Callable[[], Any] | None = None  # the solver's shared ImageSource
    resolved: dict[tuple[str, str], Any] = field(default_factory=dict)  # per-solve resolutions
    locals: dict[Ref, Any] = field(default_factory=dict)  # local ref -> ops_local.ContextMemo
    local_lock: threading.Lock = field(default_factory=threading.Lock)

    def check_canceled(self) -> None:
        if self.cancel.is_set():
            raise Canceled("build canceled")

    @property
    def tmp_dir(self) -> Path:
        """Where this process mounts things: ``tmp/mnt-<pid>`` (see ``leftovers.py``)."""
        path = mount_parent(self.store.paths.tmp, os.getpid())
        path.mkdir(parents=True, exist_ok=True)
        return path

    def new_snapshot_name(self) -> str:
        name = "s-" + os.urandom(16).hex()
        self.lease.add_snapshot(name)
        return name

    @staticmethod
    def new_key(kind: str) -> str:
        """An active snapshot or view key that names its owner: ``<kind>-<pid>-<random>``."""
        return f"{kind}-{os.getpid()}-{os.urandom(16).hex()}"

    def snapshot_chain(self, name: str) -> tuple[str, ...]:
        """Every snapshot below ``name`` (its ancestors), nearest first, without duplicates."""
        seen: dict[str, None] = {}
        stack = list(reversed(self.snapshotter.parents(name)))
        while stack:
            parent = stack.pop()
            if parent in seen:
                continue
            seen[parent] = None
            stack.extend(reversed(self.snapshotter.parents(parent)))
        return tuple(seen)


def snapshot_parents(ctx: OpContext, ref: Ref) -> tuple[str, ...]:
    """The snapshot of ``ref`` and all its ancestors (what a child snapshot needs)."""
    if ref.kind != "snapshot" or ref.snapshot is None:
        return ()
    return (ref.snapshot,) + ctx.snapshot_chain(ref.snapshot)


@dataclass
class LayerWork:
    """An active snapshot being written: mounted at ``path``; ``name`` once committed."""

    key: str
    path: Path | None = None
    name: str | None = None


@contextmanager
def new_layer(ctx: OpContext, parents: list[str]) -> Iterator[LayerWork]:
    """Prepare a writable snapshot on ``parents`` (merged when several), mount it, and
    commit it when the block ends normally; on an exception unmount and remove it."""
    from solver.snapshot.mount import mounted
    key = ctx.new_key("active")
    if len(parents) > 1:
        mounts = ctx.snapshotter.prepare_merged(key, parents)
    else:
        mounts = ctx.snapshotter.prepare(key, parents[0] if parents else None)
    work = LayerWork(key)
    try:
        with mounted(mounts, parent_dir=ctx.tmp_dir) as path:
            work.path = path
            yield work
        ctx.check_canceled()
        name = ctx.new_snapshot_name()
        ctx.snapshotter.commit(name, key)
        work.name = name
    except BaseException:
        _remove_quietly(ctx, key)
        raise


def _remove_quietly(ctx: OpContext, key: str) -> None:
    try:
        ctx.snapshotter.remove(key)
    except Exception:  # noqa: BLE001 - the original error matters more; check cleans up
        pass


def layer_result(ctx: OpContext, work: LayerWork) -> OutputResult:
    """The OutputResult of a committed layer: its ref, size and the snapshots below it."""
    assert work.name is not None
    ref = Ref.of_snapshot(work.name)
    try:
        size = ctx.snapshotter.usage(work.name)
    except Exception:  # noqa: BLE001 - size is informative only
        size = 0
    return OutputResult(ref, size, snapshot_parents(ctx, ref)[1:])
