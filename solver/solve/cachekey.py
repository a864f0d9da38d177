"""Cache keys of vertices, following BuildKit's ``CacheMap`` semantics (facts §3).

An op yields a ``CacheMap``: its own cache digest (a hash of the op with everything that
must not matter removed) and one ``DepSpec`` per op input (a selector, and optionally the
paths whose *content* is hashed instead of the input's key).

Keys are BuildKit's link graph, written down as one digest per vertex output:

- the record digest of an output is BuildKit's ``rootKey``, ``sha256("<cache digest>@<output>")``;
  a vertex without inputs has exactly that key, as in BuildKit's cache storage;
- a vertex with inputs is linked from each input's key by (input index, selector), the
  links of BuildKit's ``CacheInfoLink``; its key is the sha256 of its record digest and
  those links, so two builds get one key exactly when BuildKit would follow the same links;
- a dep with content selectors is linked from BuildKit's slow key, the root key of the
  content checksum at output -1 (``NewCacheKey(checksum, "", -1)``), with no selector; so a
  local context (whose source key is random per session) or a rebuilt stage with identical
  files still hits. The dep's definition key (``input_key``) is kept too: cache exports
  write it as a second link, as BuildKit does;
- proxy env, mount selectors' exact paths in the exec digest, cache-mount contents,
  secrets, tmpfs and mtimes never enter a key.

``KeyInputs`` keeps the plaintext of what went into a key so that "why was this rebuilt"
can name the part that differs from the previous build at the same place.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any

from solver.llb import gojson, pb
from solver.llb.patternmatch import contains_wildcards

SOURCE_PREFIX = "buildkit.source.v0:"
EXEC_TYPE = "buildkit.exec.v0"
FILE_TYPE = "buildkit.file.v0"
MERGE_TYPE = "buildkit.merge.v0"
DIFF_TYPE = "buildkit.diff.v0"
RANDOM_PREFIX = "random:"


def sha256_text(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_digest() -> str:
    return RANDOM_PREFIX + os.urandom(16).hex()


def is_random(digest: str) -> bool:
    return digest.startswith(RANDOM_PREFIX)


@dataclass(frozen=True)
class ContentSelector:
    """One path of an input whose content (not its key) goes into the consumer's key."""

    path: str
    follow_symlinks: bool = False
    wildcard: bool = False
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class DepSpec:
    """How one op input enters the key."""

    selector: str = ""  # "" or sha256 of the \0-joined selector paths
    content: tuple[ContentSelector, ...] = ()  # non-empty: use the content checksum
    compat_selector: str | None = None  # the selector BuildKit v0.8 gives it, where different

    @property
    def content_based(self) -> bool:
        return bool(self.content)


@dataclass(frozen=True)
class CacheMap:
    """``compat`` are the digests BuildKit v0.8 (dockerd 20.10) computes for the same op
    where they differ (it knows fewer fields); cache exports and imports use them too."""

    digest: str
    deps: tuple[DepSpec, ...]
    plaintext: dict[str, Any] = field(default_factory=dict, compare=False)
    compat: tuple[str, ...] = ()


@dataclass(frozen=True)
class DepKey:
    """What one input contributed: its key (or None when content-based), selector, checksum."""

    input_key: str | None
    selector: str
    checksum: str | None = None
    files: dict[str, str] | None = field(default=None, compare=False)  # relpath -> digest
    compat_selector: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class KeyInputs:
    op_digest: str
    output: int
    deps: tuple[DepKey, ...]
    plaintext: dict[str, Any] = field(default_factory=dict)
    compat: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = {
            "op_digest": self.op_digest,
            "output": self.output,
            "deps": [dataclasses.asdict(d) for d in self.deps],
            "plaintext": self.plaintext,
        }
        if self.compat:
            out["compat"] = list(self.compat)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "KeyInputs":
        known = {f.name for f in dataclasses.fields(DepKey)}
        deps = tuple(DepKey(**{k: v for k, v in d.items() if k in known}) for d in data.get("deps", []))
        return cls(data["op_digest"], int(data["output"]), deps, dict(data.get("plaintext", {})),
                   tuple(data.get("compat") or ()))


def root_key(digest: str, output: int) -> str:
    """BuildKit's ``rootKey``: the record digest of one output of an op's cache digest."""
    key = sha256_text(f"{digest}@{output}")
    return RANDOM_PREFIX + key[len("sha256:"):] if is_random(digest) else key


def slow_key(checksum: str) -> str:
    """The key a content checksum links from (BuildKit's slow cache key, output -1)."""
    return root_key(checksum, -1)


def dep_link(dep: DepKey) -> tuple[str, str]:
    """(key, selector) of the link one input contributes to the local key."""
    if dep.checksum is not None:
        return slow_key(dep.checksum), ""
    return str(dep.input_key), dep.selector


def combine(op_digest: str, output: int, deps: list[DepKey] | tuple[DepKey, ...]) -> str:
    """The key of one output of a vertex. Random op digests give random keys."""
    if is_random(op_digest) or any(d.input_key and is_random(d.input_key) and d.checksum is None
                                   for d in deps):
        return random_digest()
    record = root_key(op_digest, output)
    if not deps:
        return record
    links = [f"{i}\0{key}\0{selector}" for i, (key, selector) in enumerate(map(dep_link, deps))]
    return sha256_text("\0".join([record, *links]))


# --------------------------------------------------------------------------- JSON of ops


def _go_name(proto_name: str) -> str:
    """The Go field name protoc-gen-go gives a proto name (``byName`` -> ``ByName``)."""
    parts = proto_name.split("_")
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def _oneof_member(message: Any, group: str, value: Any) -> Any:
    members = [f for f in type(message).FIELDS if f.oneof == group]
    for spec in members:
        if spec.ref and type(value).__name__ == spec.ref:
            return spec
    return next((s for s in members if not s.ref), members[0])


def _is_empty(item: Any) -> bool:
    """Go's ``omitempty``: false, 0, "", nil, and empty slices and maps."""
    if isinstance(item, enum.Enum):
        return int(item.value) == 0
    return item is None or (not isinstance(item, bool) and item in ("", 0, b"")) or item is False \
        or (isinstance(item, (list, tuple, dict, bytes, bytearray)) and len(item) == 0)


# The fields BuildKit v0.8 (dockerd 20.10) knows, per message, where later versions added some.
V08_FIELDS: dict[str, frozenset[str]] = {
    "ExecOp": frozenset({"meta", "mounts", "network", "security"}),
    "Meta": frozenset({"args", "env", "cwd", "user", "proxy_env", "extraHosts", "hostname"}),
    "Mount": frozenset({"input", "selector", "dest", "output", "readonly", "mountType", "cacheOpt",
                        "secretOpt", "SSHOpt", "resultID"}),
    "FileActionCopy": frozenset({"src", "dest", "owner", "mode", "followSymlink", "dirCopyContents",
                                 "attemptUnpackDockerCompatibility", "createDestPath", "allowWildcard",
                                 "allowEmptyWildcard", "timestamp"}),
}


def to_jsonable(value: Any, known: dict[str, frozenset[str]] | None = None) -> Any:
    """What Go's ``encoding/json`` writes for a protobuf-go message (BuildKit's CacheMap input).

    Fields in declaration order under their proto names (every field is ``omitempty``), a
    oneof as ``{"Group": {"Member": value}}`` with Go's field names, enums as numbers,
    bytes as base64, maps by sorted key; unknown fields are not exported."""
    fields = getattr(type(value), "FIELDS", None)
    if fields is not None and dataclasses.is_dataclass(value):
        out: dict[str, Any] = {}
        groups: set[str] = set()
        allowed = (known or {}).get(type(value).__name__)
        for spec in fields:
            if allowed is not None and spec.proto_name not in allowed:
                continue
            if spec.oneof:
                if spec.oneof in groups:
                    continue
                groups.add(spec.oneof)
                item = getattr(value, spec.oneof)
                if item is not None:
                    member = _oneof_member(value, spec.oneof, item)
                    out[_go_name(spec.oneof)] = {_go_name(member.proto_name): to_jsonable(item, known)}
                continue
            item = getattr(value, spec.attr)
            if _is_empty(item):
                continue
            out[spec.proto_name] = to_jsonable(item, known)
        return out
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, known) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, known) for v in value]
    return value


def _dumps(obj: Any) -> str:
    """Go's ``json.Marshal`` text: struct order kept, HTML-safe escapes."""
    return gojson.dumps(obj)


def _platform_fields(platform: pb.Platform | None, v08: bool = False) -> dict[str, Any]:
    """OS, Arch and the optional parts of a platform, as BuildKit's cache maps write them
    (an op without a platform gets the worker's default)."""
    if platform is None:
        from solver.source.registry import default_platform
        host = default_platform()
        platform = pb.Platform(architecture=host.architecture, os=host.os, variant=host.variant)
    out: dict[str, Any] = {"OS": platform.os, "Arch": platform.architecture}
    if platform.variant:
        out["Variant"] = platform.variant
    if platform.os_version and not v08:
        out["OSVersion"] = platform.os_version
    if platform.os_features and not v08:
        out["OSFeatures"] = list(platform.os_features)
    return out


# --------------------------------------------------------------------------- source


def source_cache_map(op: pb.Op, key: str | None) -> CacheMap:
    """``buildkit.source.v0:<key>``; a None or ``session:`` key gives a random digest."""
    src: pb.SourceOp = op.op
    if key is None or key.startswith("session:"):
        return CacheMap(random_digest(), (), {"source": src.identifier})
    return CacheMap(sha256_text(SOURCE_PREFIX + key), (),
                    {"source": src.identifier, "source_key": key})


def image_source_key(manifest_digest: str, platform: pb.Platform | None,
                     layer_limit: int | None = None) -> str:
    """An image's source key: the digest of the JSON of its manifest digest and platform
    (BuildKit's ``mainManifestKey``)."""
    payload: dict[str, Any] = {"Digest": manifest_digest, **_platform_fields(platform)}
    if layer_limit is not None:
        payload["Limit"] = layer_limit
    return sha256_text(_dumps(payload))


# --------------------------------------------------------------------------- exec


def _is_default_cache_id(mount: pb.Mount) -> bool:
    opt = mount.cache_opt
    if opt is None:
        return True
    if int(opt.sharing) != 0:
        return False
    return opt.id == mount.dest or opt.id.endswith("/" + mount.dest.lstrip("/"))


def _exec_for_key(exec_op: pb.ExecOp) -> pb.ExecOp:
    mounts = []
    for m in exec_op.mounts:
        m = dataclasses.replace(m, selector="")
        if m.mount_type == pb.MountType.CACHE and m.cache_opt is not None \
                and not _is_default_cache_id(m):
            m = dataclasses.replace(m, cache_opt=dataclasses.replace(
                m.cache_opt, id="", sharing=pb.CacheSharingOpt(0)))
        mounts.append(m)
    only = mounts[0] if len(mounts) == 1 else None
    if only is not None and only.dest == "/" and only.mount_type == pb.MountType.BIND and not only.readonly \
            and only.cache_opt is None and only.ssh_opt is None and only.secret_opt is None \
            and not only.result_id:
        mounts = []  # a lone plain root bind mount is dropped for compatibility
    meta = exec_op.meta
    if meta is not None:
        hosts = [dataclasses.replace(h, ip="") for h in (meta.extra_hosts or [])]
        meta = dataclasses.replace(meta, proxy_env=None, extra_hosts=hosts)
    return dataclasses.replace(exec_op, meta=meta, mounts=mounts)


def _exec_deps(op: pb.Op) -> tuple[DepSpec, ...]:
    exec_op: pb.ExecOp = op.op
    selectors: list[list[str]] = [[] for _ in op.inputs]
    v08_selectors: list[list[str]] = [[] for _ in op.inputs]  # v0.8 adds only non-empty ones
    no_content = [False for _ in op.inputs]
    forced: list[int | None] = [None for _ in op.inputs]
    skip = (pb.MountType.SECRET, pb.MountType.SSH, pb.MountType.TMPFS)
    for m in exec_op.mounts:
        if m.mount_type in skip or m.input < 0 or m.input >= len(op.inputs):
            continue
        selectors[m.input].append(posixpath.join("/", m.selector or ""))
        if m.selector:
            v08_selectors[m.input].append(posixpath.join("/", m.selector))
        if (not m.readonly or m.dest == "/") and m.output != pb.SKIP_OUTPUT:
            no_content[m.input] = True
        cc = int(getattr(m, "content_cache", 0) or 0)
        if cc:
            forced[m.input] = cc
    deps = []
    for i, sels in enumerate(selectors):
        selector = sha256_text("\0".join(sels)) if sels else ""
        use_content = not no_content[i]
        if forced[i] == 1:
            use_content = True
        elif forced[i] == 2:
            use_content = False
        content = tuple(ContentSelector(p, follow_symlinks=True) for p in dict.fromkeys(sels)) \
            if use_content and sels else ()
        v08 = sha256_text("\0".join(v08_selectors[i])) if v08_selectors[i] else ""
        deps.append(DepSpec(selector, content, v08 if v08 != selector else None))
    return tuple(deps)


def exec_cache_map(op: pb.Op) -> CacheMap:
    exec_op: pb.ExecOp = op.op
    keyed = _exec_for_key(exec_op)
    digest = sha256_text(_dumps({"Type": EXEC_TYPE, "Exec": to_jsonable(keyed), **_platform_fields(op.platform)}))
    v08 = sha256_text(_dumps({"Type": EXEC_TYPE, "Exec": to_jsonable(keyed, V08_FIELDS),
                              **_platform_fields(op.platform, v08=True)}))
    meta = exec_op.meta
    plaintext = {
        "args": list(meta.args) if meta else [],
        "env": list(meta.env) if meta else [],
        "cwd": meta.cwd if meta else "",
        "user": meta.user if meta else "",
        "network": int(exec_op.network),
        "security": int(exec_op.security),
        "mounts": [f"{int(m.mount_type)}:{m.dest}" for m in exec_op.mounts],
    }
    return CacheMap(digest, _exec_deps(op), plaintext, (v08,) if v08 != digest else ())


# --------------------------------------------------------------------------- file


def _owner_selectors(owner: Any, num_inputs: int, selectors: dict[int, list[ContentSelector]]) -> None:
    if owner is None:
        return
    for part, path in ((getattr(owner, "user", None), "/etc/passwd"),
                       (getattr(owner, "group", None), "/etc/group")):
        by_name = getattr(part, "by_name", None) if part is not None else None
        if by_name is None:
            user = getattr(part, "user", None)
            by_name = user if isinstance(user, pb.NamedUserOpt) else None
        if by_name is not None and 0 <= by_name.input < num_inputs:
            selectors.setdefault(by_name.input, []).append(ContentSelector(path))


def _action_summary(action: Any) -> str:
    kind = type(action).__name__.replace("FileAction", "").lower()
    if isinstance(action, pb.FileActionCopy):
        return f"copy {action.src} {action.dest}"
    if isinstance(action, pb.FileActionSymlink):
        return f"symlink {action.oldpath} {action.newpath}"
    if isinstance(action, pb.FileActionMkFile):
        data = bytes(action.data)
        return f"mkfile {action.path} ({len(data)} B, {sha256_text(data)[7:19]})"
    return f"{kind} {getattr(action, 'path', '')}"


def _default_indexes(indexes: list[list[int]]) -> bool:
    """BuildKit's ``isDefaultIndexes``: the common chain (first action on input 0, each next
    on the previous action, secondary input 1 or none, the last action the output) keeps
    the older digest without indexes."""
    if not indexes:
        return False
    n = len(indexes)
    for i, (inp, secondary, output) in enumerate(indexes):
        if (i == 0 and inp != 0) or (i != 0 and inp != n + i - 1) or secondary not in (-1, 1):
            return False
        if (i == n - 1 and output != 0) or (i != n - 1 and output != -1):
            return False
    return True


def file_cache_map(op: pb.Op) -> CacheMap:
    file_op: pb.FileOp = op.op
    n = len(op.inputs)
    selectors: dict[int, list[ContentSelector]] = {}
    invalid: set[int] = set()
    actions_json: list[str] = []
    v08_actions: list[str] = []
    summaries: list[str] = []
    for fa in file_op.actions:
        action = fa.action
        if 0 <= fa.input < n:
            invalid.add(fa.input)
        summaries.append(_action_summary(action))
        _owner_selectors(getattr(action, "owner", None), n, selectors)
        if isinstance(action, pb.FileActionCopy) and 0 <= fa.secondary_input < n:
            selectors.setdefault(fa.secondary_input, []).append(ContentSelector(
                action.src, follow_symlinks=action.follow_symlink,
                wildcard=action.allow_wildcard and contains_wildcards(action.src),  # addSelector
                include_patterns=tuple(action.include_patterns or ()),
                exclude_patterns=tuple(action.exclude_patterns or ())))
            action = dataclasses.replace(action, src=posixpath.basename(action.src))
        actions_json.append(base64.b64encode(_dumps(to_jsonable(action)).encode()).decode())
        v08_actions.append(base64.b64encode(_dumps(to_jsonable(action, V08_FIELDS)).encode()).decode())
    indexes = [[fa.input, fa.secondary_input, fa.output] for fa in file_op.actions]
    payload: dict[str, Any] = {"Type": FILE_TYPE, "Actions": actions_json}
    if not _default_indexes(indexes):
        payload["indexes"] = indexes
    deps = []
    for i in range(n):
        sels = selectors.get(i, [])
        if i in invalid or not sels:
            deps.append(DepSpec())
            continue
        unique = tuple(dict.fromkeys(sels))
        deps.append(DepSpec(sha256_text("\0".join(s.path for s in unique)), unique))
    digest = sha256_text(_dumps(payload))
    v08 = sha256_text(_dumps({"Type": FILE_TYPE, "Actions": v08_actions}))  # v0.8 has no indexes
    return CacheMap(digest, tuple(deps), {"actions": summaries}, (v08,) if v08 != digest else ())


# --------------------------------------------------------------------------- merge / diff


def merge_cache_map(op: pb.Op) -> CacheMap:
    merge: pb.MergeOp = op.op
    payload = {"Type": MERGE_TYPE, "Merge": to_jsonable(merge)}
    return CacheMap(sha256_text(_dumps(payload)), tuple(DepSpec() for _ in op.inputs),
                    {"merge": len(merge.inputs)})


def diff_cache_map(op: pb.Op) -> CacheMap:
    diff: pb.DiffOp = op.op
    lower = diff.lower.input if diff.lower is not None else -1
    upper = diff.upper.input if diff.upper is not None else -1
    payload = {"Type": DIFF_TYPE, "Diff": to_jsonable(diff)}
    return CacheMap(sha256_text(_dumps(payload)), tuple(DepSpec() for _ in op.inputs),
                    {"diff": [lower, upper]})


def op_cache_map(op: pb.Op, source_key: str | None = None) -> CacheMap:
    """The CacheMap of any op kind (sources need their resolved ``source_key``)."""
    kind = op.op
    if isinstance(kind, pb.SourceOp):
        return source_cache_map(op, source_key)
    if isinstance(kind, pb.ExecOp):
        return exec_cache_map(op)
    if isinstance(kind, pb.FileOp):
        return file_cache_map(op)
    if isinstance(kind, pb.MergeOp):
        return merge_cache_map(op)
    if isinstance(kind, pb.DiffOp):
        return diff_cache_map(op)
    raise ValueError(f"unsupported op kind {type(kind).__name__}")
