"""A whole Dockerfile → LLB (BuildKit ``dockerfile2llb/convert.go``).

Parses, builds the stage graph (bases, ``--from`` dependencies, cycles), picks the
stages the target needs and dispatches them in file order with the ``Lowering`` engine.
The build context is lowered twice when needed: once to learn which paths the
instructions read, then with those as the context's ``followpaths``.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.errors import DockerfileError
from solver.frontend.build_setup import (apply_meta_args, context_state, default_args, normalize_context_paths,
                                         source_date_epoch, target_platform)
from solver.frontend.dispatch_state import LoweringOptions
from solver.frontend.image_config import ImageConfig
from solver.frontend.instructions import (CopyInstruction, FromInstruction, Instruction, RunInstruction,
                                          WorkdirInstruction, parse_instructions)
from solver.frontend.lowering import Lowering
from solver.frontend.parser import parse_dockerfile
from solver.frontend.shell_words import Lexer
from solver.frontend.stages import SCRATCH, Stage, StageGraph, build_graph, split_stages

LAYER_INSTRUCTIONS = (CopyInstruction, RunInstruction, WorkdirInstruction)


@dataclass
class Conversion:
    """The result of converting a whole Dockerfile."""

    lowering: Lowering
    graph: StageGraph
    target: Stage
    target_key: str
    image: ImageConfig
    context_paths: list[str]


def _stage_key(stage: Stage) -> str:
    return stage.name or f"stage-{stage.index}"


def _run_stages(text_instructions: list[Instruction], escape: str, options: LoweringOptions, filename: str,
                target_name: str | None, follow: list[str] | None) -> tuple[Conversion, set[str]]:
    lexer = Lexer(escape_token=escape)
    meta, groups = split_stages(text_instructions, filename)
    platform = target_platform(options.platform)
    last_name = groups[-1][0].stage_name if isinstance(groups[-1][0], FromInstruction) else ""
    global_args = apply_meta_args(default_args(platform, options.build_args, target_name or last_name), meta,
                                  options.build_args, lexer)
    graph = build_graph(meta, groups, global_args, lexer)
    target = graph.target(target_name, filename)
    reachable = {s.index for s in graph.reachable(target)}
    lowering = Lowering(options, escape, single_stage_names=len(graph.stages) == 1)
    lowering.build.global_args = global_args
    lowering.build.epoch = source_date_epoch(options.build_args, global_args, filename)
    lowering.meta_args = list(meta)
    if follow is not None:
        lowering.build.context = context_state(options, follow)
    lowering.declared = [_stage_key(s) for s in graph.stages if not s.implicit]
    for stage in graph.stages:
        if stage.implicit or stage.index not in reachable:
            continue
        _dispatch_stage(lowering, stage)
    conversion = Conversion(lowering, graph, target, _stage_key(target),
                            lowering.stages[_stage_key(target)].image, [])
    return conversion, lowering.build.ctx_paths


def _dispatch_stage(lowering: Lowering, stage: Stage) -> None:
    head = stage.from_instruction
    assert head is not None
    base_is_image = stage.base is None and stage.base_name.lower() != SCRATCH
    total = count_commands(stage.instructions, base_is_image)
    lowering.add_instruction(head, _stage_key(stage), cmd_total=total)
    key = lowering.current
    for ins in stage.instructions:
        lowering.add_instruction(ins, key)


def convert_dockerfile(text: str, *, filename: str = "Dockerfile", target: str | None = None,
                       options: LoweringOptions | None = None) -> Conversion:
    """Parse and lower a whole Dockerfile for ``target`` (the last stage by default)."""
    options = options or LoweringOptions()
    if not text.strip():
        raise DockerfileError("the Dockerfile cannot be empty", None, filename)
    parsed = parse_dockerfile(text, filename)
    instructions = parse_instructions(parsed)
    conversion, paths = _run_stages(instructions, parsed.escape, options, filename, target, None)
    follow = normalize_context_paths(paths)
    if options.follow_paths and follow:
        conversion, _ = _run_stages(instructions, parsed.escape, options, filename, target, follow)
    conversion.context_paths = follow
    _finalize_image(conversion)
    return conversion


def _finalize_image(conversion: Conversion) -> None:
    """Target platform and extra labels onto the result image (``finalizeResultImage``).

    Only an explicit target platform (``--platform``) is written over the image's; with the
    implicit one (the host's) the target stage keeps its base's (``FROM --platform=linux/arm64
    busybox`` gives an arm64 config, as BuildKit's ``implicitTarget``, in 0.8 and today)."""
    image = conversion.image
    if conversion.lowering.options.platform is not None:
        platform = conversion.lowering.build.platform
        same = image.os == platform.os and image.architecture == platform.architecture
        image.os = platform.os
        image.architecture = platform.architecture
        if platform.variant or not same:
            image.variant = platform.variant
    image.config.labels = {**image.config.labels, **conversion.lowering.options.labels}  # snapshots share the old


def count_commands(instructions: list[Instruction], base_is_image: bool) -> int:
    """``cmdTotal``: the FROM of an image plus each ADD, COPY, RUN and WORKDIR."""
    return int(base_is_image) + sum(isinstance(i, LAYER_INSTRUCTIONS) for i in instructions)
