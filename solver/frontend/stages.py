"""Build stages and the dependency graph between them (BuildKit's dispatch states).

A stage is a FROM with the instructions that follow it. Stages depend on their base
stage (``FROM <earlier stage>``), on ``COPY --from`` and on ``RUN --mount from=``. A
``--from`` that names no stage is an image: it becomes an implicit stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solver.errors import DockerfileError
from solver.frontend.instructions import (ArgInstruction, CopyInstruction, FromInstruction, Instruction,
                                          RunInstruction)
from solver.frontend.shell_words import Lexer
from solver.llb.reference import InvalidReferenceError, normalize

SCRATCH = "scratch"


@dataclass
class Stage:
    """One stage of the build."""

    index: int
    name: str  # lower-case "AS" name, "" when unnamed
    base_name: str  # FROM argument after expansion with the global args
    from_instruction: FromInstruction | None
    instructions: list[Instruction] = field(default_factory=list)
    base: "Stage | None" = None  # FROM names an earlier stage
    implicit: bool = False  # created by COPY --from=<image>
    deps: dict[int, Instruction] = field(default_factory=dict)  # stage index -> instruction that needs it
    sources: dict[int, list["Stage"]] = field(default_factory=dict)  # id(instruction) -> stages it reads

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclass
class StageGraph:
    meta_args: list[ArgInstruction]
    stages: list[Stage]

    def by_name(self, name: str) -> Stage | None:
        lowered = name.lower()
        for stage in reversed(self.stages):
            if stage.name and stage.name == lowered:
                return stage
        return None

    def target(self, name: str | None, filename: str) -> Stage:
        if not name:
            explicit = [s for s in self.stages if not s.implicit]
            return explicit[-1]
        stage = self.by_name(name)
        if stage is None:
            raise DockerfileError(f'target stage "{name}" could not be found', None, filename)
        return stage

    def reachable(self, target: Stage) -> list[Stage]:
        """Stages the target needs, in file order (implicit stages last)."""
        seen: set[int] = set()
        todo = [target]
        while todo:
            stage = todo.pop()
            if stage.index in seen:
                continue
            seen.add(stage.index)
            if stage.base is not None:
                todo.append(stage.base)
            todo.extend(self.stages[i] for i in stage.deps)
        return [s for s in self.stages if s.index in seen]


def split_stages(instructions: list[Instruction], filename: str) -> tuple[list[ArgInstruction], list[list[Instruction]]]:
    """Global ARGs before the first FROM, then one list per FROM (FROM first)."""
    meta: list[ArgInstruction] = []
    groups: list[list[Instruction]] = []
    for ins in instructions:
        if isinstance(ins, FromInstruction):
            groups.append([ins])
        elif groups:
            groups[-1].append(ins)
        elif isinstance(ins, ArgInstruction):
            meta.append(ins)
        else:
            raise DockerfileError("no build stage in current context", ins.line, ins.filename)
    if not groups:
        line = instructions[-1].line if instructions else None
        raise DockerfileError("dockerfile contains no stages to build (no FROM instruction)", line, filename)
    return meta, groups


def build_graph(meta: list[ArgInstruction], groups: list[list[Instruction]], global_env: dict[str, str],
                lexer: Lexer) -> StageGraph:
    """Stages with bases and dependencies; rejects unknown stages, bad images and cycles."""
    graph = StageGraph(meta, [])
    for index, group in enumerate(groups):
        head = group[0]
        assert isinstance(head, FromInstruction)
        graph.stages.append(_new_stage(graph, index, head, group[1:], global_env, lexer))
    for stage in list(graph.stages):
        _link_sources(graph, stage)
    check_cycles(graph)
    return graph


def _new_stage(graph: StageGraph, index: int, head: FromInstruction, body: list[Instruction],
               global_env: dict[str, str], lexer: Lexer) -> Stage:
    try:
        base_name = lexer.process_word(head.base_name, global_env)
    except ValueError as err:
        raise head.error(str(err)) from None
    if not base_name:
        raise head.error(f"base name ({head.base_name}) should not be blank")
    stage = Stage(index, head.stage_name, base_name, head, list(body))
    stage.base = graph.by_name(base_name)
    return stage


def _link_sources(graph: StageGraph, stage: Stage) -> None:
    for ins in stage.instructions:
        refs: list[str] = []
        if isinstance(ins, CopyInstruction) and ins.from_:
            refs = [ins.from_]
        elif isinstance(ins, RunInstruction):
            refs = list(ins.mount_froms)
        found = [_source_stage(graph, ref, ins) if ref else None for ref in refs]
        stage.sources[id(ins)] = found  # type: ignore[assignment]
        for src in found:
            if src is not None:
                stage.deps[src.index] = ins


def _source_stage(graph: StageGraph, ref: str, ins: Instruction) -> Stage:
    if "$" in ref and isinstance(ins, CopyInstruction):
        raise ins.error("variable expansion is not supported for --from, define a new stage with FROM using "
                        "ARG from global scope as a workaround")
    if ref.isdigit() or (ref[:1] == "-" and ref[1:].isdigit()):
        number = int(ref)
        explicit = [s for s in graph.stages if not s.implicit]
        if number < 0 or number >= len(explicit):
            raise ins.error(f"invalid stage index {number}")
        return explicit[number]
    stage = graph.by_name(ref)
    if stage is not None:
        return stage
    for existing in graph.stages:
        if existing.implicit and existing.base_name == ref:
            return existing
    if ref != SCRATCH:
        try:
            normalize(ref)
        except InvalidReferenceError as err:
            raise ins.error(f'"{ref}" is not a build stage or a valid image reference: {err}') from None
    implicit = Stage(len(graph.stages), "", ref, None, [], implicit=True)
    graph.stages.append(implicit)
    return implicit


def check_cycles(graph: StageGraph) -> None:
    """Depth-first search over bases and dependencies (``validateCircularDependency``)."""
    state: dict[int, int] = {}  # 1 = on the stack, 2 = done

    def visit(stage: Stage) -> None:
        state[stage.index] = 1
        edges = [(dep, ins) for dep, ins in stage.deps.items()]
        for dep_index, ins in edges:
            mark = state.get(dep_index)
            if mark == 1:
                raise ins.error("circular dependency detected on stage: "
                                f"{graph.stages[dep_index].display_name}")
            if mark is None:
                visit(graph.stages[dep_index])
        state[stage.index] = 2

    for stage in graph.stages:
        if stage.index not in state:
            visit(stage)
