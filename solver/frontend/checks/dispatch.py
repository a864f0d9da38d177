"""The checks that need a stage's environment, run instruction by instruction as BuildKit's
``dispatch`` runs them: undefined variables, legacy ENV/LABEL form, secrets in ARG/ENV,
JSON arguments, repeated CMD/ENTRYPOINT/HEALTHCHECK, relative WORKDIR, EXPOSE formats and
COPY of ignored files."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from typing import Mapping

from solver.errors import DockerfileError
from solver.frontend.checks import rules
from solver.frontend.checks.linter import Linter
from solver.frontend.checks.suggest import suggest
from solver.frontend.instructions import (ArgInstruction, CmdInstruction, CopyInstruction, EntrypointInstruction,
                                          EnvInstruction, ExposeInstruction, HealthcheckInstruction, Instruction,
                                          LabelInstruction, RunInstruction, ShellInstruction,
                                          StopSignalInstruction, UserInstruction, VolumeInstruction,
                                          WorkdirInstruction)
from solver.frontend.shell_words import Lexer, WordError
from solver.llb import gopath
from solver.llb.patternmatch import PatternMatcher

NON_ENV_ARGS = frozenset({"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"})
_SECRET_WORDS = ("apikey", "auth", "credential", "credentials", "key", "password", "pword", "passwd", "secret",
                 "token")
_SECRET_RE = re.compile(r"(?:_|^)(?:" + "|".join(_SECRET_WORDS) + r")(?:_|$)", re.IGNORECASE)
_SECRET_ALLOW_RE = re.compile(r"(?:_|^)(?:public|file|version)(?:_|$)", re.IGNORECASE)
_ROOT_PATTERNS = frozenset({"*", "**", "**/*"})


@dataclass
class StageEnv:
    """What the checks track through one stage (a slice of BuildKit's ``dispatchState``)."""

    env: dict[str, str]
    shell: list[str] = field(default_factory=list)
    build_args: list[str] = field(default_factory=list)  # ARG names declared in the stage
    workdir_set: bool = False
    once: dict[str, tuple[int, int]] = field(default_factory=dict)  # CMD/ENTRYPOINT/HEALTHCHECK → last lines

    def inherit(self) -> "StageEnv":
        """A stage built FROM this one: environment, shell, ARGs and the WORKDIR mark carry over."""
        return StageEnv(dict(self.env), list(self.shell), list(self.build_args), self.workdir_set)


@dataclass
class DispatchContext:
    """Build-wide inputs of the dispatch checks."""

    lexer: Lexer
    global_args: Mapping[str, str]
    build_arg_values: Mapping[str, str]
    ignore: PatternMatcher | None = None


def _lines(ins: Instruction) -> tuple[int, int]:
    return ins.line, ins.end_line


def command_word(ins: Instruction) -> str:
    """The instruction's keyword as written (``cmd.Name()``)."""
    return ins.code.split(None, 1)[0] if ins.code else ins.keyword


class StageChecker:
    """Runs the dispatch-time checks of one stage's instructions, updating its ``StageEnv``."""

    def __init__(self, ctx: DispatchContext, stage: StageEnv) -> None:
        self.ctx = ctx
        self.stage = stage

    def dispatch(self, ins: Instruction, lint: Linter) -> None:
        """Check ``ins``; raises ``DockerfileError`` where BuildKit's dispatch would fail."""
        try:
            self._dispatch(ins, lint)
        except WordError as err:
            raise ins.error(str(err)) from None

    def _expand(self, ins: Instruction, lint: Linter, word: str) -> str:
        """Expand one word against the stage env and report its undefined variables."""
        result, _matched, unmatched = self.ctx.lexer.process_word_with_matches(word, self.stage.env)
        self._report_unmatched(ins, lint, unmatched)
        return result

    def _report_unmatched(self, ins: Instruction, lint: Linter, unmatched: set[str]) -> None:
        names = [n for n in sorted(unmatched) if n not in self.stage.build_args and n not in NON_ENV_ARGS]
        for name in names:
            lint.run(rules.UNDEFINED_VAR, _lines(ins), name, suggest(name, self.stage.env))

    def _dispatch(self, ins: Instruction, lint: Linter) -> None:
        if isinstance(ins, EnvInstruction):
            self._env(ins, lint)
        elif isinstance(ins, LabelInstruction):
            for pair in ins.pairs:
                self._expand(ins, lint, pair.key)
                self._expand(ins, lint, pair.value)
                if pair.no_delim:
                    lint.run(rules.LEGACY_KEY_VALUE_FORMAT, _lines(ins), command_word(ins))
        elif isinstance(ins, ArgInstruction):
            self._arg(ins, lint)
        elif isinstance(ins, WorkdirInstruction):
            self._workdir(ins, lint)
        elif isinstance(ins, (CmdInstruction, EntrypointInstruction)):
            self._used_once(ins, lint)
            if ins.cmd.prepend_shell and not self.stage.shell:
                lint.run(rules.JSON_ARGS_RECOMMENDED, _lines(ins), command_word(ins))
        elif isinstance(ins, HealthcheckInstruction):
            self._used_once(ins, lint)
        elif isinstance(ins, ShellInstruction):
            self.stage.shell = list(ins.shell)
        elif isinstance(ins, ExposeInstruction):
            self._expose(ins, lint)
        elif isinstance(ins, UserInstruction):
            self._expand(ins, lint, ins.user)
        elif isinstance(ins, VolumeInstruction):
            for volume in ins.volumes:
                self._expand(ins, lint, volume)
        elif isinstance(ins, StopSignalInstruction):
            self._expand(ins, lint, ins.signal)
        elif isinstance(ins, RunInstruction):
            for mount in ins.mounts:
                for value in _mount_values(mount):
                    self._expand(ins, lint, value)
        elif isinstance(ins, CopyInstruction):
            self._copy(ins, lint)

    def _env(self, ins: EnvInstruction, lint: Linter) -> None:
        expanded = [(self._expand(ins, lint, p.key), self._expand(ins, lint, p.value), p.no_delim)
                    for p in ins.pairs]
        for key, value, no_delim in expanded:
            if no_delim:
                lint.run(rules.LEGACY_KEY_VALUE_FORMAT, _lines(ins), command_word(ins))
            _check_secret(lint, ins, "ENV", key)
            self.stage.env.pop(key, None)
            self.stage.env[key] = value

    def _arg(self, ins: ArgInstruction, lint: Linter) -> None:
        for arg in ins.args:
            _check_secret(lint, ins, "ARG", arg.key)
            value = arg.value
            if arg.key in self.ctx.build_arg_values:
                value = self.ctx.build_arg_values[arg.key]
            elif value is not None:
                result, _m, unmatched = self.ctx.lexer.process_word_with_matches(value, self.stage.env)
                self._report_unmatched(ins, lint, unmatched)
                value = result
            elif arg.key in self.ctx.global_args:
                value = self.ctx.global_args[arg.key]
            if value is not None and arg.key not in NON_ENV_ARGS:
                self.stage.env.pop(arg.key, None)
                self.stage.env[arg.key] = value
            self.stage.build_args.append(arg.key)

    def _workdir(self, ins: WorkdirInstruction, lint: Linter) -> None:
        path = self._expand(ins, lint, ins.path)
        if not self.stage.workdir_set and not path.startswith("/"):
            lint.run(rules.WORKDIR_RELATIVE_PATH, _lines(ins), path)
        self.stage.workdir_set = True

    def _used_once(self, ins: Instruction, lint: Linter) -> None:
        """The earlier CMD/ENTRYPOINT/HEALTHCHECK is the one that is ignored: report it."""
        kind = ins.keyword
        if kind in self.stage.once:
            lint.run(rules.MULTIPLE_INSTRUCTIONS_DISALLOWED, self.stage.once[kind], command_word(ins))
        self.stage.once[kind] = _lines(ins)

    def _expose(self, ins: ExposeInstruction, lint: Linter) -> None:
        for raw in ins.ports:
            for port in self.ctx.lexer.process_words(raw, self.stage.env):
                ip, host_port, container = _split_port(port)
                _, _, proto = container.partition("/")
                if proto != proto.lower():
                    lint.run(rules.EXPOSE_PROTO_CASING, _lines(ins), port)
                if ip or host_port:
                    lint.run(rules.EXPOSE_INVALID_FORMAT, _lines(ins), port)

    def _copy(self, ins: CopyInstruction, lint: Linter) -> None:
        words = [ins.chown, ins.chmod] + ([ins.checksum] if ins.is_add else [])
        for word in words:
            self._expand(ins, lint, word)
        sources = [self._expand(ins, lint, src) for src in ins.sources]
        self._expand(ins, lint, ins.dest)
        for content in ins.contents:
            if content.expand:
                self._expand(ins, lint, content.data)
        if ins.from_ or self.ctx.ignore is None:
            return
        for src in sources:
            if not _is_remote(src):
                _check_ignored(lint, ins, self.ctx.ignore, src)


def _check_secret(lint: Linter, ins: Instruction, kind: str, key: str) -> None:
    if _SECRET_RE.search(key) and not _SECRET_ALLOW_RE.search(key):
        lint.run(rules.SECRETS_USED_IN_ARG_OR_ENV, _lines(ins), kind, key)


def _split_port(raw: str) -> tuple[str, str, str]:
    """``[ip:]host:container`` parts of an EXPOSE value (``splitParts``)."""
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _mount_values(mount: str) -> list[str]:
    """The values of a ``--mount`` flag's ``key=value`` fields, which BuildKit expands."""
    try:
        fields = next(csv.reader([mount]), [])
    except csv.Error:
        return []
    return [value for key, sep, value in (f.partition("=") for f in fields) if sep]


def _is_remote(src: str) -> bool:
    return "://" in src or src.startswith("git@")


def _check_ignored(lint: Linter, ins: CopyInstruction, ignore: PatternMatcher, src: str) -> None:
    """``validateCopySourcePath``: only without exclusions, whose effect cannot be known statically."""
    if not ignore.patterns or ignore.exclusions:
        return
    path = gopath.clean(src)
    if path in (".", "/") and not any(not p.exclusion and str(p) in _ROOT_PATTERNS for p in ignore.patterns):
        return
    if ignore.matches_or_parent_matches(path):
        lint.run(rules.COPY_IGNORED_FILE, _lines(ins), "Add" if ins.is_add else "Copy", path)
