"""Dataclasses for every message of BuildKit's `solver/pb/ops.proto`, with enums and constants.

Field numbers and names follow ops.proto exactly (see reference/buildkit-facts.md §1).
Attributes are the snake_case of the proto names; a oneof is one attribute holding the
member's value (`Op.op`, `FileAction.action`, `UserOpt.user`). Serialization is the
schema-driven codec in `solver.llb.codec`; `Op.to_bytes()` is Go's deterministic marshal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar, Union, dataclass_transform

from solver.llb.codec import (BO, BY, EN, I32, I64, MSG, U32, U64, Message, S, check_schema, decode, encode,
                              enum_type, register, spec as _f)

ROOT_MOUNT = "/"
SKIP_OUTPUT = -1
EMPTY = -1
LLB_BUILDER = -1
LLB_DEFINITION_INPUT = "buildkit.llb.definition"


_T = TypeVar("_T")


@dataclass_transform(field_specifiers=(field,))
def message(cls: type[_T]) -> type[_T]:
    """Dataclass decorator for messages: registers the class and checks its schema."""
    if cls.__doc__ is None:  # else dataclass() computes one with inspect.signature (slow at import)
        cls.__doc__ = f"The ops.proto message {cls.__name__}."
    made = dataclass(cls)
    register(made)
    check_schema(made)  # type: ignore[arg-type]
    return made


# ----------------------------------------------------------------- enums


@enum_type
class NetMode(IntEnum):
    UNSET = 0  # sandbox
    HOST = 1
    NONE = 2


@enum_type
class SecurityMode(IntEnum):
    SANDBOX = 0
    INSECURE = 1  # privileged


@enum_type
class MountType(IntEnum):
    BIND = 0
    SECRET = 1
    SSH = 2
    CACHE = 3
    TMPFS = 4


@enum_type
class MountContentCache(IntEnum):
    DEFAULT = 0
    ON = 1
    OFF = 2


@enum_type
class CacheSharingOpt(IntEnum):
    SHARED = 0
    PRIVATE = 1
    LOCKED = 2


# ----------------------------------------------------------------- small messages


@message
class Platform(Message):
    FIELDS = (_f(1, "Architecture", S), _f(2, "OS", S), _f(3, "Variant", S), _f(4, "OSVersion", S),
              _f(5, "OSFeatures", S, rep=True))
    architecture: str = ""
    os: str = ""
    variant: str = ""
    os_version: str = ""
    os_features: list[str] = field(default_factory=list)


@message
class Input(Message):
    FIELDS = (_f(1, "digest", S), _f(2, "index", I64))
    digest: str = ""
    index: int = 0


@message
class WorkerConstraints(Message):
    FIELDS = (_f(1, "filter", S, rep=True),)
    filter: list[str] = field(default_factory=list)


@message
class ProxyEnv(Message):
    FIELDS = (_f(1, "http_proxy", S), _f(2, "https_proxy", S), _f(3, "ftp_proxy", S),
              _f(4, "no_proxy", S), _f(5, "all_proxy", S))
    http_proxy: str = ""
    https_proxy: str = ""
    ftp_proxy: str = ""
    no_proxy: str = ""
    all_proxy: str = ""


@message
class HostIP(Message):
    FIELDS = (_f(1, "Host", S), _f(2, "IP", S))
    host: str = ""
    ip: str = ""


@message
class Ulimit(Message):
    FIELDS = (_f(1, "Name", S), _f(2, "Soft", I64), _f(3, "Hard", I64))
    name: str = ""
    soft: int = 0
    hard: int = 0


@message
class SecretEnv(Message):
    FIELDS = (_f(1, "ID", S), _f(2, "name", S), _f(3, "optional", BO))
    id: str = ""
    name: str = ""
    optional: bool = False


@message
class CDIDevice(Message):
    FIELDS = (_f(1, "name", S), _f(2, "optional", BO))
    name: str = ""
    optional: bool = False


@message
class TmpfsOpt(Message):
    FIELDS = (_f(1, "size", I64),)
    size: int = 0


@message
class CacheOpt(Message):
    FIELDS = (_f(1, "ID", S), _f(2, "sharing", EN, "CacheSharingOpt"))
    id: str = ""
    sharing: CacheSharingOpt = CacheSharingOpt.SHARED


_SECRET_LIKE = (_f(1, "ID", S), _f(2, "uid", U32), _f(3, "gid", U32), _f(4, "mode", U32),
                _f(5, "optional", BO))


@message
class SecretOpt(Message):
    FIELDS = _SECRET_LIKE
    id: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0
    optional: bool = False


@message
class SSHOpt(Message):
    FIELDS = _SECRET_LIKE
    id: str = ""
    uid: int = 0
    gid: int = 0
    mode: int = 0
    optional: bool = False


# ----------------------------------------------------------------- exec


@message
class Meta(Message):
    FIELDS = (_f(1, "args", S, rep=True), _f(2, "env", S, rep=True), _f(3, "cwd", S), _f(4, "user", S),
              _f(5, "proxy_env", MSG, "ProxyEnv"), _f(6, "extraHosts", MSG, "HostIP", rep=True),
              _f(7, "hostname", S), _f(9, "ulimit", MSG, "Ulimit", rep=True), _f(10, "cgroupParent", S),
              _f(11, "removeMountStubsRecursive", BO), _f(12, "validExitCodes", I32, rep=True))
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    cwd: str = ""
    user: str = ""
    proxy_env: ProxyEnv | None = None
    extra_hosts: list[HostIP] = field(default_factory=list)
    hostname: str = ""
    ulimit: list[Ulimit] = field(default_factory=list)
    cgroup_parent: str = ""
    remove_mount_stubs_recursive: bool = False
    valid_exit_codes: list[int] = field(default_factory=list)


@message
class Mount(Message):
    FIELDS = (_f(1, "input", I64), _f(2, "selector", S), _f(3, "dest", S), _f(4, "output", I64),
              _f(5, "readonly", BO), _f(6, "mountType", EN, "MountType"), _f(19, "TmpfsOpt", MSG, "TmpfsOpt"),
              _f(20, "cacheOpt", MSG, "CacheOpt"), _f(21, "secretOpt", MSG, "SecretOpt"),
              _f(22, "SSHOpt", MSG, "SSHOpt"), _f(23, "resultID", S),
              _f(24, "contentCache", EN, "MountContentCache"))
    input: int = 0
    selector: str = ""
    dest: str = ""
    output: int = 0
    readonly: bool = False
    mount_type: MountType = MountType.BIND
    tmpfs_opt: TmpfsOpt | None = None
    cache_opt: CacheOpt | None = None
    secret_opt: SecretOpt | None = None
    ssh_opt: SSHOpt | None = None
    result_id: str = ""
    content_cache: MountContentCache = MountContentCache.DEFAULT


@message
class ExecOp(Message):
    FIELDS = (_f(1, "meta", MSG, "Meta"), _f(2, "mounts", MSG, "Mount", rep=True),
              _f(3, "network", EN, "NetMode"), _f(4, "security", EN, "SecurityMode"),
              _f(5, "secretenv", MSG, "SecretEnv", rep=True), _f(6, "cdiDevices", MSG, "CDIDevice", rep=True))
    meta: Meta | None = None
    mounts: list[Mount] = field(default_factory=list)
    network: NetMode = NetMode.UNSET
    security: SecurityMode = SecurityMode.SANDBOX
    secretenv: list[SecretEnv] = field(default_factory=list)
    cdi_devices: list[CDIDevice] = field(default_factory=list)


# ----------------------------------------------------------------- source, build


@message
class SourceOp(Message):
    FIELDS = (_f(1, "identifier", S), _f(2, "attrs", S, key=S))
    identifier: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@message
class BuildInput(Message):
    FIELDS = (_f(1, "input", I64),)
    input: int = 0


@message
class BuildOp(Message):
    FIELDS = (_f(1, "builder", I64), _f(2, "inputs", MSG, "BuildInput", key=S), _f(3, "def", MSG, "Definition"),
              _f(4, "attrs", S, key=S))
    builder: int = 0
    inputs: dict[str, BuildInput] = field(default_factory=dict)
    def_: Definition | None = None
    attrs: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------- file


@message
class NamedUserOpt(Message):
    FIELDS = (_f(1, "name", S), _f(2, "input", I64))
    name: str = ""
    input: int = 0


@message
class UserOpt(Message):
    """`user` is a NamedUserOpt (byName) or an int uid/gid (byID)."""

    FIELDS = (_f(1, "byName", MSG, "NamedUserOpt", oneof="user"), _f(2, "byID", U32, oneof="user"))
    user: NamedUserOpt | int | None = None


@message
class ChownOpt(Message):
    FIELDS = (_f(1, "user", MSG, "UserOpt"), _f(2, "group", MSG, "UserOpt"))
    user: UserOpt | None = None
    group: UserOpt | None = None


@message
class FileActionCopy(Message):
    FIELDS = (_f(1, "src", S), _f(2, "dest", S), _f(3, "owner", MSG, "ChownOpt"), _f(4, "mode", I32),
              _f(5, "followSymlink", BO), _f(6, "dirCopyContents", BO),
              _f(7, "attemptUnpackDockerCompatibility", BO), _f(8, "createDestPath", BO),
              _f(9, "allowWildcard", BO), _f(10, "allowEmptyWildcard", BO), _f(11, "timestamp", I64),
              _f(12, "include_patterns", S, rep=True), _f(13, "exclude_patterns", S, rep=True),
              _f(14, "alwaysReplaceExistingDestPaths", BO), _f(15, "modeStr", S),
              _f(16, "required_paths", S, rep=True))
    src: str = ""
    dest: str = ""
    owner: ChownOpt | None = None
    mode: int = 0
    follow_symlink: bool = False
    dir_copy_contents: bool = False
    attempt_unpack_docker_compatibility: bool = False
    create_dest_path: bool = False
    allow_wildcard: bool = False
    allow_empty_wildcard: bool = False
    timestamp: int = 0
    include_patterns: list[str] = field(default_factory=list)
    exclude_patterns: list[str] = field(default_factory=list)
    always_replace_existing_dest_paths: bool = False
    mode_str: str = ""
    required_paths: list[str] = field(default_factory=list)


@message
class FileActionMkFile(Message):
    FIELDS = (_f(1, "path", S), _f(2, "mode", I32), _f(3, "data", BY), _f(4, "owner", MSG, "ChownOpt"),
              _f(5, "timestamp", I64))
    path: str = ""
    mode: int = 0
    data: bytes = b""
    owner: ChownOpt | None = None
    timestamp: int = 0


@message
class FileActionMkDir(Message):
    FIELDS = (_f(1, "path", S), _f(2, "mode", I32), _f(3, "makeParents", BO), _f(4, "owner", MSG, "ChownOpt"),
              _f(5, "timestamp", I64))
    path: str = ""
    mode: int = 0
    make_parents: bool = False
    owner: ChownOpt | None = None
    timestamp: int = 0


@message
class FileActionRm(Message):
    FIELDS = (_f(1, "path", S), _f(2, "allowNotFound", BO), _f(3, "allowWildcard", BO))
    path: str = ""
    allow_not_found: bool = False
    allow_wildcard: bool = False


@message
class FileActionSymlink(Message):
    FIELDS = (_f(1, "oldpath", S), _f(2, "newpath", S), _f(3, "owner", MSG, "ChownOpt"), _f(4, "timestamp", I64))
    oldpath: str = ""
    newpath: str = ""
    owner: ChownOpt | None = None
    timestamp: int = 0


AnyFileAction = Union[FileActionCopy, FileActionMkFile, FileActionMkDir, FileActionRm, FileActionSymlink]


@message
class FileAction(Message):
    FIELDS = (_f(1, "input", I64), _f(2, "secondaryInput", I64), _f(3, "output", I64),
              _f(4, "copy", MSG, "FileActionCopy", oneof="action"),
              _f(5, "mkfile", MSG, "FileActionMkFile", oneof="action"),
              _f(6, "mkdir", MSG, "FileActionMkDir", oneof="action"),
              _f(7, "rm", MSG, "FileActionRm", oneof="action"),
              _f(8, "symlink", MSG, "FileActionSymlink", oneof="action"))
    input: int = 0
    secondary_input: int = 0
    output: int = 0
    action: AnyFileAction | None = None


@message
class FileOp(Message):
    FIELDS = (_f(2, "actions", MSG, "FileAction", rep=True),)
    actions: list[FileAction] = field(default_factory=list)


# ----------------------------------------------------------------- merge, diff, passthrough


@message
class MergeInput(Message):
    FIELDS = (_f(1, "input", I64),)
    input: int = 0


@message
class MergeOp(Message):
    FIELDS = (_f(1, "inputs", MSG, "MergeInput", rep=True),)
    inputs: list[MergeInput] = field(default_factory=list)


@message
class LowerDiffInput(Message):
    FIELDS = (_f(1, "input", I64),)
    input: int = 0


@message
class UpperDiffInput(Message):
    FIELDS = (_f(1, "input", I64),)
    input: int = 0


@message
class DiffOp(Message):
    FIELDS = (_f(1, "lower", MSG, "LowerDiffInput"), _f(2, "upper", MSG, "UpperDiffInput"))
    lower: LowerDiffInput | None = None
    upper: UpperDiffInput | None = None


@message
class PassthroughOp(Message):
    FIELDS = (_f(1, "id", S), _f(2, "outputs", I64, rep=True))
    id: str = ""
    outputs: list[int] = field(default_factory=list)


# ----------------------------------------------------------------- Op


AnyOp = Union[ExecOp, SourceOp, FileOp, BuildOp, MergeOp, DiffOp, PassthroughOp]
OP_KINDS: dict[type, str] = {ExecOp: "exec", SourceOp: "source", FileOp: "file", BuildOp: "build",
                             MergeOp: "merge", DiffOp: "diff", PassthroughOp: "passthrough"}


@message
class Op(Message):
    """One LLB vertex. Its digest is sha256 of `to_bytes()`."""

    FIELDS = (_f(1, "inputs", MSG, "Input", rep=True),
              _f(2, "exec", MSG, "ExecOp", oneof="op"), _f(3, "source", MSG, "SourceOp", oneof="op"),
              _f(4, "file", MSG, "FileOp", oneof="op"), _f(5, "build", MSG, "BuildOp", oneof="op"),
              _f(6, "merge", MSG, "MergeOp", oneof="op"), _f(7, "diff", MSG, "DiffOp", oneof="op"),
              _f(8, "passthrough", MSG, "PassthroughOp", oneof="op"),
              _f(10, "platform", MSG, "Platform"), _f(11, "constraints", MSG, "WorkerConstraints"))
    inputs: list[Input] = field(default_factory=list)
    op: AnyOp | None = None
    platform: Platform | None = None
    constraints: WorkerConstraints | None = None

    @property
    def kind(self) -> str:
        """`exec`, `source`, `file`, `build`, `merge`, `diff`, `passthrough` or `` (terminal op)."""
        return OP_KINDS.get(type(self.op), "")


# ----------------------------------------------------------------- metadata and source maps


@message
class ExportCache(Message):
    FIELDS = (_f(1, "Value", BO),)
    value: bool = False


@message
class ProgressGroup(Message):
    FIELDS = (_f(1, "id", S), _f(2, "name", S), _f(3, "weak", BO))
    id: str = ""
    name: str = ""
    weak: bool = False


@message
class LinuxResources(Message):
    FIELDS = (_f(1, "memory", I64), _f(2, "memorySwap", I64), _f(3, "cpuShares", U64), _f(4, "cpuPeriod", U64),
              _f(5, "cpuQuota", I64), _f(6, "cpusetCpus", S), _f(7, "cpusetMems", S))
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""


@message
class OpMetadata(Message):
    """Per-vertex options that are not part of the op bytes (never change a digest)."""

    FIELDS = (_f(1, "ignore_cache", BO), _f(2, "description", S, key=S), _f(4, "export_cache", MSG, "ExportCache"),
              _f(5, "caps", BO, key=S), _f(6, "progress_group", MSG, "ProgressGroup"),
              _f(7, "linux_resources", MSG, "LinuxResources"))
    ignore_cache: bool = False
    description: dict[str, str] = field(default_factory=dict)
    export_cache: ExportCache | None = None
    caps: dict[str, bool] = field(default_factory=dict)
    progress_group: ProgressGroup | None = None
    linux_resources: LinuxResources | None = None


@message
class Position(Message):
    FIELDS = (_f(1, "line", I32), _f(2, "character", I32))
    line: int = 0
    character: int = 0


@message
class Range(Message):
    FIELDS = (_f(1, "start", MSG, "Position"), _f(2, "end", MSG, "Position"))
    start: Position | None = None
    end: Position | None = None


@message
class Location(Message):
    FIELDS = (_f(1, "sourceIndex", I32), _f(2, "ranges", MSG, "Range", rep=True))
    source_index: int = 0
    ranges: list[Range] = field(default_factory=list)


@message
class Locations(Message):
    FIELDS = (_f(1, "locations", MSG, "Location", rep=True),)
    locations: list[Location] = field(default_factory=list)


@message
class SourceInfo(Message):
    FIELDS = (_f(1, "filename", S), _f(2, "data", BY), _f(3, "definition", MSG, "Definition"),
              _f(4, "language", S))
    filename: str = ""
    data: bytes = b""
    definition: Definition | None = None
    language: str = ""


@message
class Source(Message):
    FIELDS = (_f(1, "locations", MSG, "Locations", key=S), _f(2, "infos", MSG, "SourceInfo", rep=True))
    locations: dict[str, Locations] = field(default_factory=dict)
    infos: list[SourceInfo] = field(default_factory=list)


@message
class Definition(Message):
    """A marshaled LLB graph: op bytes in topological order, the last one the terminal op.

    `to_bytes()` keeps map entries in dict order (as Go's vtproto marshaler writes a
    Definition), so a parsed Definition writes back byte for byte.
    """

    FIELDS = (_f(1, "def", BY, rep=True), _f(2, "metadata", MSG, "OpMetadata", key=S),
              _f(3, "Source", MSG, "Source"))
    def_: list[bytes] = field(default_factory=list)
    metadata: dict[str, OpMetadata] = field(default_factory=dict)
    source: Source | None = None

    def to_bytes(self, deterministic: bool = False) -> bytes:
        """Serialize; map entries in dict order unless `deterministic`."""
        return encode(self, deterministic)

    @classmethod
    def from_bytes(cls, data: bytes) -> Definition:
        return decode(cls, data)

    def ops(self) -> list[Op]:
        """Every entry of `def_` parsed."""
        return [Op.from_bytes(dt) for dt in self.def_]

    def head_input(self) -> Input | None:
        """The terminal op's first input: the result of the graph (None when empty)."""
        if not self.def_:
            return None
        last = Op.from_bytes(self.def_[-1])
        return last.inputs[0] if last.inputs else None

    def head(self) -> str:
        """Digest of the result vertex, like Go's `Definition.Head()` ("" when empty)."""
        inp = self.head_input()
        return inp.digest if inp else ""
