"""Typed Dockerfile instructions with flags and validation (BuildKit ``instructions/parse.go``).

Values are kept as written; variable expansion happens during lowering, where the
environment of the stage is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from solver.errors import DockerfileError, shorten
from solver.frontend.flags import FlagError, FlagType, ParsedFlags, parse_flags
from solver.frontend.gofmt import parse_go_duration
from solver.frontend.heredoc import Heredoc, chomp_content, parse_heredoc
from solver.frontend.mounts import MountError, mount_from
from solver.frontend.parser import Node, ParsedDockerfile

_STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9\-_.]*\Z")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")
KNOWN_INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
                      "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


@dataclass
class Instruction:
    """Common part: the keyword, the source text and where it came from."""

    keyword: str
    code: str  # the instruction as written, continuations joined and trimmed
    line: int  # 1-based start line
    end_line: int
    filename: str

    def error(self, message: str) -> DockerfileError:
        return DockerfileError(message, self.line, self.filename)


@dataclass
class KeyValue:
    key: str
    value: str
    no_delim: bool = False  # legacy "ENV k v" form


@dataclass
class ArgDef:
    key: str
    value: str | None  # default, unexpanded


@dataclass
class FromInstruction(Instruction):
    base_name: str = ""
    stage_name: str = ""
    platform: str = ""


@dataclass
class ShellCommandLine:
    """CMD/ENTRYPOINT/RUN arguments: exec form, or shell form that gets the shell prepended."""

    args: list[str] = field(default_factory=list)
    prepend_shell: bool = True
    files: list[Heredoc] = field(default_factory=list)


@dataclass
class RunInstruction(Instruction):
    cmd: ShellCommandLine = field(default_factory=ShellCommandLine)
    mounts: list[str] = field(default_factory=list)  # raw --mount values
    mount_froms: list[str] = field(default_factory=list)
    network: str = "default"
    security: str = "sandbox"


@dataclass
class CmdInstruction(Instruction):
    cmd: ShellCommandLine = field(default_factory=ShellCommandLine)


@dataclass
class EntrypointInstruction(Instruction):
    cmd: ShellCommandLine = field(default_factory=ShellCommandLine)


@dataclass
class EnvInstruction(Instruction):
    pairs: list[KeyValue] = field(default_factory=list)


@dataclass
class LabelInstruction(Instruction):
    pairs: list[KeyValue] = field(default_factory=list)


@dataclass
class ArgInstruction(Instruction):
    args: list[ArgDef] = field(default_factory=list)


@dataclass
class ExposeInstruction(Instruction):
    ports: list[str] = field(default_factory=list)


@dataclass
class UserInstruction(Instruction):
    user: str = ""


@dataclass
class WorkdirInstruction(Instruction):
    path: str = ""


@dataclass
class SourceContent:
    """An inline (heredoc) source of COPY/ADD."""

    path: str
    data: str
    expand: bool


@dataclass
class CopyInstruction(Instruction):
    """COPY and ADD (``is_add``)."""

    is_add: bool = False
    sources: list[str] = field(default_factory=list)
    contents: list[SourceContent] = field(default_factory=list)
    dest: str = ""
    from_: str = ""
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: list[str] = field(default_factory=list)
    parents: bool = False
    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@dataclass
class VolumeInstruction(Instruction):
    volumes: list[str] = field(default_factory=list)


@dataclass
class StopSignalInstruction(Instruction):
    signal: str = ""


@dataclass
class HealthcheckInstruction(Instruction):
    test: list[str] = field(default_factory=list)
    interval: int = 0  # nanoseconds
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass
class ShellInstruction(Instruction):
    shell: list[str] = field(default_factory=list)


@dataclass
class OnbuildInstruction(Instruction):
    expression: str = ""


@dataclass
class MaintainerInstruction(Instruction):
    maintainer: str = ""


# -- parsing ------------------------------------------------------------------------

def parse_instruction(node: Node) -> Instruction:
    """Turn a parser node into a typed instruction; raises ``DockerfileError``."""
    parser = _PARSERS.get(node.keyword)
    if parser is None:
        raise DockerfileError(f"unknown instruction: {shorten(node.keyword)}", node.start_line, node.filename)
    try:
        return parser(node)
    except (FlagError, MountError, ValueError) as err:
        raise DockerfileError(str(err), node.start_line, node.filename) from None


def parse_instructions(parsed: ParsedDockerfile) -> list[Instruction]:
    return [parse_instruction(node) for node in parsed.nodes]


def _base(node: Node) -> dict:
    return {"keyword": node.keyword, "code": node.original.strip(), "line": node.start_line,
            "end_line": node.end_line, "filename": node.filename}


def _flags(node: Node, spec: dict[str, FlagType]) -> ParsedFlags:
    return parse_flags(node.flags, spec)


def _need_exactly_one(node: Node) -> str:
    if len(node.args) != 1:
        raise ValueError(f"{node.keyword} requires exactly one argument")
    return node.args[0]


def _need_some(node: Node) -> None:
    if not node.args:
        raise ValueError(f"{node.keyword} requires at least one argument")


def _parse_from(node: Node) -> FromInstruction:
    args = node.args
    stage = ""
    if len(args) == 3 and args[1].lower() == "as":
        stage = args[2].lower()
        if not _STAGE_NAME_RE.match(stage):
            raise ValueError(f'invalid name for build stage: "{args[2]}", name can\'t start with a number or '
                             "contain symbols")
    elif len(args) != 1:
        raise ValueError("FROM requires either one or three arguments")
    flags = _flags(node, {"platform": FlagType.STRING})
    return FromInstruction(**_base(node), base_name=args[0], stage_name=stage, platform=flags.string("platform"))


def _command_line(node: Node, empty_as_nil: bool) -> ShellCommandLine:
    args = list(node.args)
    if not node.json_form and args:
        args = [args[0]]
    return ShellCommandLine(args=[] if (empty_as_nil and not args) else args,
                            prepend_shell=not node.json_form, files=list(node.heredocs))


def _parse_run(node: Node) -> RunInstruction:
    flags = _flags(node, {"mount": FlagType.STRINGS, "network": FlagType.STRING, "security": FlagType.STRING,
                          "device": FlagType.STRINGS})
    network = flags.string("network", "default")
    if network not in NETWORK_MODES:
        raise ValueError(f'invalid network mode "{network}"')
    security = flags.string("security", "sandbox")
    if security not in SECURITY_MODES:
        raise ValueError(f'security "{security}" is not valid')
    if not node.args:
        raise ValueError("RUN requires at least one argument")
    mounts = flags.strings("mount")
    cmd = _command_line(node, False)
    if cmd.files and (len(cmd.args) != 1 or not cmd.prepend_shell):
        raise ValueError(f"parsing produced an invalid run command: {cmd.args}")
    return RunInstruction(**_base(node), cmd=cmd, mounts=mounts,
                          mount_froms=[mount_from(m) for m in mounts], network=network, security=security)


def _parse_cmd(node: Node) -> CmdInstruction:
    _flags(node, {})
    return CmdInstruction(**_base(node), cmd=_command_line(node, False))


def _parse_entrypoint(node: Node) -> EntrypointInstruction:
    _flags(node, {})
    return EntrypointInstruction(**_base(node), cmd=_command_line(node, True))


def _kv_pairs(node: Node) -> list[KeyValue]:
    args = node.args
    if not args:
        raise ValueError(f"{node.keyword} requires at least one argument")
    pairs = []
    for index in range(0, len(args), 2):
        if not args[index]:
            raise ValueError(f"{node.keyword} names can not be blank")
        pairs.append(KeyValue(args[index], args[index + 1], not node.kv_delims[index // 2]))
    return pairs


def _parse_env(node: Node) -> EnvInstruction:
    _flags(node, {})
    return EnvInstruction(**_base(node), pairs=_kv_pairs(node))


def _parse_label(node: Node) -> LabelInstruction:
    _flags(node, {})
    return LabelInstruction(**_base(node), pairs=_kv_pairs(node))


def _parse_arg(node: Node) -> ArgInstruction:
    _need_some(node)
    defs = []
    for word in node.args:
        if "=" in word:
            key, value = word.split("=", 1)
            if not key:
                raise ValueError("ARG names can not be blank")
            defs.append(ArgDef(key, value))
        else:
            defs.append(ArgDef(word, None))
    return ArgInstruction(**_base(node), args=defs)


def _parse_expose(node: Node) -> ExposeInstruction:
    _need_some(node)
    _flags(node, {})
    return ExposeInstruction(**_base(node), ports=sorted(node.args))


def _parse_user(node: Node) -> UserInstruction:
    user = _need_exactly_one(node)
    _flags(node, {})
    return UserInstruction(**_base(node), user=user)


def _parse_workdir(node: Node) -> WorkdirInstruction:
    path = _need_exactly_one(node)
    _flags(node, {})
    return WorkdirInstruction(**_base(node), path=path)


def _sources_and_dest(node: Node) -> tuple[list[str], list[SourceContent], str]:
    if len(node.args) < 2:
        raise ValueError(f"{node.keyword} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined")
    *srcs, dest = node.args
    if parse_heredoc(dest) is not None:
        raise ValueError(f"{node.keyword} cannot accept a heredoc as a destination")
    by_name = {doc.name: doc for doc in node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = parse_heredoc(src)
        if doc is None:
            paths.append(src)
            continue
        body = by_name.get(doc.name)
        data = body.content if body is not None else ""
        if doc.chomp:
            data = chomp_content(data)
        contents.append(SourceContent(doc.name, data, doc.expand))
    return paths, contents, dest


def _parse_copy(node: Node) -> CopyInstruction:
    is_add = node.keyword == "ADD"
    if len(node.args) < 2:
        _sources_and_dest(node)
    spec = {"chown": FlagType.STRING, "chmod": FlagType.STRING, "link": FlagType.BOOL,
            "exclude": FlagType.STRINGS}
    if is_add:
        spec.update({"keep-git-dir": FlagType.BOOL, "checksum": FlagType.STRING, "unpack": FlagType.BOOL})
    else:
        spec.update({"from": FlagType.STRING, "parents": FlagType.BOOL})
    flags = _flags(node, spec)
    paths, contents, dest = _sources_and_dest(node)
    return CopyInstruction(
        **_base(node), is_add=is_add, sources=paths, contents=contents, dest=dest,
        from_=flags.string("from"), chown=flags.string("chown"), chmod=flags.string("chmod"),
        link=flags.boolean("link"), excludes=flags.strings("exclude"), parents=flags.boolean("parents"),
        checksum=flags.string("checksum"),
        keep_git_dir=flags.boolean("keep-git-dir") if flags.given("keep-git-dir") else None,
        unpack=flags.boolean("unpack") if flags.given("unpack") else None,
    )


def _parse_volume(node: Node) -> VolumeInstruction:
    _need_some(node)
    _flags(node, {})
    volumes = []
    for value in node.args:
        value = value.strip()
        if not value:
            raise ValueError("VOLUME specified can not be an empty string")
        volumes.append(value)
    return VolumeInstruction(**_base(node), volumes=volumes)


def _parse_stopsignal(node: Node) -> StopSignalInstruction:
    return StopSignalInstruction(**_base(node), signal=_need_exactly_one(node))


def _interval(flags: ParsedFlags, name: str) -> int:
    text = flags.string(name)
    if not text:
        return 0
    nanos = parse_go_duration(text)
    if nanos == 0:
        return 0
    if nanos < 1_000_000:
        raise ValueError(f'Interval "{name}" cannot be less than 1ms')
    return nanos


def _parse_healthcheck(node: Node) -> HealthcheckInstruction:
    _need_some(node)
    kind = node.args[0].upper()
    rest = node.args[1:]
    if kind == "NONE":
        if rest:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return HealthcheckInstruction(**_base(node), test=["NONE"])
    flags = _flags(node, {name: FlagType.STRING for name in
                          ("interval", "timeout", "start-period", "start-interval", "retries")})
    if kind != "CMD":
        raise ValueError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    cmd = rest if node.json_form else rest[:1]
    if not cmd:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    test = ["CMD" if node.json_form else "CMD-SHELL", *cmd]
    return HealthcheckInstruction(
        **_base(node), test=test, interval=_interval(flags, "interval"), timeout=_interval(flags, "timeout"),
        start_period=_interval(flags, "start-period"), start_interval=_interval(flags, "start-interval"),
        retries=_retries(flags.string("retries")))


def _retries(text: str) -> int:
    if not text:
        return 0
    try:
        value = int(text, 10)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None
    if value < 0:
        raise ValueError(f"--retries cannot be negative ({value})")
    if value >= 2 ** 31:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def _parse_shell(node: Node) -> ShellInstruction:
    _flags(node, {})
    if not node.args:
        raise ValueError("SHELL requires at least one argument")
    if not node.json_form:
        raise ValueError(f"SHELL requires the arguments to be in JSON form: {node.original}")
    return ShellInstruction(**_base(node), shell=list(node.args))


def _parse_onbuild(node: Node) -> OnbuildInstruction:
    if not node.args:
        raise ValueError("ONBUILD requires at least one argument")
    _flags(node, {})
    trigger = node.child.keyword if node.child is not None else ""
    if trigger == "ONBUILD":
        raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return OnbuildInstruction(**_base(node), expression=expression)


def _parse_maintainer(node: Node) -> MaintainerInstruction:
    maintainer = _need_exactly_one(node)
    _flags(node, {})
    return MaintainerInstruction(**_base(node), maintainer=maintainer)


_PARSERS: dict[str, Callable[[Node], Instruction]] = {
    "ADD": _parse_copy, "ARG": _parse_arg, "CMD": _parse_cmd, "COPY": _parse_copy,
    "ENTRYPOINT": _parse_entrypoint, "ENV": _parse_env, "EXPOSE": _parse_expose, "FROM": _parse_from,
    "HEALTHCHECK": _parse_healthcheck, "LABEL": _parse_label, "MAINTAINER": _parse_maintainer,
    "ONBUILD": _parse_onbuild, "RUN": _parse_run, "SHELL": _parse_shell, "STOPSIGNAL": _parse_stopsignal,
    "USER": _parse_user, "VOLUME": _parse_volume, "WORKDIR": _parse_workdir,
}
