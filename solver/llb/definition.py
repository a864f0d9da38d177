"""Reading a Definition the way BuildKit's daemon does (`loadLLB` in solver/llbsolver/vertex.go).

`load(defn)` parses every op, indexes it by digest together with its metadata, re-hashes
ops canonically (`recomputeDigests`), takes the last entry as the terminal op and its
first input as the result edge, and validates the reachable ops (`opsutils.Validate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solver.errors import LLBookError
from solver.llb import pb
from solver.llb.digest import digest_of
from solver.llb.pb import Definition
from solver.llb.wire import WireError

__all__ = ["Definition", "Edge", "Graph", "InvalidDefinitionError", "Vertex", "load", "validate_op"]


class InvalidDefinitionError(LLBookError):
    """A Definition that BuildKit would refuse to load."""


@dataclass
class Vertex:
    """One op of a loaded graph, under its canonical digest."""

    digest: str
    op: pb.Op
    metadata: pb.OpMetadata | None

    @property
    def input_digests(self) -> list[str]:
        return [inp.digest for inp in self.op.inputs]


@dataclass(frozen=True)
class Edge:
    """An output of a vertex."""

    digest: str
    index: int


@dataclass
class Graph:
    """The vertices of a Definition (terminal op removed) and the result edge."""

    vertices: dict[str, Vertex]
    result: Edge
    terminal: Vertex
    renamed: dict[str, str] = field(default_factory=dict)  # digest in the bytes -> canonical digest
    _names: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def reachable(self) -> list[Vertex]:
        """Vertices the result depends on, inputs before their users."""
        return self._topological([self.result.digest])

    def _topological(self, roots: list[str]) -> list[Vertex]:
        """Vertices reachable from `roots`, inputs first (iterative depth-first walk)."""
        order: list[Vertex] = []
        seen: set[str] = set()
        stack: list[tuple[str, bool]] = [(r, False) for r in reversed(roots)]
        while stack:
            dgst, expanded = stack.pop()
            if expanded:
                order.append(self.vertices[dgst])
                continue
            if dgst in seen:
                continue
            seen.add(dgst)
            stack.append((dgst, True))
            for inp in reversed(self.vertices[dgst].input_digests):
                if inp not in seen:
                    stack.append((inp, False))
        return order

    def names(self) -> dict[str, str]:
        """Display name of every vertex, as BuildKit's `vertex.Name()` gives it (computed once)."""
        if self._names is not None:
            return self._names
        names: dict[str, str] = {}
        for vertex in self._topological(list(self.vertices)):
            md = vertex.metadata
            if md is not None and "llb.customname" in md.description:
                names[vertex.digest] = md.description["llb.customname"]
            else:
                names[vertex.digest] = default_name(vertex.op, names)
        self._names = names
        return names

    def name(self, dgst: str) -> str:
        """Display name of one vertex: `llb.customname`, else BuildKit's default name."""
        return self.names()[dgst]


def default_name(op: pb.Op, input_names: dict[str, str] | None = None) -> str:
    """BuildKit's vertex name when no custom name is set (`llbOpName`).

    Merge and diff names embed their inputs' names when `input_names` (digest → name) has them.
    """
    inner = op.op
    known = input_names or {}
    if isinstance(inner, pb.SourceOp):
        return inner.identifier
    if isinstance(inner, pb.ExecOp):
        return " ".join(inner.meta.args) if inner.meta else ""
    if isinstance(inner, pb.FileOp):
        return ", ".join(_file_action_name(a) for a in inner.actions)
    if isinstance(inner, pb.BuildOp):
        return "build"
    if isinstance(inner, pb.MergeOp):
        subnames = ", ".join(known.get(i.digest, i.digest) for i in op.inputs)
        return f"merge ({subnames})"
    if isinstance(inner, pb.DiffOp):
        return f"diff {_diff_side(op, inner.lower, known)} -> {_diff_side(op, inner.upper, known)}"
    if isinstance(inner, pb.PassthroughOp):
        return "passthrough " + inner.id
    return "unknown"


def _diff_side(op: pb.Op, side: pb.LowerDiffInput | pb.UpperDiffInput | None, names: dict[str, str]) -> str:
    if side is None or side.input == pb.EMPTY:
        return "scratch"
    if not 0 <= side.input < len(op.inputs):
        return f"(invalid input {side.input})"
    dgst = op.inputs[side.input].digest
    return f"({names.get(dgst, dgst)})"


def _file_action_name(action: pb.FileAction) -> str:
    a = action.action
    if isinstance(a, pb.FileActionMkDir):
        return f"mkdir {a.path}"
    if isinstance(a, pb.FileActionMkFile):
        return f"mkfile {a.path}"
    if isinstance(a, pb.FileActionSymlink):
        return f"symlink {a.newpath} -> {a.oldpath}"
    if isinstance(a, pb.FileActionRm):
        return f"rm {a.path}"
    if isinstance(a, pb.FileActionCopy):
        return f"copy {a.src} {a.dest}"
    return ""


def parse(data: bytes) -> Definition:
    """Parse Definition bytes, turning wire errors into InvalidDefinitionError."""
    try:
        return Definition.from_bytes(data)
    except WireError as exc:
        raise InvalidDefinitionError(f"failed to parse definition: {exc}") from exc


def load(defn: Definition) -> Graph:
    """Index a Definition as BuildKit's `loadLLB` does; raise InvalidDefinitionError when it would."""
    if not defn.def_:
        raise InvalidDefinitionError("invalid empty definition")
    ops: dict[str, Vertex] = {}
    last = ""
    for dt in defn.def_:
        op = _parse_op(dt)
        for i, inp in enumerate(op.inputs):
            if inp.index < 0:
                raise InvalidDefinitionError(f"invalid input {i} output index {inp.index}")
        last = digest_of(dt)
        ops[last] = Vertex(last, op, defn.metadata.get(last))
    renamed = _recompute_digests(ops)
    if len(ops) < 2:
        raise InvalidDefinitionError(f"invalid LLB with {len(ops)} vertexes")
    terminal = ops.pop(renamed.get(last, last))
    if not terminal.op.inputs:
        raise InvalidDefinitionError("invalid LLB with no inputs on last vertex")
    head = terminal.op.inputs[0]
    graph = Graph(ops, Edge(head.digest, head.index), terminal, renamed)
    if head.digest not in ops:
        raise InvalidDefinitionError(f"invalid missing input digest {head.digest}")
    for vertex in graph.reachable():
        validate_op(vertex.op)
    return graph


def _parse_op(dt: bytes) -> pb.Op:
    try:
        return pb.Op.from_bytes(dt)
    except WireError as exc:
        raise InvalidDefinitionError(f"failed to parse llb proto op: {exc}") from exc


def _recompute_digests(ops: dict[str, Vertex]) -> dict[str, str]:
    """Re-marshal every op canonically, rewriting input digests; re-key `ops` in place."""
    renamed: dict[str, str] = {}
    for dgst in list(ops):
        _recompute(ops, renamed, dgst)
    return renamed


def _recompute(ops: dict[str, Vertex], renamed: dict[str, str], root: str) -> None:
    """Go's `recomputeDigests` for `root` and its inputs, without recursion (deep chains are fine)."""
    stack: list[tuple[str, bool]] = [(root, False)]
    on_path: set[str] = set()
    while stack:
        dgst, inputs_done = stack.pop()
        if dgst in renamed:
            continue
        vertex = ops.get(dgst)
        if vertex is None:
            raise InvalidDefinitionError(f"invalid missing input digest {dgst}")
        if not inputs_done:
            if dgst in on_path:
                raise InvalidDefinitionError(f"invalid cycle through {dgst}")
            on_path.add(dgst)
            stack.append((dgst, True))
            stack.extend((inp.digest, False) for inp in reversed(vertex.op.inputs) if inp.digest not in renamed)
            continue
        on_path.discard(dgst)
        for inp in vertex.op.inputs:
            inp.digest = renamed[inp.digest]
        new = digest_of(vertex.op.to_bytes())
        if new != dgst:
            del ops[dgst]
            vertex.digest = new
            ops[new] = vertex
        renamed[dgst] = new


def validate_op(op: pb.Op) -> None:
    """The structural checks of BuildKit's `opsutils.Validate`."""
    inner = op.op
    if isinstance(inner, pb.ExecOp):
        _validate_exec(inner)
    elif isinstance(inner, pb.FileOp) and not inner.actions:
        raise InvalidDefinitionError("invalid file op with no actions")
    elif isinstance(inner, pb.DiffOp) and (inner.lower is None or inner.upper is None):
        raise InvalidDefinitionError("invalid diff op with nil lower or upper input")
    elif isinstance(inner, pb.PassthroughOp):
        _validate_passthrough(inner, len(op.inputs))


def _validate_exec(ex: pb.ExecOp) -> None:
    if ex.meta is None:
        raise InvalidDefinitionError("invalid exec op with no meta")
    if not ex.meta.args:
        raise InvalidDefinitionError("invalid exec op with no args")
    if not ex.mounts:
        raise InvalidDefinitionError("invalid exec op with no mounts")
    if not any(m.dest == pb.ROOT_MOUNT for m in ex.mounts):
        raise InvalidDefinitionError("invalid exec op with no rootfs")


def _validate_passthrough(pt: pb.PassthroughOp, input_count: int) -> None:
    if not pt.id:
        raise InvalidDefinitionError("invalid passthrough op with no id")
    if not pt.outputs:
        raise InvalidDefinitionError("invalid passthrough op with no outputs")
    for out in pt.outputs:
        if out < 0 or (input_count > 0 and out >= input_count):
            raise InvalidDefinitionError(f"invalid passthrough output input index {out}")
