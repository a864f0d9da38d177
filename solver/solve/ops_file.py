"""FileOp execution: BuildKit's index rules (``fileops.run_file_actions``) over snapshots.

Each directory the actions need is a snapshot: a new writable layer on the input's
snapshot (overlay: no copy), an empty one for scratch, or one seeded with a copy of an
intermediate result. Inputs are read through read-only views; the local context is
copied only for the paths the copy actions read. Output layers are committed, the
others removed; on a failure every prepared layer is removed.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from solver.errors import BuildError
from solver.llb import pb
from solver.solve.ops_common import LayerWork, OpContext, OutputResult, VertexInfo, layer_result
from solver.solve.ops_refs import open_ref
from solver.solve.result import Ref


@dataclass
class _Layer:
    key: str
    path: Path
    stack: ExitStack


@dataclass
class _LayerPool:
    """Writable snapshots made for one FileOp, committed or removed at the end."""

    ctx: OpContext
    known: dict[Path, Ref] = field(default_factory=dict)
    layers: list[_Layer] = field(default_factory=list)

    def make(self, base: Path | None) -> Path:
        from solver.snapshot.mount import mounted
        from solver.solve.fileops_copy import copy_tree
        ref = self.known.get(Path(base)) if base is not None else None
        parent = ref.snapshot if ref is not None and ref.kind == "snapshot" else None
        key = self.ctx.new_key("active")
        mounts = self.ctx.snapshotter.prepare(key, parent)
        stack = ExitStack()
        try:
            path = stack.enter_context(mounted(mounts, parent_dir=self.ctx.tmp_dir))
        except BaseException:
            stack.close()
            self.ctx.snapshotter.remove(key)
            raise
        self.layers.append(_Layer(key, Path(path), stack))
        if base is not None and parent is None and (ref is None or ref.kind != "scratch"):
            copy_tree(Path(base), Path(path))
        return Path(path)

    def finish(self, outputs: list[Path]) -> list[LayerWork]:
        """Commit the layers mounted at ``outputs`` (in order); remove the others."""
        by_path = {layer.path: layer for layer in self.layers}
        done: list[LayerWork] = []
        for out in outputs:
            layer = by_path[Path(out)]
            layer.stack.close()
            name = self.ctx.new_snapshot_name()
            self.ctx.snapshotter.commit(name, layer.key)
            done.append(LayerWork(layer.key, None, name))
            self.layers.remove(layer)
        self.cleanup()
        return done

    def cleanup(self) -> None:
        for layer in self.layers:
            layer.stack.close()
            try:
                self.ctx.snapshotter.remove(layer.key)
            except Exception:  # noqa: BLE001 - leftovers are removed by `llbook check`
                pass
        self.layers.clear()


def _copy_sources(file_op: pb.FileOp, index: int) -> list[str] | None:
    """The source paths the copy actions read from input ``index`` (None: unknown/all)."""
    sources: list[str] = []
    for fa in file_op.actions:
        reads = fa.secondary_input == index and isinstance(fa.action, pb.FileActionCopy)
        if fa.input == index or _owner_reads(fa, index):
            return None
        if reads:
            sources.append(fa.action.src)
    return sources


def _owner_reads(fa: pb.FileAction, index: int) -> bool:
    owner = getattr(fa.action, "owner", None)
    if owner is None:
        return False
    for part in (owner.user, owner.group):
        user = getattr(part, "user", None)
        if isinstance(user, pb.NamedUserOpt) and user.input == index:
            return True
    return False


_WHOLE_CONTEXT = ("/", ".", "./", "")


def _whole_context_copies(file_op: pb.FileOp, index: int, ref: Ref) -> bool:
    """Only whole-context copies (``COPY . dest``) without their own excludes read this
    local input, and it has only exclude patterns: then the copy itself can apply the
    .dockerignore patterns (same matcher, same root) while reading the context in place."""
    if ref.include_patterns or ref.follow_paths or not ref.exclude_patterns:
        return False
    sources = _copy_sources(file_op, index)
    if not sources:
        return False
    for fa in file_op.actions:
        if fa.secondary_input == index and isinstance(fa.action, pb.FileActionCopy):
            if fa.action.src not in _WHOLE_CONTEXT or fa.action.exclude_patterns or fa.action.include_patterns:
                return False
    return True


def _with_context_excludes(file_op: pb.FileOp, index: int, ref: Ref) -> list[pb.FileAction]:
    actions = []
    for fa in file_op.actions:
        if fa.secondary_input == index and isinstance(fa.action, pb.FileActionCopy):
            fa = dataclasses.replace(fa, action=dataclasses.replace(
                fa.action, exclude_patterns=list(ref.exclude_patterns)))
        actions.append(fa)
    return actions


def _input_dirs(ctx: OpContext, stack: ExitStack, file_op: pb.FileOp, inputs: list[Ref],
                pool: _LayerPool) -> list[Path]:
    from solver.solve.ops_local import readable
    dirs = []
    for i, ref in enumerate(inputs):
        if ref.kind == "local" and _whole_context_copies(file_op, i, ref):
            assert ref.path is not None
            path = Path(ref.path).resolve()
        elif ref.kind == "local":
            path = stack.enter_context(readable(ctx, ref, _copy_sources(file_op, i)))
        else:
            path = stack.enter_context(open_ref(ctx, ref))
        pool.known[Path(path)] = ref
        dirs.append(Path(path))
    return dirs


def execute_file(ctx: OpContext, info: VertexInfo, inputs: list[Ref]) -> list[OutputResult]:
    from solver.solve.fileops import FileOpError, run_file_actions
    file_op: pb.FileOp = info.op.op
    pool = _LayerPool(ctx)
    try:
        with ExitStack() as stack:
            dirs = _input_dirs(ctx, stack, file_op, inputs, pool)
            actions = list(file_op.actions)
            for i, ref in enumerate(inputs):
                if ref.kind == "local" and _whole_context_copies(file_op, i, ref):
                    actions = _with_context_excludes(pb.FileOp(actions=actions), i, ref)
            try:
                local_inputs = frozenset(i for i, ref in enumerate(inputs) if ref.kind == "local")
                result = run_file_actions(actions, dirs, pool.make, root_owned_inputs=local_inputs)
            except FileOpError as error:
                raise BuildError(str(error), vertex=info.digest, name=info.name,
                                 filename=info.filename, line=info.line) from error
            ctx.check_canceled()
            works = pool.finish(result.outputs)
    finally:
        pool.cleanup()
    return [layer_result(ctx, work) for work in works]
