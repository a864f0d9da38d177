"""The incremental lowering engine: instructions appended one at a time to named stages.

Every dispatched instruction leaves an ``InstructionRecord`` with the LLB state and image
config after it (BuildKit's ``dispatchState`` per stage, ``dispatch`` per instruction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from solver.errors import DockerfileError, LLBookError
from solver.frontend.build_setup import (apply_meta_args, context_state, default_args, proxy_env,
                                         source_date_epoch, target_platform)
from solver.frontend.dispatch_config import (dispatch_arg, dispatch_cmd, dispatch_entrypoint, dispatch_env,
                                             dispatch_expose, dispatch_healthcheck, dispatch_label,
                                             dispatch_maintainer, dispatch_onbuild, dispatch_shell,
                                             dispatch_stopsignal, dispatch_user, dispatch_volume,
                                             dispatch_workdir)
from solver.frontend.dispatch_copy import dispatch_copy
from solver.frontend.dispatch_run import DF_COMMAND_KEY, dispatch_run
from solver.frontend.dispatch_state import ArgValue, BuildState, InstructionRecord, LoweringOptions, StageState
from solver.frontend.image_config import DEFAULT_PATH_ENV, ImageConfig
from solver.frontend.instructions import (ArgInstruction, CmdInstruction, CopyInstruction, EntrypointInstruction,
                                          EnvInstruction, ExposeInstruction, FromInstruction,
                                          HealthcheckInstruction, Instruction, LabelInstruction,
                                          MaintainerInstruction, OnbuildInstruction, RunInstruction,
                                          ShellInstruction, StopSignalInstruction, UserInstruction,
                                          VolumeInstruction, WorkdirInstruction, parse_instruction,
                                          parse_instructions)
from solver.frontend.parser import parse_dockerfile
from solver.frontend.paths import docker_workdir
from solver.frontend.shell_words import Lexer, WordError
from solver.frontend.source_map import attach_source_map
from solver.frontend.stages import SCRATCH
from solver.llb import pb
from solver.llb.platform import Platform
from solver.llb.reference import InvalidReferenceError, normalize
from solver.llb.sources import image as llb_image
from solver.llb.state import State, scratch

Dispatcher = Callable[[BuildState, StageState, Any], Any]
_CONFIG_DISPATCH: dict[type, Dispatcher] = {
    EnvInstruction: dispatch_env, ArgInstruction: dispatch_arg, LabelInstruction: dispatch_label,
    MaintainerInstruction: dispatch_maintainer, UserInstruction: dispatch_user, CmdInstruction: dispatch_cmd,
    EntrypointInstruction: dispatch_entrypoint, HealthcheckInstruction: dispatch_healthcheck,
    ExposeInstruction: dispatch_expose, VolumeInstruction: dispatch_volume,
    StopSignalInstruction: dispatch_stopsignal, ShellInstruction: dispatch_shell,
    OnbuildInstruction: dispatch_onbuild,
}


@dataclass
class Lowering:
    """Incremental Dockerfile → LLB: stages grow one instruction at a time.

    Every dispatched instruction leaves an ``InstructionRecord`` with the LLB state and
    image config after it, so a caller can take the state at any point and re-lower from
    there by building a new ``Lowering`` with the instructions up to that point.
    """

    options: LoweringOptions = field(default_factory=LoweringOptions)
    escape: str = "\\"
    single_stage_names: bool = False  # BuildKit omits the stage name when there is one stage
    build: BuildState = field(init=False)
    stages: dict[str, StageState] = field(default_factory=dict)
    stage_order: list[str] = field(default_factory=list)
    records: list[InstructionRecord] = field(default_factory=list)
    current: str | None = None
    meta_args: list[ArgInstruction] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)  # stage keys of the whole file, by index
    named: set[str] = field(default_factory=set)  # keys that are "AS" names (FROM can use them)
    sources: dict[str, str] = field(default_factory=dict)  # filename -> snippet text (source map)

    def __post_init__(self) -> None:
        lexer = Lexer(escape_token=self.escape)
        platform = target_platform(self.options.platform)
        global_args = default_args(platform, self.options.build_args, "")
        self.build = BuildState(self.options, lexer, platform, global_args,
                                source_date_epoch(self.options.build_args, global_args, "Dockerfile"),
                                proxy_env(self.options.build_args), context_state(self.options))

    # -- public API ---------------------------------------------------------------------
    def add_snippet(self, text: str, filename: str = "Dockerfile", stage: str | None = None
                    ) -> list[InstructionRecord]:
        """Parse a snippet and append its instructions (a FROM starts a new stage)."""
        parsed = parse_dockerfile(text, filename)
        self.sources[filename] = text
        if parsed.escape != self.escape:
            self.escape = parsed.escape
            self.build.lexer = Lexer(escape_token=parsed.escape)
        return [self.add_instruction(ins, stage) for ins in parse_instructions(parsed)]

    def add_instruction(self, ins: Instruction, stage: str | None = None, *,
                        cmd_total: int | None = None) -> InstructionRecord:
        """Dispatch one instruction; ``stage`` names the stage to continue (default: current).

        For a FROM, ``stage`` is the key the new stage is stored under (default: its
        ``AS`` name or ``stage-N``)."""
        if isinstance(ins, FromInstruction):
            return self._start_stage(ins, cmd_total, stage)
        if isinstance(ins, ArgInstruction) and not self.stages:
            return self._meta_arg(ins)
        name = stage or self.current
        if name is None or name not in self.stages:
            raise DockerfileError("no build stage in current context" if name is None
                                  else f'stage "{name}" is not defined', ins.line, ins.filename)
        self.current = name
        return self._dispatch(self.stages[name], ins)

    def state_after(self, index: int) -> State:
        return self.records[index].state

    def definition_after(self, index: int, platform: Platform | str | None = None) -> pb.Definition:
        """The marshaled state after instruction ``index``, with a source map of cells and lines."""
        definition = self.state_after(index).marshal(platform or self.build.platform)
        return attach_source_map(definition, self.records[:index + 1], self.sources)

    def image_config_after(self, index: int) -> dict[str, Any]:
        return self.records[index].image.to_dict()

    def stage_state(self, name: str | None = None) -> State:
        return self._stage(name).state

    def stage_image(self, name: str | None = None) -> ImageConfig:
        return self._stage(name).image

    def _stage(self, name: str | None) -> StageState:
        key = name or self.current
        if key is None or key not in self.stages:
            raise LLBookError(f"no stage {key!r}")
        return self.stages[key]

    # -- stages -------------------------------------------------------------------------
    def _meta_arg(self, ins: ArgInstruction) -> InstructionRecord:
        self.meta_args.append(ins)
        self.build.global_args = apply_meta_args(self.build.global_args, [ins], self.options.build_args,
                                                 self.build.lexer)
        self.build.epoch = source_date_epoch(self.options.build_args, self.build.global_args, ins.filename)
        record = InstructionRecord(ins, "", scratch(), ImageConfig.empty(self.build.platform.os,
                                                                         self.build.platform.architecture).snapshot())
        self.records.append(record)
        return record

    def stage_key(self, ins: FromInstruction) -> str:
        return ins.stage_name or f"stage-{len(self.stage_order)}"

    def _start_stage(self, ins: FromInstruction, cmd_total: int | None, key: str | None) -> InstructionRecord:
        try:
            base_name = self.build.lexer.process_word(ins.base_name, self.build.global_args)
        except WordError as err:
            raise ins.error(str(err)) from None
        if not base_name:
            raise ins.error(f"base name ({ins.base_name}) should not be blank")
        key = key or self.stage_key(ins)
        base = self.stages.get(base_name.lower()) if base_name.lower() in self.named else None
        platform = self._from_platform(ins)
        display = "" if self.single_stage_names else key
        stage, names = self._init_stage(ins, base_name, base, platform, display, cmd_total)
        self.stages[key] = stage
        if ins.stage_name:
            self.named.add(key)
        if key not in self.stage_order:
            self.stage_order.append(key)
        self.current = key
        record = InstructionRecord(ins, key, stage.state, stage.image.snapshot(), names)
        self.records.append(record)
        stage.records.append(record)
        self._run_triggers(stage, ins)
        return record

    def _from_platform(self, ins: FromInstruction) -> Platform:
        if not ins.platform:
            return self.build.platform
        try:
            value = self.build.lexer.process_word(ins.platform, self.build.global_args)
        except WordError as err:
            raise ins.error(f"failed to process arguments for platform {ins.platform}: {err}") from None
        if not value:
            raise ins.error(f"empty platform value from expression {ins.platform}")
        try:
            return Platform.parse(value)
        except LLBookError as err:
            raise ins.error(f"failed to parse platform {ins.platform}: {err}") from None

    def _init_stage(self, ins: FromInstruction | None, base_name: str, base: StageState | None,
                    platform: Platform, display: str, cmd_total: int | None) -> tuple[StageState, list[str]]:
        names: list[str] = []
        if base is not None:
            stage = StageState(display, base.state, base.image.clone(), base.platform, dict(base.env), base.cwd,
                               base.user, [ArgValue(a.key, a.value) for a in base.build_args])
            stage.image.config.on_build = list(base.onbuild_expressions)
        elif base_name.lower() == SCRATCH:
            stage = StageState(display, scratch(), ImageConfig.empty(platform.os, platform.architecture,
                                                                     platform.variant), platform)
        else:
            stage, names = self._image_stage(ins, base_name, platform, display, cmd_total)
        stage.cmd_total = cmd_total
        stage.ignore_cache = self.build.options.ignores_cache(ins.stage_name if ins is not None else "")
        self._apply_image_settings(stage, ins)
        return stage, names

    def _image_stage(self, ins: FromInstruction | None, base_name: str, platform: Platform, display: str,
                     cmd_total: int | None) -> tuple[StageState, list[str]]:
        try:
            ref = normalize(base_name)
        except InvalidReferenceError as err:
            message = f'failed to parse stage name "{base_name}": {err}'
            if ins is None:
                raise DockerfileError(message, None, "Dockerfile") from None
            raise ins.error(message) from None
        try:
            resolved = self.build.resolve_image(ref, platform)
        except Exception as err:  # the resolver talks to registries: report where it was needed
            error = DockerfileError(f"failed to resolve source metadata for {ref}: {err}",
                                    ins.line if ins else None, ins.filename if ins else "Dockerfile")
            raise error from err
        image = ImageConfig.empty(platform.os, platform.architecture, platform.variant)
        is_scratch = False
        if resolved is not None:
            pinned, config = resolved
            ref = _pinned_ref(ref, pinned)
            image = ImageConfig.from_dict(config)
            is_scratch = not image.diff_ids and all(h.empty_layer for h in image.history)
        stage = StageState(display, scratch(), image, platform, cmd_total=cmd_total)
        if is_scratch:
            return stage, []
        name = stage.prefix("FROM " + ref) if (cmd_total or ins is not None) else "FROM " + ref
        description = {DF_COMMAND_KEY: ins.code} if ins is not None else None
        stage.state = llb_image(ref, platform=platform, custom_name=name, description=description)
        return stage, [name]

    def _apply_image_settings(self, stage: StageState, ins: FromInstruction | None) -> None:
        """Default PATH, image env, WorkingDir and User onto the state (``dispatchStages``)."""
        config = stage.image.config
        if config.get_env("PATH") is None and stage.platform.os != "windows":
            config.env.append(f"PATH={DEFAULT_PATH_ENV}")
        for item in config.env:
            key, _, value = item.partition("=")
            stage.add_env(key, value)
        if config.working_dir:  # the config keeps it as written; the state's dir is absolute
            stage.set_cwd(docker_workdir("/", config.working_dir))
        if config.user:
            stage.set_user(config.user)

    def _run_triggers(self, stage: StageState, ins: FromInstruction) -> None:
        triggers = list(stage.image.config.on_build)
        stage.image.config.on_build = []
        if not triggers:
            return
        stage.onbuild_expressions = []
        if stage.cmd_total is not None:
            stage.cmd_total += len(triggers)  # BuildKit counts every trigger
        for trigger in triggers:
            parsed = parse_dockerfile(trigger, ins.filename)
            if len(parsed.nodes) != 1:
                raise ins.error("onbuild trigger should be a single expression")
            node = parsed.nodes[0]
            node.start_line = node.end_line = ins.line
            trig = parse_instruction(node)
            stage.is_onbuild = True
            try:
                self._dispatch(stage, trig, onbuild=True)
            finally:
                stage.is_onbuild = False

    # -- instructions -------------------------------------------------------------------
    def lookup_stage(self, ref: str, ins: Instruction) -> State | None:
        """The state a ``--from`` names: a stage by name or index, or an image."""
        stage = self._stage_by_ref(ref, ins)
        if stage is not None:
            return stage.state
        if ref.isdigit():
            raise ins.error(f"invalid stage index {ref}")
        if ref.lower() == SCRATCH:
            return scratch()
        try:
            normalized = normalize(ref)
        except InvalidReferenceError as err:
            raise ins.error(f'"{ref}" is not a build stage or a valid image reference: {err}') from None
        key = "image:" + normalized
        if key not in self.stages:
            implicit, _ = self._image_stage(None, ref, self.build.platform, "", None)
            self._apply_image_settings(implicit, None)
            self.stages[key] = implicit
        return self.stages[key].state

    def _stage_by_ref(self, ref: str, ins: Instruction) -> StageState | None:
        order = self.declared or self.stage_order
        key = ref.lower()
        if ref.isdigit():
            key = order[int(ref)] if int(ref) < len(order) else ""
        if key in self.declared and key not in self.stages:
            raise ins.error(f'cannot copy from stage "{ref}", it needs to be defined before current '
                            f'stage "{self.current}"')
        return self.stages.get(key) if not key.startswith("image:") else None

    def _dispatch(self, stage: StageState, ins: Instruction, *, onbuild: bool = False) -> InstructionRecord:
        names = self._dispatch_one(stage, ins)
        key = self.current or ""
        record = InstructionRecord(ins, key, stage.state, stage.image.snapshot(), names or [], onbuild)
        self.records.append(record)
        stage.records.append(record)
        return record

    def _dispatch_one(self, stage: StageState, ins: Instruction) -> list[str] | None:
        build = self.build
        if isinstance(ins, RunInstruction):
            return dispatch_run(build, stage, ins, lambda ref: self.lookup_stage(ref, ins))
        if isinstance(ins, CopyInstruction):
            source = self.lookup_stage(ins.from_, ins) if ins.from_ else None
            return dispatch_copy(build, stage, ins, source)
        if isinstance(ins, WorkdirInstruction):
            return dispatch_workdir(build, stage, ins)
        handler = _CONFIG_DISPATCH.get(type(ins))
        if handler is None:
            raise ins.error(f"unsupported instruction {ins.keyword}")
        handler(build, stage, ins)
        return None


def _pinned_ref(ref: str, pinned: str) -> str:
    """Combine a resolver answer (a digest or a full reference) with ``ref``."""
    if not pinned:
        return ref
    if pinned.startswith("sha256:"):
        return ref.split("@", 1)[0] + "@" + pinned
    return normalize(pinned) if "@" not in pinned else pinned
