"""The build DAG of a stage as data: vertices with status, details and stage, edges with
mount destinations, and its graphviz rendering (DOT with clusters, then SVG).

Statuses:
- ``failed``: the vertex's last attempt failed (and no later run built it);
- ``built`` / ``cached``: what the last run did with it (the cell that ran last wins,
  then the other cells' last runs);
- ``stale``: never solved, but it belongs to a cell that ran before and whose end
  state has changed since (an earlier cell was edited): run that cell again;
- ``not-run``: never solved and its cell never ran.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from kernel_ext.widgets.model_types import CellSolve, DagInput
from solver.errors import LLBookError
from solver.frontend.source_map import records_by_name
from solver.llb import dump, pb
from solver.llb.definition import load
from solver.solve.result import VertexRecord

CACHED, BUILT, STALE, FAILED, NOT_RUN = "cached", "built", "stale", "failed", "not-run"
STATUSES = (CACHED, BUILT, STALE, FAILED, NOT_RUN)
STATUS_FILL = {CACHED: "#d0d7de", BUILT: "#aceebb", STALE: "#fff8c5", FAILED: "#ffcecb", NOT_RUN: "#ffffff"}
STATUS_LABEL = {CACHED: "cached", BUILT: "built this run", STALE: "stale (re-run its cell)",
                FAILED: "failed", NOT_RUN: "not yet run"}
LABEL_MAX = 48
STEP_PREFIX = re.compile(r"^\[(?:(?P<stage>[^\]\s]+) )?\d+(?:/\d+)?\] ")  # "[builder 2/5] "


@dataclass
class DagVertex:
    """One vertex as the DAG view shows it."""

    digest: str
    name: str  # BuildKit's display name ("[2/3] RUN make")
    label: str  # shortened instruction text
    shape: str  # buildctl dump-llb --dot shape
    kind: str  # source | exec | file | merge | diff | build
    status: str
    stage: str = ""
    cell: str = ""  # "cell 2"
    line: int | None = None
    instruction: str = ""
    op_json: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    cache_key: str = ""
    duration: float | None = None
    layer_size: int | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    warnings: list[str] = field(default_factory=list)  # build checks on its instruction's lines

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DagEdge:
    source: str
    target: str
    label: str = ""  # mount destination of a non-root mount


@dataclass
class DagModel:
    """Vertices inputs-first, edges, the stage they end in."""

    stage: str
    vertices: list[DagVertex]
    edges: list[DagEdge]

    def by_digest(self) -> dict[str, DagVertex]:
        return {v.digest: v for v in self.vertices}

    def statuses(self) -> dict[str, str]:
        return {v.digest: v.status for v in self.vertices}

    def to_dot(self) -> str:
        return dag_dot(self)

    def svg_key(self) -> tuple[Any, ...]:
        """What the drawing depends on: the vertices (digest, name, stage) and their colouring."""
        return (self.stage, tuple((v.digest, v.name, v.stage, v.status) for v in self.vertices))

    def to_svg(self, cache: "DagCache | None" = None) -> str:
        if cache is None:
            return render_svg(self.to_dot())
        return cache.svg(self)


@dataclass
class DagCache:
    """What a kernel keeps between DAG drawings: loaded graphs by Definition, SVGs by
    ``svg_key`` (a re-run that colours the same graph the same way runs no ``dot``)."""

    limit: int = 64
    graphs: dict[int, tuple[Any, Any]] = field(default_factory=dict)  # id(definition) -> (definition, graph)
    svgs: dict[tuple[Any, ...], str] = field(default_factory=dict)
    op_jsons: dict[str, Any] = field(default_factory=dict)  # vertex digest -> the op as `buildctl debug dump-llb`

    def op_json(self, digest: str, op: pb.Op) -> Any:
        """The op's JSON dump, once per vertex digest (the digest is of the op's bytes)."""
        found = self.op_jsons.get(digest)
        if found is None:
            found = dump.to_go_json(op)
            if len(self.op_jsons) >= self.limit * 64:
                self.op_jsons.pop(next(iter(self.op_jsons)))
            self.op_jsons[digest] = found
        return found

    def graph(self, definition: pb.Definition) -> Any:
        found = self.graphs.get(id(definition))
        if found is not None and found[0] is definition:
            return found[1]
        graph = load(definition)
        self._put(self.graphs, id(definition), (definition, graph))
        return graph

    def svg(self, model: DagModel) -> str:
        key = model.svg_key()
        svg = self.svgs.get(key)
        if svg is None:
            svg = render_svg(model.to_dot())
            self._put(self.svgs, key, svg)
        return svg

    def _put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        if len(table) >= self.limit:
            table.pop(next(iter(table)))
        table[key] = value


def shorten(text: str, limit: int = LABEL_MAX) -> str:
    """One line, at most ``limit`` characters, an ellipsis in the middle when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return text[:half] + "…" + text[-(limit - 1 - half):]


def _op_kind(op: pb.Op) -> str:
    return op.kind if op.op is not None else ""


def _label(name: str, op: pb.Op) -> str:
    """The instruction text without the step prefix; a source op by its identifier."""
    if isinstance(op.op, pb.SourceOp):
        ident = op.op.identifier.split("://", 1)[-1]
        return shorten(ident.split("@sha256:", 1)[0])  # the pinned digest is in the details
    return shorten(STEP_PREFIX.sub("", name) or dump.dot_attrs(dump.DumpedOp(op, "", pb.OpMetadata()))[0])


def _stage_of_name(name: str) -> str:
    match = STEP_PREFIX.match(name)
    return (match.group("stage") or "") if match else ""


@dataclass
class RunHistory:
    """What the widgets remember across cell runs: the vertices whose last attempt failed,
    and what the latest run did to each vertex it reached (a failed run returns no records,
    but its progress says which vertices were cached or built before the failure)."""

    failed: dict[str, str] = field(default_factory=dict)  # digest -> error text
    latest: dict[str, str] = field(default_factory=dict)  # digest -> cached | built, latest run only

    def record_progress(self, outcomes: dict[str, str]) -> None:
        """The latest run's vertex outcomes (digest -> cached | built | failed)."""
        self.latest = {d: s for d, s in outcomes.items() if s in (CACHED, BUILT)}
        for digest, status in outcomes.items():
            if status == FAILED:
                self.failed.setdefault(digest, "failed")
            else:
                self.failed.pop(digest, None)

    def record_run(self, vertices: Iterable[VertexRecord]) -> None:
        for v in vertices:
            if v.error:
                self.failed[v.digest] = v.error
            elif v.completed is not None:
                self.failed.pop(v.digest, None)

    def record_failure(self, digest: str, error: str) -> None:
        if digest:
            self.failed[digest] = error


def vertex_records(solves: Iterable[CellSolve]) -> dict[str, VertexRecord]:
    """Digest → the record of its latest solve: later solves win over earlier ones."""
    out: dict[str, VertexRecord] = {}
    for solve in solves:
        for v in (solve.result.vertices if solve.result else []):
            out[v.digest] = v
    return out


def build_dag(source: DagInput, stage: str | None = None, *, history: RunHistory | None = None,
              cache: DagCache | None = None) -> DagModel:
    """The DAG of ``stage`` (default: the current one) with statuses from the session's solves."""
    lowering = source.lowering
    key = stage or lowering.current
    if key is None or key not in lowering.stages:
        return DagModel(key or "", [], [])
    state = lowering.stages[key].state
    definition = source.definition(state) if source.definition is not None else state.marshal()
    graph = cache.graph(definition) if cache is not None else load(definition)
    names = graph.names()
    by_name = records_by_name(lowering.records)
    stale_cells = source.stale_cells
    records = vertex_records(source.solves)
    failed = history.failed if history else {}
    sizes = _sizes(source.record_size, records)
    vertices: list[DagVertex] = []
    edges: list[DagEdge] = []
    for vertex in graph.reachable():
        op, name = vertex.op, names[vertex.digest]
        record = by_name.get(name)
        _, shape = dump.dot_attrs(dump.DumpedOp(op, vertex.digest, vertex.metadata or pb.OpMetadata()))
        solved = records.get(vertex.digest)
        cell = record.filename if record else ""
        status = _status(vertex.digest, solved, failed, cell in stale_cells)
        if history is not None and status in (CACHED, BUILT, NOT_RUN) and vertex.digest in history.latest:
            status = history.latest[vertex.digest]
        vertices.append(DagVertex(
            digest=vertex.digest, name=name, label=_label(name, op), shape=shape, kind=_op_kind(op),
            status=status, stage=(record.stage if record else _stage_of_name(name)), cell=cell,
            line=record.line if record else None,
            instruction=_instruction_text(record, lowering.sources) if record else name,
            op_json=cache.op_json(vertex.digest, op) if cache is not None else dump.to_go_json(op),
            inputs=list(dict.fromkeys(vertex.input_digests)),
            cache_key=(solved.cache_keys[0] if solved and solved.cache_keys else ""),
            duration=solved.duration if solved else None, layer_size=sizes.get(vertex.digest),
            reasons=list(solved.reasons) if solved and not solved.cached else [],
            error=failed.get(vertex.digest, ""),
            warnings=_warnings_of(record, source.warnings) if record else []))
        for i, inp in enumerate(op.inputs):
            edges.append(DagEdge(inp.digest, vertex.digest, dump.edge_label(op, i)))
    _inherit_stages(vertices)
    return DagModel(key, vertices, edges)


def _status(digest: str, solved: VertexRecord | None, failed: dict[str, str], stale_cell: bool) -> str:
    if digest in failed:
        return FAILED
    if solved is not None and solved.error:
        return FAILED
    if solved is not None and solved.completed is not None:
        return CACHED if solved.cached else BUILT
    if stale_cell:
        return STALE
    return NOT_RUN


def _warnings_of(record: Any, warnings: Mapping[tuple[str, int], tuple[str, ...]]) -> list[str]:
    """The check warnings on any line of the record's instruction."""
    ins = record.instruction
    end = getattr(ins, "end_line", ins.line) or ins.line
    return [text for line in range(ins.line, end + 1) for text in warnings.get((record.filename, line), ())]


def _instruction_text(record: Any, sources: dict[str, str]) -> str:
    """The instruction's own lines from its cell's text."""
    ins = record.instruction
    text = sources.get(record.filename, "")
    lines = text.splitlines()
    start, end = ins.line, getattr(ins, "end_line", ins.line) or ins.line
    if lines and 1 <= start <= len(lines):
        return "\n".join(lines[start - 1:end])
    return getattr(ins, "original", "") or str(ins)


def _inherit_stages(vertices: list[DagVertex]) -> None:
    """Vertices without a stage (image sources, context) take the stage of a consumer."""
    by_digest = {v.digest: v for v in vertices}
    for v in reversed(vertices):
        if v.stage:
            for inp in v.inputs:
                parent = by_digest.get(inp)
                if parent is not None and not parent.stage and parent.kind == "source":
                    parent.stage = v.stage


def _sizes(record_size: Callable[[str], int | None] | None, records: dict[str, VertexRecord]) -> dict[str, int]:
    """Digest → the size of its cache record (first cache key), where the store has one."""
    if record_size is None:
        return {}
    out: dict[str, int] = {}
    for digest, v in records.items():
        for key in v.cache_keys[:1]:
            size = record_size(key)
            if size is not None:
                out[digest] = size
    return out


# -- rendering --------------------------------------------------------------------------------

def _q(text: str) -> str:
    return dump.go_quote(text)


def dag_dot(model: DagModel) -> str:
    """DOT: buildctl's shapes, status fills, one cluster per stage, edge mount labels."""
    lines = ["digraph llb {", "  graph [rankdir=TB fontname=\"Helvetica\" fontsize=11 nodesep=0.25 ranksep=0.35];",
             "  node [fontname=\"Helvetica\" fontsize=10 style=filled penwidth=1.2];",
             "  edge [fontname=\"Helvetica\" fontsize=9 color=\"#57606a\"];"]
    groups: dict[str, list[DagVertex]] = {}
    for v in model.vertices:
        groups.setdefault(v.stage, []).append(v)
    for i, (stage, members) in enumerate(groups.items()):
        indent = "  "
        if stage:
            lines.append(f"  subgraph cluster_{i} {{")
            lines.append(f"    label={_q('stage ' + stage)} style=\"rounded,dashed\" color=\"#8c959f\";")
            indent = "    "
        for v in members:
            tooltip = f"{v.name}\n{v.digest}\n{STATUS_LABEL[v.status]}"
            border = "#cf222e" if v.status == FAILED else "#24292f"
            lines.append(f"{indent}{_q(v.digest)} [id={_q(v.digest)} label={_q(v.label)} shape={_q(v.shape)} "
                         f"fillcolor={_q(STATUS_FILL[v.status])} color={_q(border)} tooltip={_q(tooltip)} "
                         f"class={_q('llbook-vertex llbook-' + v.status)}];")
        if stage:
            lines.append("  }")
    for e in model.edges:
        label = f" label={_q(e.label)}" if e.label else ""
        lines.append(f"  {_q(e.source)} -> {_q(e.target)} [id={_q(e.source + '->' + e.target)}{label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot: str) -> str:
    """SVG of DOT source by the graphviz package (its ``dot`` layout), without the XML
    prologue (ready to inline in HTML)."""
    import graphviz  # ~25 ms: only when a DAG is drawn, not at kernel start
    try:
        svg = graphviz.Source(dot).pipe(format="svg", encoding="utf-8", quiet=True)
    except graphviz.ExecutableNotFound as error:
        raise LLBookError("drawing the DAG needs graphviz's `dot` program (Debian package graphviz)") from error
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def legend_html() -> str:
    items = "".join(f"<span class='llbook-legend-item'><span class='llbook-swatch' style='background:{STATUS_FILL[s]}'>"
                    f"</span>{STATUS_LABEL[s]}</span>" for s in STATUSES)
    return f"<div class='llbook-legend'>{items}</div>"
