"""A shell in the state of one step: solve the step (or its inputs), mount them as its RUN
would, and run an interactive process on throwaway snapshots, so nothing enters the cache.

``open_shell(solver, definition, ShellRequest(vertex, before=...))``:

- after a RUN (``before=False``): the RUN's own mounts (cache, secret, tmpfs, binds of other
  inputs), process settings (env, cwd, user, network, security mode, hostname), with its
  root output as the root filesystem;
- before a RUN (``before=True``, what ``--on-error=shell`` opens): the same mounts on the
  RUN's inputs, and the RUN's command in the shell's history (``$HISTFILE``);
- after another step (FROM, COPY, WORKDIR...): its result, with the env, workdir and user the
  caller read from the image config in force there.

Every writable mount is a snapshot that is removed afterwards (``keep_outputs=False``),
nothing is indexed. Cache mounts are the shared directories a RUN gets, as in BuildKit.
"""

from __future__ import annotations

import os
import shlex
import tempfile
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from solver.errors import LLBookError
from solver.llb import pb
from solver.llb.definition import Edge, Graph, load
from solver.solve.ops_common import OpContext, VertexInfo
from solver.solve.progress import ProgressEvent
from solver.solve.result import Ref

HISTORY_PATH = "/run/llbook/history"
DEFAULT_SHELL = ("/bin/sh",)


@dataclass(frozen=True)
class ShellRequest:
    """Which state the shell opens in, and what it runs."""

    vertex: str  # digest of the step's vertex
    before: bool = False  # the state before the vertex (a RUN's inputs) instead of after it
    shell: tuple[str, ...] = DEFAULT_SHELL
    env: tuple[str, ...] = ()  # for a step that is not a RUN: the image config in force there
    cwd: str = "/"
    user: str = ""
    history: tuple[str, ...] = ()  # commands in the shell's history (a RUN's own is added)


def command_text(args: Sequence[str]) -> str:
    """A RUN's command as a user types it: the script of ``sh -c SCRIPT``, else the words."""
    if len(args) >= 3 and args[1] == "-c":
        return args[2]
    return shlex.join(args)


def edge_definition(definition: pb.Definition, graph: Graph, edge: Edge) -> pb.Definition:
    """``definition`` with ``edge`` as its result (a new terminal op)."""
    original = {canonical: raw for raw, canonical in graph.renamed.items()}.get(edge.digest, edge.digest)
    terminal = pb.Op(inputs=[pb.Input(digest=original, index=edge.index)])
    return pb.Definition(def_=[*definition.def_[:-1], terminal.to_bytes()],
                         metadata=definition.metadata, source=definition.source)


@dataclass
class _Solved:
    """Solves single edges of one Definition with the caller's options."""

    solver: object  # solver.solve.solver.Solver
    definition: pb.Definition
    graph: Graph
    options: dict

    def ref(self, edge: Edge) -> Ref:
        result = self.solver.solve(edge_definition(self.definition, self.graph, edge),  # type: ignore[attr-defined]
                                   **self.options)
        return result.ref


def _root_mount(exec_op: pb.ExecOp) -> pb.Mount:
    for mount in exec_op.mounts:
        if mount.dest == "/":
            return mount
    raise LLBookError("the RUN has no root mount")


def _exec_after(op: pb.Op, root_ref_index: int) -> pb.Op:
    """The exec op with its root mount reading input ``root_ref_index`` (its own output)."""
    exec_op: pb.ExecOp = op.op  # type: ignore[assignment]
    mounts = [replace(m, input=root_ref_index) if m.dest == "/" else m for m in exec_op.mounts]
    return replace(op, op=replace(exec_op, mounts=mounts))


def _history_file(ctx: OpContext, lines: Sequence[str], stack: ExitStack) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="history-", dir=ctx.tmp_dir))
    stack.callback(lambda: _remove_tree(directory))
    path = directory / "history"
    path.write_text("".join(f"{line}\n" for line in lines))
    os.chmod(path, 0o666)
    os.chmod(directory, 0o755)
    return path


def _remove_tree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def _run_exec_shell(ctx: OpContext, info: VertexInfo, refs: list[Ref], request: ShellRequest) -> int:
    from solver.executor.base import MountSpec
    from solver.solve import ops_exec
    exec_op: pb.ExecOp = info.op.op  # type: ignore[assignment]
    process = ops_exec._process(exec_op)
    history = [*request.history, command_text(process.args)] if request.before else list(request.history)
    with ExitStack() as stack:
        outputs = ops_exec._Outputs()
        specs = ops_exec._mount_specs(ctx, info, stack, refs, outputs, keep_outputs=False)
        if outputs.root is None:
            raise LLBookError("the RUN has no root mount")
        specs.append(MountSpec(HISTORY_PATH, str(_history_file(ctx, history, stack))))
        shell = replace(process, args=list(request.shell), terminal=True, valid_exit_codes=(),
                        env=[*process.env, f"HISTFILE={HISTORY_PATH}"])
        return ctx.executor_factory().run(outputs.root, shell, specs, cancel=ctx.cancel)


def _run_plain_shell(ctx: OpContext, ref: Ref, request: ShellRequest) -> int:
    from solver.executor.base import MountSpec, ProcessSpec
    from solver.solve.ops_exec import _throwaway_layer
    with ExitStack() as stack:
        root = stack.enter_context(_throwaway_layer(ctx, ref))
        mounts = [MountSpec(HISTORY_PATH, str(_history_file(ctx, request.history, stack)))]
        process = ProcessSpec(args=list(request.shell), env=[*request.env, f"HISTFILE={HISTORY_PATH}"],
                              cwd=request.cwd or "/", user=request.user, terminal=True)
        return ctx.executor_factory().run(root, process, mounts, cancel=ctx.cancel)


def open_shell(solver: object, definition: pb.Definition, request: ShellRequest, *,
               context_dirs: dict[str, str | Path] | None = None,
               secrets: dict[str, str | Path] | None = None, platform: pb.Platform | None = None,
               progress: Callable[[ProgressEvent], None] | None = None,
               cancel: threading.Event | None = None, ready: Callable[[], None] | None = None,
               ssh: dict[str, str | Path] | None = None) -> int:
    """Solve what the step needs, run the shell on this process's terminal, return its exit
    code. ``ready`` is called once everything is solved, before the shell starts; ``ssh``
    are the agent sockets of the RUN's ssh mounts (``--ssh``)."""
    graph = load(definition)
    vertex = graph.vertices.get(request.vertex)
    if vertex is None:
        raise LLBookError(f"no vertex {request.vertex} in the build graph")
    cancel = cancel or threading.Event()
    solved = _Solved(solver, definition, graph, {"context_dirs": context_dirs, "secrets": secrets,
                                                 "platform": platform, "progress": progress,
                                                 "cancel": cancel, "ssh": ssh})
    ctx: OpContext = solver.op_context(lambda event: None, cancel, context_dirs, secrets,  # type: ignore[attr-defined]
                                       platform, ssh)
    name = graph.name(vertex.digest)
    op = vertex.op
    if not isinstance(op.op, pb.ExecOp):
        if request.before:
            raise LLBookError(f"{name}: only a RUN has a shell before it; ask for the step before")
        index = graph.result.index if graph.result.digest == vertex.digest else 0
        ref = solved.ref(Edge(vertex.digest, index))
        if ready is not None:
            ready()
        return _run_plain_shell(ctx, ref, request)
    refs = [solved.ref(Edge(inp.digest, inp.index)) for inp in op.inputs]
    if not request.before:
        refs.append(solved.ref(Edge(vertex.digest, _root_mount(op.op).output)))
        op = _exec_after(op, len(refs) - 1)
    info = VertexInfo(vertex.digest, name, op, vertex.metadata)
    if ready is not None:
        ready()
    return _run_exec_shell(ctx, info, refs, request)
