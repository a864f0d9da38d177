"""Runs BuildKit's build checks over a whole Dockerfile (``DockerfileLint`` and the lint calls of
``toDispatchState``): parse-time rules, stage names and casing, FROM arguments and platforms,
then the dispatch-time rules of every stage the build reaches (every stage for ``--check``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from solver.errors import DockerfileError, LLBookError
from solver.frontend.build_setup import apply_meta_args, default_args, format_platform, target_platform
from solver.frontend.checks import rules
from solver.frontend.checks.dispatch import DispatchContext, StageChecker, StageEnv, command_word
from solver.frontend.checks.linter import CheckWarning, Linter
from solver.frontend.checks.options import CheckOptionError, directive_options
from solver.frontend.checks.source_scan import comments_before, empty_continuations
from solver.frontend.checks.suggest import suggest
from solver.frontend.image_config import DEFAULT_PATH_ENV, ImageConfig
from solver.frontend.instructions import ArgInstruction, FromInstruction, Instruction, parse_instruction
from solver.frontend.parser import Node, ParsedDockerfile, parse_dockerfile
from solver.frontend.shell_words import Lexer, WordError
from solver.frontend.stages import SCRATCH, Stage, build_graph, split_stages
from solver.llb.platform import Platform
from solver.llb.reference import normalize
from solver.llb.patternmatch import PatternMatcher

Resolver = Callable[[str, Platform], tuple[str, dict[str, Any]]]
RESERVED_STAGE_NAMES = ("context", "scratch")


@dataclass
class CheckResult:
    """The warnings of one Dockerfile, and the error that stopped the checks if any."""

    warnings: list[CheckWarning]
    error: DockerfileError | None
    source: str
    filename: str
    violation: bool = False  # the error is check=error=true's "lint violation found"

    @property
    def failed(self) -> bool:
        return bool(self.warnings) or self.error is not None


@dataclass
class CheckInputs:
    """What besides the text decides the warnings."""

    filename: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    all_stages: bool = True  # --check: every stage; a build: only the stages the target needs
    platform: Platform | str | None = None
    resolver: Resolver | None = None  # base image configs (env, shell, platform); PATH only without
    ignore_patterns: list[str] = field(default_factory=list)  # .dockerignore, for CopyIgnoredFile


def check_dockerfile(text: str, inputs: CheckInputs | None = None) -> CheckResult:
    """All warnings of ``text``; a Dockerfile BuildKit would refuse ends the checks with ``error`` set."""
    inputs = inputs or CheckInputs()
    run = _Run(text, inputs)
    error: DockerfileError | None = None
    violation = False
    try:
        run.check()
    except DockerfileError as err:
        error = err
    if error is None and run.lint is not None:
        error = run.lint.error()
        violation = error is not None
    warnings = run.lint.warnings if run.lint is not None else []
    return CheckResult(sorted(warnings, key=lambda w: (w.start_line, w.message)), error, text, inputs.filename,
                       violation)


class _Run:
    """One pass of the checks; ``lint`` holds the warnings found so far."""

    def __init__(self, text: str, inputs: CheckInputs) -> None:
        self.text = text
        self.inputs = inputs
        self.lint: Linter | None = None
        self.parsed: ParsedDockerfile | None = None
        self.comments: dict[int, list[str]] = {}

    def check(self) -> None:
        if not self.text.strip():
            raise DockerfileError("the Dockerfile cannot be empty", None, self.inputs.filename)
        self.parsed = parse_dockerfile(self.text, self.inputs.filename)
        try:
            options = directive_options(self.parsed.directives, self.inputs.build_args)
        except CheckOptionError as err:
            raise DockerfileError(str(err), None, self.inputs.filename) from None
        self.lint = Linter(options, self.inputs.filename)
        self.comments = comments_before(self.text, self.parsed)
        for found in empty_continuations(self.text, self.parsed):
            self.lint.run(rules.NO_EMPTY_CONTINUATION, (found.line, found.line))
        instructions = [self._parse(node) for node in self.parsed.nodes]
        meta, groups = split_stages(instructions, self.inputs.filename)
        heads = [group[0] for group in groups if isinstance(group[0], FromInstruction)]
        self._stage_names(heads)
        self._casing(groups)
        self._stages(meta, groups, heads)

    def _lint_for(self, line: int) -> Linter:
        assert self.lint is not None
        return self.lint.with_comments(self.comments.get(line, []))

    # -- parse time (``ParseInstructionWithLinter``) ---------------------------------

    def _parse(self, node: Node) -> Instruction:
        lint = self._lint_for(node.start_line)
        lines = (node.start_line, node.end_line)
        if node.keyword == "MAINTAINER":
            lint.run(rules.MAINTAINER_DEPRECATED, lines)
        if node.keyword == "FROM":
            self._from_casing(node, lint, lines)
        ins = parse_instruction(node)
        comments = self.comments.get(node.start_line, [])
        if isinstance(ins, FromInstruction) and ins.stage_name:
            _definition_description(lint, lines, "FROM", [ins.stage_name], comments)
        elif isinstance(ins, ArgInstruction):
            _definition_description(lint, lines, "ARG", [a.key for a in ins.args], comments)
        return ins

    @staticmethod
    def _from_casing(node: Node, lint: Linter, lines: tuple[int, int]) -> None:
        args = node.args
        if len(args) == 3 and args[2] != args[2].lower():
            lint.run(rules.STAGE_NAME_CASING, lines, args[2])
        if len(args) < 3:
            return
        command = node.original.split(None, 1)[0]
        if command == command.lower():
            if args[1] != args[1].lower():
                lint.run(rules.FROM_AS_CASING, lines, command, args[1])
        elif command == command.upper() and args[1] != args[1].upper():
            lint.run(rules.FROM_AS_CASING, lines, command, args[1])

    # -- whole file (``validateStageNames``, ``validateCommandCasing``) ---------------

    def _stage_names(self, heads: list[FromInstruction]) -> None:
        assert self.lint is not None
        seen: set[str] = set()
        for head in heads:
            name = head.stage_name
            if not name:
                continue
            if name in RESERVED_STAGE_NAMES:
                self.lint.run(rules.RESERVED_STAGE_NAME, (head.line, head.end_line), name)
            if name in seen:
                self.lint.run(rules.DUPLICATE_STAGE_NAME, (head.line, head.end_line), name)
            seen.add(name)

    def _casing(self, groups: list[list[Instruction]]) -> None:
        assert self.lint is not None
        words = [(command_word(ins), ins) for group in groups for ins in group]
        consistent = [w for w, _ in words if w in (w.lower(), w.upper())]
        lower = sum(1 for w in consistent if w == w.lower())
        majority_lower = lower > len(consistent) - lower
        for word, ins in words:
            if majority_lower and word != word.lower():
                self.lint.run(rules.CONSISTENT_INSTRUCTION_CASING, (ins.line, ins.end_line), word, "lowercase")
            elif not majority_lower and word != word.upper():
                self.lint.run(rules.CONSISTENT_INSTRUCTION_CASING, (ins.line, ins.end_line), word, "uppercase")

    # -- stages ----------------------------------------------------------------------

    def _stages(self, meta: list[ArgInstruction], groups: list[list[Instruction]],
                heads: list[FromInstruction]) -> None:
        assert self.parsed is not None and self.lint is not None
        lexer = Lexer(escape_token=self.parsed.escape)
        platform = target_platform(self.inputs.platform)
        build_args = dict(self.inputs.build_args)
        defaults = default_args(platform, build_args, self.inputs.target or heads[-1].stage_name)
        self._default_bases(heads, meta, defaults, lexer)
        global_args = apply_meta_args(defaults, meta, build_args, lexer)
        known = list(dict.fromkeys([*global_args, *(a.key for ins in meta for a in ins.args)]))
        platforms = [self._from_args(head, lexer, global_args, known, platform) for head in heads]
        graph = build_graph(meta, groups, global_args, lexer)
        target = graph.target(self.inputs.target, self.inputs.filename)
        wanted = {s.index for s in graph.stages} if self.inputs.all_stages else {
            s.index for s in graph.reachable(target)}
        ctx = DispatchContext(lexer, global_args, build_args, self._ignore())
        envs: dict[int, StageEnv] = {}
        for stage in graph.stages:
            if stage.implicit or stage.index not in wanted:
                continue
            envs[stage.index] = self._dispatch_stage(stage, envs, ctx, platforms[stage.index])

    def _default_bases(self, heads: list[FromInstruction], meta: list[ArgInstruction], defaults: dict[str, str],
                       lexer: Lexer) -> None:
        """``validateBaseImagesWithDefaultArgs``: the base names with no build args given."""
        assert self.lint is not None
        try:
            args = apply_meta_args(defaults, meta, {}, lexer)
        except DockerfileError:
            return
        for head in heads:
            try:
                name = lexer.process_word(head.base_name, args)
            except WordError:
                return
            try:
                normalize(name)
            except (LLBookError, ValueError):
                self.lint.run(rules.INVALID_DEFAULT_ARG_IN_FROM, (head.line, head.end_line), head.base_name)

    def _from_args(self, head: FromInstruction, lexer: Lexer, global_args: dict[str, str], known: list[str],
                   platform: Platform) -> Platform:
        """UndefinedArgInFrom, RedundantTargetPlatform and FromPlatformFlagConstDisallowed of one FROM."""
        lint = self._lint_for(head.line)
        lines = (head.line, head.end_line)
        try:
            _, _, unmatched = lexer.process_word_with_matches(head.base_name, global_args)
        except WordError:
            return platform
        _undeclared(lint, lines, unmatched, known)
        if not head.platform:
            return platform
        try:
            result, matched, unmatched = lexer.process_word_with_matches(head.platform, global_args)
        except WordError:
            return platform
        _undeclared(lint, lines, unmatched, known)
        if matched == {"TARGETPLATFORM"} and not unmatched and result == global_args.get("TARGETPLATFORM"):
            lint.run(rules.REDUNDANT_TARGET_PLATFORM, lines, head.platform)
        try:
            parsed = Platform.parse(result)
        except (LLBookError, ValueError):
            return platform
        if not matched and not unmatched and parsed.os not in head.stage_name \
                and parsed.architecture not in head.stage_name:
            lint.run(rules.FROM_PLATFORM_FLAG_CONST_DISALLOWED, lines, result)
        return parsed

    def _ignore(self) -> PatternMatcher | None:
        patterns = self.inputs.ignore_patterns
        return PatternMatcher(patterns) if patterns else None

    def _dispatch_stage(self, stage: Stage, envs: dict[int, StageEnv], ctx: DispatchContext,
                        platform: Platform) -> StageEnv:
        if stage.base is not None and stage.base.index in envs:
            env = envs[stage.base.index].inherit()
        else:
            env = self._image_env(stage, platform)
        checker = StageChecker(ctx, env)
        for ins in stage.instructions:
            checker.dispatch(ins, self._lint_for(ins.line))
        return env

    def _image_env(self, stage: Stage, platform: Platform) -> StageEnv:
        """Env and shell of a base image through the resolver; PATH is always set."""
        image = ImageConfig.empty(platform.os, platform.architecture, platform.variant)
        head = stage.from_instruction
        if self.inputs.resolver is not None and stage.base_name.lower() != SCRATCH and head is not None:
            try:
                ref = normalize(stage.base_name)
                _, config = self.inputs.resolver(ref, platform)
            except Exception as err:  # the resolver talks to registries: report where it was needed
                raise head.error(f"failed to resolve source metadata for {stage.base_name}: {err}") from None
            image = ImageConfig.from_dict(config)
            if (image.os, image.architecture) != (platform.os, platform.architecture):
                actual = Platform(image.os, image.architecture, image.variant).normalize()
                assert self.lint is not None
                self.lint.run(rules.INVALID_BASE_IMAGE_PLATFORM, (head.line, head.end_line), stage.base_name,
                              format_platform(platform.normalize()), format_platform(actual))
        env: dict[str, str] = {}
        for item in image.config.env:
            key, _, value = item.partition("=")
            env[key] = value
        if "PATH" not in env and platform.os != "windows":
            env["PATH"] = DEFAULT_PATH_ENV
        return StageEnv(env, list(image.config.shell))


def _undeclared(lint: Linter, lines: tuple[int, int], unmatched: set[str], known: list[str]) -> None:
    for name in sorted(unmatched):
        if name not in known:
            lint.run(rules.UNDEFINED_ARG_IN_FROM, lines, name, suggest(name, known))


def _definition_description(lint: Linter, lines: tuple[int, int], kind: str, keys: list[str],
                            comments: list[str]) -> None:
    """``validateDefinitionDescription`` (experimental): a comment right above names what it describes."""
    if not comments or not keys:
        return
    if comments[-1].split(" ")[0] in keys:
        return
    lint.run(rules.INVALID_DEFINITION_DESCRIPTION, lines, kind, keys[0] if len(keys) == 1 else "<arg_key>")
