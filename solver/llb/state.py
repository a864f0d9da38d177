"""The immutable, chainable State API (models: Go's `client/llb`, Dagger's Python SDK).

    st = llb.image("busybox").with_env("A", "1").run("echo hi > /x", shell=True).root()
    definition = st.marshal()

A State is an output of a vertex plus the values Go keeps on a state: env, working
directory, user, platform and the exec settings. Every method returns a new State.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from solver.errors import LLBookError
from solver.llb import gopath, pb
from solver.llb.exec import (BindMount, CacheMount, ExecMeta, ExecVertex, FsMount, MountSpec, SecretMount,
                             SSHMount, TmpfsMount)
from solver.llb.fileop import FileAction, FileVertex
from solver.llb.pb import NetMode, SecurityMode
from solver.llb.platform import Platform
from solver.llb.vertex import MarshalContext, OpOptions, Output, Vertex, marshal_definition

DEFAULT_SHELL = ("/bin/sh", "-c")


class EnvList:
    """Go's llb `EnvList`: a persistent chain of settings, so that setting a key is O(1).

    Iterating yields the `(key, value)` pairs in order, a replaced key at the end (as Go
    orders it); the pairs are worked out once per node, when first asked for.
    """

    __slots__ = ("_parent", "_key", "_value", "_pairs")

    def __init__(self, pairs: Iterable[tuple[str, str]] = (), *, _parent: "EnvList | None" = None,
                 _key: str = "", _value: str | None = None) -> None:
        self._parent, self._key, self._value = _parent, _key, _value
        self._pairs: tuple[tuple[str, str], ...] | None = None if _parent is not None else tuple(pairs)

    def set(self, key: str, value: str) -> "EnvList":
        return EnvList(_parent=self, _key=key, _value=value)

    def delete(self, key: str) -> "EnvList":
        return EnvList(_parent=self, _key=key, _value=None)

    def pairs(self) -> tuple[tuple[str, str], ...]:
        if self._pairs is None:
            self._pairs = self._resolve()
        return self._pairs

    def _resolve(self) -> tuple[tuple[str, str], ...]:
        changes: list[tuple[str, str | None]] = []
        node: EnvList | None = self
        while node is not None and node._pairs is None:
            changes.append((node._key, node._value))
            node = node._parent
        base = node._pairs if node is not None else ()
        seen: set[str] = set()
        tail: list[tuple[str, str]] = []
        for key, value in changes:  # newest first
            if key not in seen:
                seen.add(key)
                if value is not None:
                    tail.append((key, value))
        kept = tuple((k, v) for k, v in base if k not in seen)
        return kept + tuple(reversed(tail))

    def __iter__(self):
        return iter(self.pairs())

    def __len__(self) -> int:
        return len(self.pairs())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EnvList):
            return self is other or self.pairs() == other.pairs()
        if isinstance(other, tuple):
            return self.pairs() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.pairs())

    def __repr__(self) -> str:
        return f"EnvList({self.pairs()!r})"


@dataclass(frozen=True)
class State:
    """A filesystem state (an output of a vertex, or scratch) with its process settings."""

    output: Output | None = None
    env: EnvList = EnvList()  # a tuple of pairs is accepted too
    cwd: str = "/"
    user: str = ""
    platform: Platform | None = None
    hostname: str = ""
    network: NetMode = NetMode.UNSET
    security: SecurityMode = SecurityMode.SANDBOX
    extra_hosts: tuple[tuple[str, str], ...] = ()
    ulimits: tuple[tuple[str, int, int], ...] = ()
    cgroup_parent: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.env, EnvList):
            object.__setattr__(self, "env", EnvList(self.env))

    # ------------------------------------------------------------- values

    def _evolve(self, **changes: object) -> State:
        """A plain State with `changes` applied (ExecState's extra fields are dropped)."""
        values = {name: getattr(self, name) for name in State.__dataclass_fields__}
        values.update(changes)
        return State(**values)  # type: ignore[arg-type]

    def with_output(self, output: Output | None) -> State:
        """This state's values on another output (Go's `WithOutput`); the output's platform wins."""
        platform = output.platform if output is not None and output.platform is not None else self.platform
        return self._evolve(output=output, platform=platform)

    def with_env(self, key: str, value: str) -> State:
        """Set `key`; a replaced key moves to the end, as Go's EnvList orders it."""
        return self._evolve(env=self.env.set(key, value))

    def without_env(self, key: str) -> State:
        return self._evolve(env=self.env.delete(key))

    def get_env(self, key: str) -> str | None:
        return next((v for k, v in self.env if k == key), None)

    def env_list(self) -> list[str]:
        """`K=V` strings in order, as an exec's Meta.env."""
        return [f"{k}={v}" for k, v in self.env]

    def with_cwd(self, path: str) -> State:
        """Working directory; a relative path is joined onto the current one (Go's `Dir`)."""
        if not gopath.is_abs(path):
            path = gopath.join(self.cwd or "/", path)
        return self._evolve(cwd=path)

    def with_user(self, user: str) -> State:
        return self._evolve(user=user)

    def with_platform(self, platform: Platform | str) -> State:
        plat = Platform.parse(platform) if isinstance(platform, str) else platform.normalize()
        return self._evolve(platform=plat)

    def with_hostname(self, hostname: str) -> State:
        return self._evolve(hostname=hostname)

    def with_network(self, network: NetMode) -> State:
        return self._evolve(network=NetMode(network))

    def with_security(self, security: SecurityMode) -> State:
        return self._evolve(security=SecurityMode(security))

    def with_extra_host(self, host: str, ip: str) -> State:
        return self._evolve(extra_hosts=self.extra_hosts + ((host, ip),))

    def with_ulimit(self, name: str, soft: int, hard: int) -> State:
        return self._evolve(ulimits=self.ulimits + ((name, soft, hard),))

    def with_cgroup_parent(self, parent: str) -> State:
        return self._evolve(cgroup_parent=parent)

    def with_custom_name(self, name: str) -> State:
        """Name the vertex that produces this state (OpMetadata description `llb.customname`)."""
        return self.with_description({"llb.customname": name})

    def with_description(self, values: Mapping[str, str]) -> State:
        """Add description entries to the vertex that produces this state."""
        if self.output is None:
            raise LLBookError("scratch has no vertex to describe")
        vertex = _with_options(self.output.vertex, self.output.vertex.options.with_description(values))
        return self._evolve(output=Output(vertex, self.output.index, self.output.platform))

    # ------------------------------------------------------------- operations

    def run(self, args: str | Sequence[str], *, shell: bool = False, env: Mapping[str, str] | None = None,
            cwd: str | None = None, user: str | None = None, mounts: Iterable[MountSpec] = (),
            network: NetMode | None = None, security: SecurityMode | None = None,
            proxy_env: pb.ProxyEnv | Mapping[str, str] | None = None, extra_hosts: Iterable[tuple[str, str]] = (),
            hostname: str = "", valid_exit_codes: Sequence[int] | None = None, readonly_rootfs: bool = False,
            platform: Platform | str | None = None, custom_name: str | None = None,
            description: Mapping[str, str] | None = None, ignore_cache: bool = False,
            ulimits: Iterable[tuple[str, int, int]] = ()) -> ExecState:
        """Run a process on this state's filesystem; `.root()` of the result is the changed filesystem.

        `args` as a string is split like a shell would (or run by /bin/sh -c with `shell=True`);
        `env`/`cwd`/`user` override the state's values for this command only; `platform`
        overrides the state's platform for this exec (and the outputs it produces).
        """
        if isinstance(platform, str):
            platform = Platform.parse(platform)
        base = self
        for key, value in (env or {}).items():
            base = base.with_env(key, value)
        if cwd is not None:
            base = base.with_cwd(cwd)
        meta = ExecMeta(
            args=_argv(args, shell), env=tuple(base.env_list()), cwd=base.cwd,
            user=base.user if user is None else user, hostname=hostname or base.hostname,
            cgroup_parent=base.cgroup_parent,
            valid_exit_codes=tuple(valid_exit_codes) if valid_exit_codes else None,
            extra_hosts=base.extra_hosts + tuple(extra_hosts), ulimits=base.ulimits + tuple(ulimits),
            network=NetMode(base.network if network is None else network),
            security=SecurityMode(base.security if security is None else security),
            proxy_env=_proxy_env(proxy_env))
        fs_mounts, secrets, sshs = _split_mounts(mounts)
        root = BindMount("/", self.output, readonly=readonly_rootfs)
        options = OpOptions.make(custom_name=custom_name, description=description, ignore_cache=ignore_cache,
                                 platform=platform)
        vertex = ExecVertex(meta, (root, *fs_mounts), secrets, sshs, self.platform, options)
        root_output = self.output if readonly_rootfs else Output(vertex, vertex.output_index("/"), platform)
        return ExecState.of(self.with_output(root_output), vertex)

    def file(self, action: FileAction, *, custom_name: str | None = None,
             description: Mapping[str, str] | None = None, ignore_cache: bool = False) -> State:
        """Apply a chain of file actions (mkdir, mkfile, rm, copy, symlink) to this state."""
        options = OpOptions.make(custom_name=custom_name, description=description, ignore_cache=ignore_cache)
        vertex = FileVertex(action.bind(self), options)
        return self.with_output(Output(vertex, 0))

    # ------------------------------------------------------------- marshal

    def marshal(self, platform: Platform | str | None = None, *, local_unique_id: str | None = None,
                worker_constraints: Sequence[str] = ()) -> pb.Definition:
        """The Definition of this state, as Go's `State.Marshal` writes it."""
        return marshal_definition(self.output, self._context(platform, local_unique_id, worker_constraints))

    @staticmethod
    def _context(platform: Platform | str | None, local_unique_id: str | None,
                 worker_constraints: Sequence[str]) -> MarshalContext:
        ctx = MarshalContext(worker_constraints=tuple(worker_constraints))
        if platform is not None:
            ctx.platform = Platform.parse(platform) if isinstance(platform, str) else platform
        if local_unique_id is not None:
            ctx.local_unique_id = local_unique_id
        return ctx

    @property
    def vertex(self) -> Vertex | None:
        return self.output.vertex if self.output is not None else None

    def op(self, platform: Platform | str | None = None, *, local_unique_id: str | None = None) -> pb.Op | None:
        """The pb.Op producing this state (None for scratch).

        A local source without a session gets a random `local.unique` each time, as in Go,
        unless `local_unique_id` fixes it.
        """
        if self.output is None:
            return None
        ctx = self._context(platform, local_unique_id, ())
        return pb.Op.from_bytes(ctx.marshal(self.output.vertex).data)

    def digest(self, platform: Platform | str | None = None, *, local_unique_id: str | None = None) -> str:
        """Digest of the vertex producing this state ("" for scratch); see `op` for local sources."""
        if self.output is None:
            return ""
        return self._context(platform, local_unique_id, ()).marshal(self.output.vertex).digest

    def __repr__(self) -> str:
        if self.output is None:
            return "<State scratch>"
        from solver.llb.definition import load

        graph = load(self.marshal(local_unique_id=""))
        digest = graph.result.digest
        kind = graph.vertices[digest].op.kind
        return f"<State {kind} {digest[:19]}… {graph.name(digest)!r} output={self.output.index}>"


@dataclass(frozen=True, repr=False)
class ExecState(State):
    """The result of `State.run`: the root filesystem, plus access to other mounts' outputs."""

    exec_vertex: ExecVertex | None = field(default=None, compare=False)

    @classmethod
    def of(cls, state: State, vertex: ExecVertex) -> ExecState:
        values = {name: getattr(state, name) for name in State.__dataclass_fields__}
        return cls(**values, exec_vertex=vertex)  # type: ignore[arg-type]

    def root(self) -> State:
        """The root filesystem after the command (values of the state `run` was called on)."""
        return self._evolve()

    def get_mount(self, dest: str) -> State:
        """The output of the mount at `dest` as a fresh State (readonly mounts give their source)."""
        assert self.exec_vertex is not None
        mount = self.exec_vertex.mount_at(dest)
        if mount is None:
            raise LLBookError(f"no mount at {dest}")
        if isinstance(mount, BindMount) and mount.readonly:
            return new_state(mount.source)
        index = self.exec_vertex.output_index(dest)
        return new_state(Output(self.exec_vertex, index, self.exec_vertex.options.platform))


def new_state(output: Output | None) -> State:
    """Go's `NewState`: dir "/" and the output's platform."""
    return State(output=output, platform=output.platform if output is not None else None)


def scratch() -> State:
    """The empty filesystem (no vertex at all)."""
    return State()


def merge(states: Sequence[State], *, custom_name: str | None = None,
          description: Mapping[str, str] | None = None) -> State:
    """Stack the filesystems of `states` (later ones win). Scratch inputs are dropped."""
    inputs = [s for s in states if s.output is not None]
    if not inputs:
        return scratch()
    if len(inputs) == 1:
        return inputs[0]
    options = OpOptions.make(custom_name=custom_name, description=description, caps=frozenset({"mergeop"}))
    vertex = MergeVertex(tuple(s.output for s in inputs), options)  # type: ignore[misc]
    return inputs[0].with_output(Output(vertex, 0))


def diff(lower: State, upper: State, *, custom_name: str | None = None,
         description: Mapping[str, str] | None = None) -> State:
    """The changes that turn `lower` into `upper`, as a filesystem of their own."""
    if lower.output is None:
        return scratch() if upper.output is None else upper
    options = OpOptions.make(custom_name=custom_name, description=description, caps=frozenset({"diffop"}))
    return lower.with_output(Output(DiffVertex(lower.output, upper.output, options), 0))


@dataclass(eq=False, repr=False)
class MergeVertex(Vertex):
    sources: tuple[Output, ...]
    options: OpOptions = field(default_factory=OpOptions)

    def inputs(self) -> list[Output]:
        return list(self.sources)

    def build_op(self, ctx: MarshalContext) -> tuple[pb.Op, pb.OpMetadata]:
        op, md = ctx.base_op(self.options)
        op.platform = None
        mo = pb.MergeOp()
        for src in self.sources:
            mo.inputs.append(pb.MergeInput(input=len(op.inputs)))
            op.inputs.append(ctx.to_input(src))
        op.op = mo
        return op, md


@dataclass(eq=False, repr=False)
class DiffVertex(Vertex):
    lower: Output
    upper: Output | None
    options: OpOptions = field(default_factory=OpOptions)

    def inputs(self) -> list[Output]:
        return [o for o in (self.lower, self.upper) if o is not None]

    def build_op(self, ctx: MarshalContext) -> tuple[pb.Op, pb.OpMetadata]:
        op, md = ctx.base_op(self.options)
        op.platform = None
        op.inputs.append(ctx.to_input(self.lower))
        upper = pb.UpperDiffInput(input=pb.EMPTY)
        if self.upper is not None:
            upper.input = len(op.inputs)
            op.inputs.append(ctx.to_input(self.upper))
        op.op = pb.DiffOp(lower=pb.LowerDiffInput(input=0), upper=upper)
        return op, md


def _with_options(vertex: Vertex, options: OpOptions) -> Vertex:
    """A copy of `vertex` with other options (vertices are never changed in place)."""
    import copy as _copy

    clone = _copy.copy(vertex)
    clone.options = options
    return clone


def _argv(args: str | Sequence[str], shell: bool) -> tuple[str, ...]:
    if isinstance(args, str):
        return (*DEFAULT_SHELL, args) if shell else tuple(shlex.split(args, comments=True))
    return (*DEFAULT_SHELL, " ".join(args)) if shell else tuple(args)


def _proxy_env(value: pb.ProxyEnv | Mapping[str, str] | None) -> pb.ProxyEnv | None:
    if value is None or isinstance(value, pb.ProxyEnv):
        return value
    return pb.ProxyEnv(**dict(value))  # type: ignore[arg-type]


def _split_mounts(mounts: Iterable[MountSpec]) -> tuple[list[FsMount], tuple[SecretMount, ...], tuple[SSHMount, ...]]:
    fs: list[FsMount] = []
    secrets: list[SecretMount] = []
    sshs: list[SSHMount] = []
    for m in mounts:
        if isinstance(m, SecretMount):
            secrets.append(m)
        elif isinstance(m, SSHMount):
            sshs.append(m)
        elif isinstance(m, (BindMount, CacheMount, TmpfsMount)):
            if m.dest == "/":
                raise LLBookError("the root mount is the state run() is called on")
            fs.append(m)
        else:
            raise LLBookError(f"not a mount: {m!r}")
    return fs, tuple(secrets), tuple(sshs)
