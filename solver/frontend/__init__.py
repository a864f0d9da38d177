"""Dockerfile → LLB with BuildKit's semantics.

``dockerfile_to_llb`` lowers a whole Dockerfile; ``Lowering`` is the incremental form the
notebook session uses (snippets appended to stages, the state after any instruction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from solver.frontend.convert import Conversion, convert_dockerfile
from solver.frontend.lowering import Lowering
from solver.frontend.dispatch_state import InstructionRecord, LoweringOptions, Resolver
from solver.frontend.instructions import Instruction, parse_instructions
from solver.frontend.parser import ParsedDockerfile, parse_dockerfile
from solver.frontend.source_map import attach_source_map
from solver.llb import pb
from solver.llb.platform import Platform
from solver.llb.state import State

__all__ = ["RunOptions", "Lowered", "Lowering", "LoweringOptions", "InstructionRecord", "Resolver", "dockerfile_to_llb",
           "parse_dockerfile", "parse_instructions", "ParsedDockerfile", "Instruction"]


@dataclass(frozen=True)
class RunOptions:
    """docker build's flags that reach the frontend as BuildKit's dockerui attributes."""

    labels: tuple[tuple[str, str], ...] = ()  # --label: set on the image config
    extra_hosts: tuple[tuple[str, str], ...] = ()  # --add-host: (host, ip), extraHosts of every RUN
    shm_size: int = 0  # --shm-size in bytes: a tmpfs on /dev/shm of every RUN
    ulimits: tuple[tuple[str, int, int], ...] = ()  # --ulimit: (name, soft, hard) of every RUN
    no_cache_stages: tuple[str, ...] | None = None  # --no-cache-filter: () every stage

    def lowering_fields(self, network: str | None = None) -> dict[str, Any]:
        """The LoweringOptions fields of these flags and ``--network`` (the notebook sets them per cell)."""
        return {"force_network": network or "", "labels": dict(self.labels), "extra_hosts": list(self.extra_hosts),
                "shm_size": self.shm_size, "ulimits": list(self.ulimits),
                "no_cache_stages": None if self.no_cache_stages is None else list(self.no_cache_stages)}


@dataclass
class Lowered:
    """A lowered Dockerfile: the target state, its image config, stages and per-instruction records."""

    state: State
    image_config: dict[str, Any]
    stages: dict[str, State]
    instructions: list[InstructionRecord]
    target: str
    platform: Platform
    context_paths: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # filename -> Dockerfile text

    def definition(self, *, source_map: bool = True, local_unique_id: str | None = None) -> pb.Definition:
        """The marshaled LLB for the target platform, with BuildKit's source map of lines."""
        definition = self.state.marshal(self.platform, local_unique_id=local_unique_id)
        if source_map:
            attach_source_map(definition, self.instructions, self.sources)
        return definition

    def record_for_name(self, custom_name: str) -> InstructionRecord | None:
        """The instruction that produced the vertex with this ``llb.customname``."""
        for record in self.instructions:
            if custom_name in record.vertex_names:
                return record
        return None

    def vertex_sources(self, definition: pb.Definition | None = None) -> dict[str, InstructionRecord]:
        """Vertex digest → the instruction (line, filename) that produced it; pass the
        ``definition()`` already made to spare marshalling the state again."""
        definition = definition if definition is not None else self.definition()
        out: dict[str, InstructionRecord] = {}
        for digest, metadata in definition.metadata.items():
            name = metadata.description.get("llb.customname", "")
            record = self.record_for_name(name) if name else None
            if record is not None:
                out[digest] = record
        return out


def dockerfile_to_llb(text: str, *, filename: str = "Dockerfile", context_dir: str | None = None,
                      target: str | None = None, build_args: dict[str, str] | None = None,
                      platform: Platform | str | None = None, resolver: Resolver | None = None,
                      session_id: str | None = None, exclude_patterns: list[str] | None = None,
                      network: str | None = None, run_options: RunOptions | None = None,
                      context_git: str = "") -> Lowered:
    """Lower Dockerfile ``text`` to LLB for ``target`` with BuildKit's semantics.

    ``context_dir``: read ``.dockerignore`` (or ``<filename>.dockerignore``) from it for the
    context's exclude patterns unless ``exclude_patterns`` is given. ``resolver(ref, platform)``
    pins FROM images and returns their config; without it nothing is fetched. ``network``
    (docker build's ``--network``) is the network of every RUN that names none. ``run_options``:
    docker build's --label, --add-host, --shm-size, --ulimit and --no-cache-filter.
    ``context_git``: the build context is this git URL (``https://…/r.git#ref:subdir``).
    """
    run = run_options or RunOptions()
    excludes = (list(exclude_patterns) if exclude_patterns is not None
                else context_ignore_patterns(context_dir, filename))
    options = LoweringOptions(build_args=dict(build_args or {}),
                              platform=Platform.parse(platform) if isinstance(platform, str) else platform,
                              resolver=resolver, session_id=session_id, exclude_patterns=excludes,
                              context_git=context_git, **run.lowering_fields(network))
    conversion = convert_dockerfile(text, filename=filename, target=target, options=options)
    lowered = _lowered(conversion)
    lowered.sources = {filename: text}
    return lowered


def context_ignore_patterns(context_dir: str | None, filename: str) -> list[str]:
    """The exclude patterns of the context's .dockerignore (or <Dockerfile>.dockerignore)."""
    if context_dir is None:
        return []
    from pathlib import Path

    from solver.source.dockerignore import DockerIgnore

    dockerfile = Path(context_dir) / filename if not Path(filename).is_absolute() else Path(filename)
    return DockerIgnore.for_context(context_dir, dockerfile).exclude_patterns()


def _lowered(conversion: Conversion) -> Lowered:
    lowering = conversion.lowering
    stages = {key: st.state for key, st in lowering.stages.items() if not key.startswith("image:")}
    return Lowered(state=lowering.stages[conversion.target_key].state, image_config=conversion.image.to_dict(),
                   stages=stages, instructions=list(lowering.records), target=conversion.target_key,
                   platform=lowering.build.platform, context_paths=list(conversion.context_paths))
