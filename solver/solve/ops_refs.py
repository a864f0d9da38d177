"""Opens a solved ref's filesystem as a read-only directory (snapshot view, context copy or empty scratch)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from solver.snapshot.mount import mounted
from solver.solve.ops_common import OpContext
from solver.solve.ops_local import materialised
from solver.solve.result import Ref


@contextmanager
def open_ref(ctx: OpContext, ref: Ref) -> Iterator[Path]:
    """A read-only directory with the ref's filesystem, for the ``with`` block."""
    if ref.kind == "local":
        with materialised(ctx, ref, None) as path:
            yield path
        return
    if ref.kind == "scratch" or ref.snapshot is None:
        empty = Path(tempfile.mkdtemp(prefix="scratch-", dir=ctx.tmp_dir))
        try:
            yield empty
        finally:
            shutil.rmtree(empty, ignore_errors=True)
        return
    key = ctx.new_key("view")
    mounts = ctx.snapshotter.view(key, ref.snapshot)
    try:
        with mounted(mounts, parent_dir=ctx.tmp_dir) as path:
            yield path
    finally:
        ctx.snapshotter.remove(key)
