"""Protobuf messages of BuildKit's client APIs, written with llbook's schema-driven codec.

Field numbers and names follow the public .proto files of moby/buildkit:
`api/services/control/control.proto` (package moby.buildkit.v1), `api/types/worker.proto`,
`session/filesync/filesync.proto`, `session/secrets/secrets.proto`, `session/auth/auth.proto`,
fsutil's `types/wire.proto` and `types/stat.proto`, plus `google/protobuf/timestamp.proto` and
`grpc/health/v1/health.proto`. LLB messages (Definition, Platform, ProgressGroup, SourceInfo,
Range) are the ones of `solver.llb.pb`.

Class names are prefixed where a proto name would collide with `solver.llb.pb` in the
codec's by-name registry (`ControlVertex` is control.proto's `Vertex`).
"""

from __future__ import annotations

from dataclasses import field
from enum import IntEnum

from solver.llb import pb  # noqa: F401  (registers Definition, Platform, ... for Field.ref)
from solver.llb.codec import _REGISTRY, BO, BY, EN, I32, I64, MSG, U32, Message, S, enum_type, spec as _f
from solver.llb.pb import Definition, Platform, ProgressGroup, message

_LLB_NAMES = frozenset(_REGISTRY)


def _unique(cls: type) -> type:
    """Refuse a class name that would shadow an LLB message in the codec registry."""
    if cls.__name__ in _LLB_NAMES:
        raise TypeError(f"{cls.__name__} collides with solver.llb.pb")
    return cls


# ------------------------------------------------------------- google.protobuf


@_unique
@message
class Timestamp(Message):
    FIELDS = (_f(1, "seconds", I64), _f(2, "nanos", I32))
    seconds: int = 0
    nanos: int = 0

    def to_float(self) -> float:
        return self.seconds + self.nanos / 1e9


# ------------------------------------------------------------- worker.proto


@_unique
@message
class GCPolicy(Message):
    FIELDS = (_f(1, "all", BO), _f(2, "keepDuration", I64), _f(4, "filters", S, rep=True),
              _f(3, "reservedSpace", I64), _f(5, "maxUsedSpace", I64), _f(6, "minFreeSpace", I64))
    all: bool = False
    keep_duration: int = 0
    filters: list[str] = field(default_factory=list)
    reserved_space: int = 0
    max_used_space: int = 0
    min_free_space: int = 0


@_unique
@message
class BuildkitVersion(Message):
    FIELDS = (_f(1, "package", S), _f(2, "version", S), _f(3, "revision", S), _f(4, "dockerfileVersion", S))
    package: str = ""
    version: str = ""
    revision: str = ""
    dockerfile_version: str = ""


@_unique
@message
class WorkerRecord(Message):
    FIELDS = (_f(1, "ID", S), _f(2, "Labels", S, key=S), _f(3, "platforms", MSG, "Platform", rep=True),
              _f(4, "GCPolicy", MSG, "GCPolicy", rep=True), _f(5, "BuildkitVersion", MSG, "BuildkitVersion"))
    id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    platforms: list[Platform] = field(default_factory=list)
    gc_policy: list[GCPolicy] = field(default_factory=list)
    buildkit_version: BuildkitVersion | None = None


# ------------------------------------------------------------- control.proto


@_unique
@message
class CacheOptionsEntry(Message):
    FIELDS = (_f(1, "Type", S), _f(2, "Attrs", S, key=S))
    type: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@_unique
@message
class CacheOptions(Message):
    FIELDS = (_f(4, "Exports", MSG, "CacheOptionsEntry", rep=True),
              _f(5, "Imports", MSG, "CacheOptionsEntry", rep=True))
    exports: list[CacheOptionsEntry] = field(default_factory=list)
    imports: list[CacheOptionsEntry] = field(default_factory=list)


@_unique
@message
class Exporter(Message):
    FIELDS = (_f(1, "Type", S), _f(2, "Attrs", S, key=S))
    type: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@_unique
@message
class SolveRequest(Message):
    FIELDS = (_f(1, "Ref", S), _f(2, "Definition", MSG, "Definition"), _f(3, "ExporterDeprecated", S),
              _f(4, "ExporterAttrsDeprecated", S, key=S), _f(5, "Session", S), _f(6, "Frontend", S),
              _f(7, "FrontendAttrs", S, key=S), _f(8, "Cache", MSG, "CacheOptions"),
              _f(9, "Entitlements", S, rep=True), _f(13, "Exporters", MSG, "Exporter", rep=True))
    ref: str = ""
    definition: Definition | None = None
    exporter_deprecated: str = ""
    exporter_attrs_deprecated: dict[str, str] = field(default_factory=dict)
    session: str = ""
    frontend: str = ""
    frontend_attrs: dict[str, str] = field(default_factory=dict)
    cache: CacheOptions | None = None
    entitlements: list[str] = field(default_factory=list)
    exporters: list[Exporter] = field(default_factory=list)


@_unique
@message
class SolveResponse(Message):
    FIELDS = (_f(1, "ExporterResponse", S, key=S),)
    exporter_response: dict[str, str] = field(default_factory=dict)


@_unique
@message
class StatusRequest(Message):
    FIELDS = (_f(1, "Ref", S),)
    ref: str = ""


@_unique
@message
class ControlVertex(Message):
    FIELDS = (_f(1, "digest", S), _f(2, "inputs", S, rep=True), _f(3, "name", S), _f(4, "cached", BO),
              _f(5, "started", MSG, "Timestamp"), _f(6, "completed", MSG, "Timestamp"), _f(7, "error", S),
              _f(8, "progressGroup", MSG, "ProgressGroup"))
    digest: str = ""
    inputs: list[str] = field(default_factory=list)
    name: str = ""
    cached: bool = False
    started: Timestamp | None = None
    completed: Timestamp | None = None
    error: str = ""
    progress_group: ProgressGroup | None = None


@_unique
@message
class ControlVertexStatus(Message):
    FIELDS = (_f(1, "ID", S), _f(2, "vertex", S), _f(3, "name", S), _f(4, "current", I64), _f(5, "total", I64),
              _f(6, "timestamp", MSG, "Timestamp"), _f(7, "started", MSG, "Timestamp"),
              _f(8, "completed", MSG, "Timestamp"))
    id: str = ""
    vertex: str = ""
    name: str = ""
    current: int = 0
    total: int = 0
    timestamp: Timestamp | None = None
    started: Timestamp | None = None
    completed: Timestamp | None = None


@_unique
@message
class ControlVertexLog(Message):
    FIELDS = (_f(1, "vertex", S), _f(2, "timestamp", MSG, "Timestamp"), _f(3, "stream", I64), _f(4, "msg", BY))
    vertex: str = ""
    timestamp: Timestamp | None = None
    stream: int = 0
    msg: bytes = b""


@_unique
@message
class ControlVertexWarning(Message):
    FIELDS = (_f(1, "vertex", S), _f(2, "level", I64), _f(3, "short", BY), _f(4, "detail", BY, rep=True),
              _f(5, "url", S))
    vertex: str = ""
    level: int = 0
    short: bytes = b""
    detail: list[bytes] = field(default_factory=list)
    url: str = ""


@_unique
@message
class StatusResponse(Message):
    FIELDS = (_f(1, "vertexes", MSG, "ControlVertex", rep=True),
              _f(2, "statuses", MSG, "ControlVertexStatus", rep=True),
              _f(3, "logs", MSG, "ControlVertexLog", rep=True),
              _f(4, "warnings", MSG, "ControlVertexWarning", rep=True))
    vertexes: list[ControlVertex] = field(default_factory=list)
    statuses: list[ControlVertexStatus] = field(default_factory=list)
    logs: list[ControlVertexLog] = field(default_factory=list)
    warnings: list[ControlVertexWarning] = field(default_factory=list)


@_unique
@message
class BytesMessage(Message):
    FIELDS = (_f(1, "data", BY),)
    data: bytes = b""


@_unique
@message
class ListWorkersRequest(Message):
    FIELDS = (_f(1, "filter", S, rep=True),)
    filter: list[str] = field(default_factory=list)


@_unique
@message
class ListWorkersResponse(Message):
    FIELDS = (_f(1, "record", MSG, "WorkerRecord", rep=True),)
    record: list[WorkerRecord] = field(default_factory=list)


@_unique
@message
class InfoRequest(Message):
    FIELDS = ()


@_unique
@message
class InfoResponse(Message):
    FIELDS = (_f(1, "buildkitVersion", MSG, "BuildkitVersion"),)
    buildkit_version: BuildkitVersion | None = None


@_unique
@message
class DiskUsageRequest(Message):
    FIELDS = (_f(1, "filter", S, rep=True), _f(2, "ageLimit", I64))
    filter: list[str] = field(default_factory=list)
    age_limit: int = 0


@_unique
@message
class UsageRecord(Message):
    FIELDS = (_f(1, "ID", S), _f(2, "Mutable", BO), _f(3, "InUse", BO), _f(4, "Size", I64),
              _f(5, "Parent", S), _f(6, "CreatedAt", MSG, "Timestamp"), _f(7, "LastUsedAt", MSG, "Timestamp"),
              _f(8, "UsageCount", I64), _f(9, "Description", S), _f(10, "RecordType", S), _f(11, "Shared", BO),
              _f(12, "Parents", S, rep=True))
    id: str = ""
    mutable: bool = False
    in_use: bool = False
    size: int = 0
    parent: str = ""
    created_at: Timestamp | None = None
    last_used_at: Timestamp | None = None
    usage_count: int = 0
    description: str = ""
    record_type: str = ""
    shared: bool = False
    parents: list[str] = field(default_factory=list)


@_unique
@message
class DiskUsageResponse(Message):
    FIELDS = (_f(1, "record", MSG, "UsageRecord", rep=True),)
    record: list[UsageRecord] = field(default_factory=list)


@_unique
@message
class PruneRequest(Message):
    FIELDS = (_f(1, "filter", S, rep=True), _f(2, "all", BO), _f(3, "keepDuration", I64),
              _f(4, "reservedSpace", I64), _f(5, "maxUsedSpace", I64), _f(6, "minFreeSpace", I64))
    filter: list[str] = field(default_factory=list)
    all: bool = False
    keep_duration: int = 0
    reserved_space: int = 0
    max_used_space: int = 0
    min_free_space: int = 0


# ------------------------------------------------------------- fsutil types


@enum_type
class PacketType(IntEnum):
    PACKET_STAT = 0
    PACKET_REQ = 1
    PACKET_DATA = 2
    PACKET_FIN = 3
    PACKET_ERR = 4


@_unique
@message
class FsStat(Message):
    """fsutil.types.Stat; `mode` is Go's os.FileMode bits, `mod_time` Unix nanoseconds."""

    FIELDS = (_f(1, "path", S), _f(2, "mode", U32), _f(3, "uid", U32), _f(4, "gid", U32), _f(5, "size", I64),
              _f(6, "modTime", I64), _f(7, "linkname", S), _f(8, "devmajor", I64), _f(9, "devminor", I64),
              _f(10, "xattrs", BY, key=S))
    path: str = ""
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mod_time: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


@_unique
@message
class Packet(Message):
    FIELDS = (_f(1, "type", EN, "PacketType"), _f(2, "stat", MSG, "FsStat"), _f(3, "ID", U32), _f(4, "data", BY))
    type: PacketType = PacketType.PACKET_STAT
    stat: FsStat | None = None
    id: int = 0
    data: bytes = b""


# ------------------------------------------------------------- ssh.proto (sshforward)


@_unique
@message
class CheckAgentRequest(Message):
    FIELDS = (_f(1, "ID", S),)
    id: str = ""


@_unique
@message
class CheckAgentResponse(Message):
    FIELDS = ()


# ------------------------------------------------------------- secrets.proto, auth.proto


@_unique
@message
class GetSecretRequest(Message):
    FIELDS = (_f(1, "ID", S), _f(2, "annotations", S, key=S))
    id: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


@_unique
@message
class GetSecretResponse(Message):
    FIELDS = (_f(1, "data", BY),)
    data: bytes = b""


@_unique
@message
class CredentialsRequest(Message):
    FIELDS = (_f(1, "Host", S),)
    host: str = ""


@_unique
@message
class CredentialsResponse(Message):
    FIELDS = (_f(1, "Username", S), _f(2, "Secret", S))
    username: str = ""
    secret: str = ""


# ------------------------------------------------------------- grpc.health.v1


@enum_type
class ServingStatus(IntEnum):
    UNKNOWN = 0
    SERVING = 1
    NOT_SERVING = 2
    SERVICE_UNKNOWN = 3


@_unique
@message
class HealthCheckRequest(Message):
    FIELDS = (_f(1, "service", S),)
    service: str = ""


@_unique
@message
class HealthCheckResponse(Message):
    FIELDS = (_f(1, "status", EN, "ServingStatus"),)
    status: ServingStatus = ServingStatus.UNKNOWN


# ------------------------------------------------------------- service method paths

CONTROL = "/moby.buildkit.v1.Control/"
FILESYNC_DIFFCOPY = "/moby.filesync.v1.FileSync/DiffCopy"
FILESYNC_TARSTREAM = "/moby.filesync.v1.FileSync/TarStream"
FILESEND_DIFFCOPY = "/moby.filesync.v1.FileSend/DiffCopy"
SECRETS_GETSECRET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
SSH_CHECKAGENT = "/moby.sshforward.v1.SSH/CheckAgent"
SSH_FORWARDAGENT = "/moby.sshforward.v1.SSH/ForwardAgent"
SSH_ID_KEY = "buildkit.ssh.id"  # ForwardAgent's metadata: which agent
AUTH_CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


# ------------------------------------------------------------- gateway.proto (LLBBridge), google.rpc


@_unique
@message
class RpcStatus(Message):
    FIELDS = (_f(1, "code", I32), _f(2, "message", S))
    code: int = 0
    message: str = ""


@_unique
@message
class GatewayRef(Message):
    FIELDS = (_f(1, "id", S), _f(2, "def", MSG, "Definition"))
    id: str = ""
    def_: Definition | None = None


@_unique
@message
class GatewayResult(Message):
    """`Result`: the oneof `result` holds a GatewayRef (`ref`, 3) or a plain id (`refDeprecated`, 1)."""

    FIELDS = (_f(1, "refDeprecated", S, oneof="result"), _f(3, "ref", MSG, "GatewayRef", oneof="result"),
              _f(10, "metadata", BY, key=S))
    result: GatewayRef | str | None = None
    metadata: dict[str, bytes] = field(default_factory=dict)

    def ref_id(self) -> str:
        return self.result if isinstance(self.result, str) else (self.result.id if self.result else "")


@_unique
@message
class GatewaySolveRequest(Message):
    FIELDS = (_f(1, "Definition", MSG, "Definition"), _f(2, "Frontend", S), _f(3, "FrontendOpt", S, key=S),
              _f(5, "allowResultReturn", BO), _f(6, "allowResultArrayRef", BO), _f(10, "Final", BO),
              _f(11, "ExporterAttr", BY), _f(14, "Evaluate", BO))
    definition: Definition | None = None
    frontend: str = ""
    frontend_opt: dict[str, str] = field(default_factory=dict)
    allow_result_return: bool = False
    allow_result_array_ref: bool = False
    final: bool = False
    exporter_attr: bytes = b""
    evaluate: bool = False


@_unique
@message
class GatewaySolveResponse(Message):
    FIELDS = (_f(1, "ref", S), _f(3, "result", MSG, "GatewayResult"))
    ref: str = ""
    result: GatewayResult | None = None


@_unique
@message
class ReturnRequest(Message):
    FIELDS = (_f(1, "result", MSG, "GatewayResult"), _f(2, "error", MSG, "RpcStatus"))
    result: GatewayResult | None = None
    error: RpcStatus | None = None


@_unique
@message
class ReturnResponse(Message):
    FIELDS = ()


LLBBRIDGE = "/moby.buildkit.v1.frontend.LLBBridge/"
BUILDID_METADATA_KEY = "buildkit-controlapi-buildid"
