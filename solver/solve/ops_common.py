"""What every op executor gets: the solve's services, and helpers over result refs.

``OpContext`` bundles the cache store, snapshotter, executor, progress emitter, cancel
event, secrets and context directories of one solve. ``OutputResult`` is what an op
returns per output. The helpers open a ref read-only as a directory for the length of
a ``with`` block and create fresh snapshot names.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.cache.store import CacheStore, Lease
from solver.llb import pb
from solver.solve.progress import ProgressEvent
from solver.solve.result import Ref
from solver.solve.scheduler import Canceled


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
    registry_config: Any = None
    platform: pb.Platform | None = None
    memo: Any = None  # contenthash StatMemo shared by the solve

    def check_canceled(self) -> None:
        if self.cancel.is_set():
            raise Canceled("build canceled")

    @property
    def tmp_dir(self) -> Path:
        path = self.store.paths.tmp
        path.mkdir(parents=True, exist_ok=True)
        return path

    def new_snapshot_name(self) -> str:
        name = "s-" + uuid.uuid4().hex
        self.lease.add_snapshot(name)
        return name

    @staticmethod
    def new_key(kind: str) -> str:
        return f"{kind}-{uuid.uuid4().hex}"

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

    @contextmanager
    def open_ref(self, ref: Ref) -> Iterator[Path]:
        """A read-only directory with the ref's filesystem, for the ``with`` block."""
        if ref.kind == "local":
            assert ref.path is not None
            yield ref.path
            return
        if ref.kind == "scratch" or ref.snapshot is None:
            empty = Path(tempfile.mkdtemp(prefix="scratch-", dir=self.tmp_dir))
            try:
                yield empty
            finally:
                shutil.rmtree(empty, ignore_errors=True)
            return
        from solver.snapshot.mount import mounted
        key = self.new_key("view")
        mounts = self.snapshotter.view(key, ref.snapshot)
        try:
            with mounted(mounts, parent_dir=self.tmp_dir) as path:
                yield path
        finally:
            self.snapshotter.remove(key)


def snapshot_parents(ctx: OpContext, ref: Ref) -> tuple[str, ...]:
    """The snapshot of ``ref`` and all its ancestors (what a child snapshot needs)."""
    if ref.kind != "snapshot" or ref.snapshot is None:
        return ()
    return (ref.snapshot,) + ctx.snapshot_chain(ref.snapshot)
