"""Exec ops and their mounts (Go's `client/llb/exec.go`).

Index rules: mounts are sorted by dest; outputs are numbered in that order, skipping
readonly, cache, tmpfs and no-output mounts (those get -1); a mount without a source
reads scratch (-1); secret and SSH mounts come last with input -1 and output 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from solver.errors import LLBookError
from solver.llb import pb
from solver.llb.pb import CacheSharingOpt, MountContentCache, NetMode, SecurityMode
from solver.llb.platform import Platform
from solver.llb.stateref import StateRef
from solver.llb.vertex import MarshalContext, OpOptions, Output, Vertex



@dataclass(frozen=True)
class BindMount:
    """`state` (or scratch when its output is None) mounted at `dest`."""

    dest: str
    source: Output | None
    selector: str = ""
    readonly: bool = False
    no_output: bool = False
    content_cache: MountContentCache = MountContentCache.DEFAULT


@dataclass(frozen=True)
class CacheMount:
    """A persistent cache directory, optionally seeded from `source`."""

    dest: str
    id: str
    sharing: CacheSharingOpt = CacheSharingOpt.SHARED
    source: Output | None = None
    selector: str = ""
    content_cache: MountContentCache = MountContentCache.DEFAULT
    readonly: bool = False


@dataclass(frozen=True)
class TmpfsMount:
    dest: str
    size: int = 0


@dataclass(frozen=True)
class SecretMount:
    """A secret as a file at `dest` and/or as environment variable `env`."""

    dest: str | None
    id: str
    uid: int = 0
    gid: int = 0
    mode: int = 0o400
    optional: bool = False
    env: str | None = None


@dataclass(frozen=True)
class SSHMount:
    """An SSH agent socket; `dest` defaults to /run/buildkit/ssh_agent.<n>."""

    dest: str = ""
    id: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0o600
    optional: bool = False


MountSpec = Union[BindMount, CacheMount, TmpfsMount, SecretMount, SSHMount]
FsMount = Union[BindMount, CacheMount, TmpfsMount]


def bind(dest: str, state: StateRef, selector: str = "", readonly: bool = False, *, no_output: bool = False,
         content_cache: MountContentCache = MountContentCache.DEFAULT) -> BindMount:
    """Mount `state` at `dest` (read-write mounts get an output of their own)."""
    return BindMount(dest, state.output, selector, readonly, no_output, content_cache)


def cache_mount(dest: str, id: str, sharing: CacheSharingOpt = CacheSharingOpt.SHARED,
                base: StateRef | None = None, selector: str = "", readonly: bool = False) -> CacheMount:
    """A cache mount; `base` seeds it (scratch when None). `readonly` is Go's `llb.Readonly`."""
    return CacheMount(dest, id, CacheSharingOpt(sharing), base.output if base is not None else None, selector,
                      readonly=readonly)


def tmpfs(dest: str, size: int = 0) -> TmpfsMount:
    return TmpfsMount(dest, size)


def secret(dest: str | None, id: str, uid: int = 0, gid: int = 0, mode: int = 0o400, optional: bool = False,
           env: str | None = None) -> SecretMount:
    return SecretMount(dest, id, uid, gid, mode, optional, env)


def ssh(dest: str = "", id: str = "", uid: int = 0, gid: int = 0, mode: int = 0o600,
        optional: bool = False) -> SSHMount:
    return SSHMount(dest, id, uid, gid, mode, optional)


def _has_output(m: FsMount) -> bool:
    """Whether the mount produces an output of the exec."""
    return isinstance(m, BindMount) and not m.readonly and not m.no_output


@dataclass(frozen=True)
class ExecMeta:
    """The process settings of an exec (the values Go reads from the base State)."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: str = ""
    hostname: str = ""
    cgroup_parent: str = ""
    valid_exit_codes: tuple[int, ...] | None = None
    extra_hosts: tuple[tuple[str, str], ...] = ()
    ulimits: tuple[tuple[str, int, int], ...] = ()
    network: NetMode = NetMode.UNSET
    security: SecurityMode = SecurityMode.SANDBOX
    proxy_env: pb.ProxyEnv | None = None
    cdi_devices: tuple[tuple[str, bool], ...] = ()


@dataclass(eq=False, repr=False)
class ExecVertex(Vertex):
    """A process run on a root filesystem with extra mounts."""

    meta: ExecMeta
    mounts: tuple[FsMount, ...]  # includes the root mount, sorted by dest
    secrets: tuple[SecretMount, ...] = ()
    ssh: tuple[SSHMount, ...] = ()
    state_platform: Platform | None = None
    options: OpOptions = field(default_factory=OpOptions)

    def __post_init__(self) -> None:
        if not self.meta.args:
            raise LLBookError("arguments are required")
        if not self.meta.cwd:
            raise LLBookError("working directory is required")
        self.mounts = tuple(sorted(self.mounts, key=lambda m: m.dest))
        dests = [m.dest for m in self.mounts]
        if len(set(dests)) != len(dests):
            raise LLBookError(f"duplicate mount targets in {dests}")

    def output_index(self, dest: str) -> int:
        """Output number of the mount at `dest`, or raise when it has none."""
        index = 0
        for m in self.mounts:
            if not _has_output(m):
                if m.dest == dest:
                    break
                continue
            if m.dest == dest:
                return index
            index += 1
        raise LLBookError(f"mount {dest} has no output (readonly, cache, tmpfs or no-output mounts cannot be used as a parent)")

    def mount_at(self, dest: str) -> FsMount | None:
        return next((m for m in self.mounts if m.dest == dest), None)

    def inputs(self) -> list[Output]:
        seen: list[Output] = []
        for m in self.mounts:
            src = getattr(m, "source", None)
            if src is not None and src not in seen:
                seen.append(src)
        return seen

    def effective_platform(self) -> Platform | None:
        return self.options.platform or self.state_platform

    def build_op(self, ctx: MarshalContext) -> tuple[pb.Op, pb.OpMetadata]:
        options = self.options.with_caps(*self._caps())
        op, md = ctx.base_op(options, self.effective_platform())
        ex = pb.ExecOp(meta=self._pb_meta(), network=self.meta.network, security=self.meta.security)
        ex.cdi_devices = [pb.CDIDevice(name=n, optional=o) for n, o in self.meta.cdi_devices]
        op.op = ex
        out_index = 0
        for m in self.mounts:
            input_index = self._input_index(op, m, ctx)
            output = pb.SKIP_OUTPUT
            if _has_output(m):
                output, out_index = out_index, out_index + 1
            ex.mounts.append(_pb_mount(m, input_index, output))
        self._append_secrets(ex)
        for i, s in enumerate(self.ssh):
            ex.mounts.append(pb.Mount(input=pb.EMPTY, dest=ssh_target(s, i), mount_type=pb.MountType.SSH,
                                      ssh_opt=pb.SSHOpt(id=s.id, uid=s.uid, gid=s.gid, mode=s.mode,
                                                        optional=s.optional)))
        return op, md

    def _input_index(self, op: pb.Op, m: FsMount, ctx: MarshalContext) -> int:
        """Index into op.inputs for the mount's source, adding it once; -1 for scratch."""
        src = getattr(m, "source", None)
        if src is None:
            return pb.EMPTY
        inp = ctx.to_input(src)
        for i, existing in enumerate(op.inputs):
            if existing == inp:
                return i
        op.inputs.append(inp)
        return len(op.inputs) - 1

    def _append_secrets(self, ex: pb.ExecOp) -> None:
        for s in self.secrets:
            if s.env is not None:
                ex.secretenv.append(pb.SecretEnv(id=s.id, name=s.env, optional=s.optional))
            if s.dest is not None:
                ex.mounts.append(pb.Mount(input=pb.EMPTY, dest=s.dest, mount_type=pb.MountType.SECRET,
                                          secret_opt=pb.SecretOpt(id=s.id, uid=s.uid, gid=s.gid, mode=s.mode,
                                                                  optional=s.optional)))

    def _pb_meta(self) -> pb.Meta:
        m = self.meta
        env = list(m.env)
        if self.ssh and not any(e.startswith("SSH_AUTH_SOCK=") for e in env):
            env.append("SSH_AUTH_SOCK=" + ssh_target(self.ssh[0], 0))
        return pb.Meta(args=list(m.args), env=env, cwd=m.cwd, user=m.user, hostname=m.hostname,
                       cgroup_parent=m.cgroup_parent, remove_mount_stubs_recursive=True,
                       valid_exit_codes=list(m.valid_exit_codes or ()), proxy_env=m.proxy_env,
                       extra_hosts=[pb.HostIP(host=h, ip=ip) for h, ip in m.extra_hosts],
                       ulimit=[pb.Ulimit(name=n, soft=s, hard=h) for n, s, h in m.ulimits])

    def _caps(self) -> list[str]:
        """The caps Go's ExecOp.Marshal records for this exec."""
        caps = ["exec.meta.base"]
        m = self.meta
        if m.valid_exit_codes is not None:
            caps.append("exec.validexitcode")
        if m.ulimits:
            caps.append("exec.meta.ulimit")
        if m.network != NetMode.UNSET:
            caps.append("exec.meta.network")
        if m.security == SecurityMode.INSECURE:
            caps.append("exec.meta.security")
        if m.proxy_env is not None:
            caps.append("exec.meta.proxyenv")
        for mount in self.mounts:
            caps.extend(_mount_caps(mount))
        if self.secrets:
            caps.append("exec.mount.secret")
            if any(s.env is not None for s in self.secrets):
                caps.append("exec.secretenv")
        if self.ssh:
            caps.append("exec.mount.ssh")
        if m.cdi_devices:
            caps.append("exec.meta.cdi")
        return caps


def ssh_target(s: SSHMount, i: int) -> str:
    return s.dest or f"/run/buildkit/ssh_agent.{i}"


def _mount_caps(m: FsMount) -> list[str]:
    caps: list[str] = []
    if getattr(m, "selector", ""):
        caps.append("exec.mount.selector")
    if isinstance(m, CacheMount):
        caps += ["exec.mount.cache", "exec.mount.cache.sharing"]
    elif isinstance(m, TmpfsMount):
        caps.append("exec.mount.tmpfs")
        if m.size > 0:
            caps.append("exec.mount.tmpfs.size")
    elif m.source is not None:
        caps.append("exec.mount.bind")
    if getattr(m, "content_cache", MountContentCache.DEFAULT) != MountContentCache.DEFAULT:
        caps.append("exec.mount.cache.content")
    return caps


def _pb_mount(m: FsMount, input_index: int, output: int) -> pb.Mount:
    """The wire form of one filesystem mount."""
    pm = pb.Mount(input=input_index, dest=m.dest, output=output)
    if isinstance(m, BindMount):
        pm.readonly = m.readonly
        pm.selector = m.selector
        pm.content_cache = m.content_cache
    elif isinstance(m, CacheMount):
        pm.readonly = m.readonly
        pm.selector = m.selector
        pm.mount_type = pb.MountType.CACHE
        pm.cache_opt = pb.CacheOpt(id=m.id, sharing=m.sharing)
        pm.content_cache = m.content_cache
    else:
        pm.mount_type = pb.MountType.TMPFS
        pm.tmpfs_opt = pb.TmpfsOpt(size=m.size)
    return pm
