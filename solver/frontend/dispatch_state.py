"""The mutable state of one lowering run and of each stage while it is dispatched.

``BuildState`` holds what every stage shares (global args, build context, epoch, proxy
env); ``StageState`` is BuildKit's ``dispatchState``: the LLB state, image config, env and
build args of one stage, plus one record per dispatched instruction.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from solver.errors import DockerfileError
from solver.frontend.image_config import ImageConfig, ImageSnapshot
from solver.frontend.instructions import Instruction
from solver.frontend.shell_words import Lexer, WordError
from solver.llb import pb
from solver.llb.platform import Platform
from solver.llb.state import State


class Resolver(Protocol):
    def __call__(self, ref: str, platform: Platform) -> tuple[str, dict[str, Any]]:
        """Pin ``ref`` (``name:tag@sha256:...``) and return the image config for ``platform``."""


@dataclass
class LoweringOptions:
    """Inputs of a lowering that do not come from the Dockerfile."""

    build_args: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None  # target platform; host when None
    resolver: Resolver | Callable[[str, Platform], tuple[str, dict[str, Any]]] | None = None
    context_name: str = "context"
    context_git: str = ""  # a git URL given as the build context: the context is that git source
    session_id: str | None = None
    exclude_patterns: list[str] = field(default_factory=list)
    cache_id_namespace: str = ""
    follow_paths: bool = True  # restrict the context to the paths used (BuildKit's followpaths)
    labels: dict[str, str] = field(default_factory=dict)
    force_network: str = ""  # docker build --network: the network of a RUN that names none
    extra_hosts: list[tuple[str, str]] = field(default_factory=list)  # --add-host: (host, ip) of every RUN
    shm_size: int = 0  # --shm-size in bytes: a tmpfs on /dev/shm of every RUN when > 0
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)  # --ulimit: (name, soft, hard)
    no_cache_stages: list[str] | None = None  # --no-cache-filter: None none, [] every stage, else names

    def ignores_cache(self, stage_name: str) -> bool:
        """BuildKit's IsNoCache: an empty filter means every stage; names match case-insensitively."""
        if self.no_cache_stages is None:
            return False
        if not self.no_cache_stages:
            return True
        return any(n.lower() == stage_name.lower() for n in self.no_cache_stages)


@dataclass
class InstructionRecord:
    """What one instruction produced: the state and image config after it."""

    instruction: Instruction
    stage: str
    state: State
    image: ImageSnapshot
    vertex_names: list[str] = field(default_factory=list)  # llb.customname of the vertices it made
    is_onbuild: bool = False

    @property
    def line(self) -> int:
        return self.instruction.line

    @property
    def filename(self) -> str:
        return self.instruction.filename


@dataclass
class BuildState:
    """Shared by every stage of one lowering run."""

    options: LoweringOptions
    lexer: Lexer
    platform: Platform
    global_args: dict[str, str]
    epoch: int | None  # SOURCE_DATE_EPOCH in seconds
    proxy_env: pb.ProxyEnv | None
    context: State
    ctx_paths: set[str] = field(default_factory=set)
    resolved: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def resolve_image(self, ref: str, platform: Platform) -> tuple[str, dict[str, Any]] | None:
        """Pinned ref and config through the resolver (memoised per run); None without one."""
        resolver = self.options.resolver
        if resolver is None:
            return None
        key = f"{ref}|{platform}"
        if key not in self.resolved:
            self.resolved[key] = resolver(ref, platform)
        return self.resolved[key]

    @property
    def cache_namespace(self) -> str:
        """Prefix of cache mount IDs: the option, else the BUILDKIT_CACHE_MOUNT_NS build arg."""
        return self.options.cache_id_namespace or self.options.build_args.get("BUILDKIT_CACHE_MOUNT_NS", "")

    @property
    def timestamp(self) -> int:
        """FileOp timestamp: SOURCE_DATE_EPOCH in nanoseconds, else -1."""
        return self.epoch * 1_000_000_000 if self.epoch is not None else -1

    @property
    def history_created(self) -> str | None:
        if self.epoch is None:
            return None
        moment = datetime.datetime.fromtimestamp(self.epoch, tz=datetime.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ArgValue:
    key: str
    value: str | None


@dataclass
class StageState:
    """One stage while it is dispatched (BuildKit's ``dispatchState``)."""

    name: str  # shown in "[name i/n]"; "" when the build has one stage
    state: State
    image: ImageConfig
    platform: Platform
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    user: str = ""
    build_args: list[ArgValue] = field(default_factory=list)
    cmd_index: int = 0
    cmd_total: int | None = None
    cmd_set: bool = False
    records: list[InstructionRecord] = field(default_factory=list)
    dispatched: bool = False
    onbuild_expressions: list[str] = field(default_factory=list)
    is_onbuild: bool = False
    ignore_cache: bool = False  # --no-cache-filter names this stage: its RUNs ignore the cache

    # -- env -----------------------------------------------------------------------------
    def add_env(self, key: str, value: str) -> None:
        """Set a variable on the LLB state and in the expansion env (Go's ``AddEnv``)."""
        self.state = self.state.with_env(key, value)
        self.env.pop(key, None)
        self.env[key] = value

    def set_cwd(self, path: str) -> None:
        self.state = self.state.with_cwd(path)
        self.cwd = path

    def set_user(self, user: str) -> None:
        self.state = self.state.with_user(user)
        self.user = user

    def expand(self, word: str, ins: Instruction, lexer: Lexer, env: Mapping[str, str] | None = None) -> str:
        """``word`` expanded against ``env`` (default: the stage's env now)."""
        try:
            return lexer.process_word(word, self.env if env is None else env)
        except WordError as err:
            raise DockerfileError(str(err), ins.line, ins.filename) from None

    def expand_words(self, word: str, ins: Instruction, lexer: Lexer) -> list[str]:
        try:
            return lexer.process_words(word, self.env)
        except WordError as err:
            raise DockerfileError(str(err), ins.line, ins.filename) from None

    # -- names ---------------------------------------------------------------------------
    def prefix(self, text: str) -> str:
        """``[name i/n] text`` (BuildKit ``prefixCommand``)."""
        if not self.cmd_total:
            self.cmd_index += 1
            out = "["
            if self.name:
                out += self.name + " "
            out += f"{self.cmd_index}] "
        else:
            out = "["
            if self.name:
                out += self.name + " "
            self.cmd_index += 1
            width = int(1 + math.log10(self.cmd_total))
            out += f"{self.cmd_index:>{width}}/{self.cmd_total}] "
        if self.is_onbuild:
            out += "ONBUILD "
        return out + text

    def history(self, build: BuildState, text: str, *, layer: bool, buildkit_suffix: bool = False) -> None:
        if buildkit_suffix:
            text += " # buildkit"
        self.image.add_history(text, layer=layer, created=build.history_created)
