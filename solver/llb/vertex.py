"""Vertices of the State API and the marshal machinery they share (Go's `client/llb` Vertex,
`Constraints`, `MarshalConstraints` and `marshal`)."""

from __future__ import annotations

import copy
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Mapping

from solver.llb import pb
from solver.llb.digest import digest_of
from solver.llb.platform import Platform

CAP_CONSTRAINTS = "constraints"
CAP_PLATFORM = "platform"
CAP_META_IGNORE_CACHE = "meta.ignorecache"
CAP_META_DESCRIPTION = "meta.description"
CAP_META_EXPORT_CACHE = "meta.exportcache"
CUSTOM_NAME_KEY = "llb.customname"


def new_unique_id() -> str:
    """A random 25-character base-36 ID like BuildKit's `identity.NewID`."""
    value = int.from_bytes(secrets.token_bytes(16), "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
    return out.rjust(25, "0")


@dataclass(frozen=True)
class OpOptions:
    """Per-vertex constraints (Go's `Constraints` given to one op): platform, filters, metadata."""

    platform: Platform | None = None
    worker_constraints: tuple[str, ...] = ()
    description: tuple[tuple[str, str], ...] = ()
    ignore_cache: bool = False
    export_cache: bool | None = None
    caps: frozenset[str] = frozenset()
    progress_group: tuple[str, str, bool] | None = None

    @classmethod
    def make(cls, *, custom_name: str | None = None, description: Mapping[str, str] | None = None,
             ignore_cache: bool = False, platform: Platform | None = None,
             caps: frozenset[str] = frozenset()) -> OpOptions:
        """Options from the keyword arguments the State API takes."""
        desc = dict(description or {})
        if custom_name is not None:
            desc[CUSTOM_NAME_KEY] = custom_name
        return cls(platform=platform, description=tuple(desc.items()), ignore_cache=ignore_cache, caps=caps)

    def with_caps(self, *caps: str) -> OpOptions:
        return OpOptions(self.platform, self.worker_constraints, self.description, self.ignore_cache,
                         self.export_cache, self.caps | frozenset(caps), self.progress_group)

    def with_description(self, values: Mapping[str, str]) -> OpOptions:
        desc = dict(self.description)
        desc.update(values)
        return OpOptions(self.platform, self.worker_constraints, tuple(desc.items()), self.ignore_cache,
                         self.export_cache, self.caps, self.progress_group)

    def metadata(self) -> pb.OpMetadata:
        """The OpMetadata these options give (Go's `OpMetadata.ToPB`)."""
        md = pb.OpMetadata(ignore_cache=self.ignore_cache, description=dict(self.description),
                           caps={c: True for c in sorted(self.caps)})
        if self.export_cache is not None:
            md.export_cache = pb.ExportCache(value=self.export_cache)
        if self.progress_group is not None:
            pid, name, weak = self.progress_group
            md.progress_group = pb.ProgressGroup(id=pid, name=name, weak=weak)
        return md


@dataclass
class Marshaled:
    """One vertex marshaled: its digest, canonical op bytes and metadata."""

    digest: str
    data: bytes
    metadata: pb.OpMetadata


@dataclass
class MarshalContext:
    """The marshal-time constraints (Go's `NewConstraints`) plus a per-call vertex cache."""

    platform: Platform = field(default_factory=Platform.host)
    worker_constraints: tuple[str, ...] = ()
    local_unique_id: str = field(default_factory=new_unique_id)
    cache: dict[Vertex, Marshaled] = field(default_factory=dict)

    def base_op(self, options: OpOptions, platform: Platform | None = None) -> tuple[pb.Op, pb.OpMetadata]:
        """Go's `MarshalConstraints`: an Op with platform and constraints set, and the metadata."""
        plat = platform or options.platform or self.platform
        op = pb.Op(platform=plat.to_pb(),
                   constraints=pb.WorkerConstraints(filter=[*self.worker_constraints, *options.worker_constraints]))
        return op, options.metadata()

    def marshal(self, vertex: Vertex) -> Marshaled:
        """Marshal `vertex` once per context, its inputs first (iteratively: deep chains are fine)."""
        stack: list[tuple[Vertex, bool]] = [(vertex, False)]
        while stack:
            current, inputs_done = stack.pop()
            if current in self.cache:
                continue
            if not inputs_done:
                stack.append((current, True))
                stack.extend((o.vertex, False) for o in reversed(current.inputs()) if o.vertex not in self.cache)
                continue
            op, md = current.build_op(self)
            data = op.to_bytes()
            self.cache[current] = Marshaled(digest_of(data), data, md)
        return self.cache[vertex]

    def to_input(self, out: Output) -> pb.Input:
        return pb.Input(digest=self.marshal(out.vertex).digest, index=out.index)


class Vertex(ABC):
    """An op node of the State API. Vertices compare by identity, like Go's pointers."""

    options: OpOptions

    @abstractmethod
    def inputs(self) -> list[Output]:
        """Outputs this vertex reads, in the order Go's marshal walks them."""

    @abstractmethod
    def build_op(self, ctx: MarshalContext) -> tuple[pb.Op, pb.OpMetadata]:
        """The pb.Op (with input digests resolved through `ctx`) and its metadata."""

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x}>"


@dataclass(frozen=True)
class Output:
    """Output `index` of `vertex`; `platform` is what a State built on it inherits."""

    vertex: Vertex
    index: int = 0
    platform: Platform | None = None


def merge_metadata(m1: pb.OpMetadata, m2: pb.OpMetadata) -> pb.OpMetadata:
    """Go's `mergeMetadata`: m2's settings added onto m1."""
    out = copy.deepcopy(m1)
    out.ignore_cache = m1.ignore_cache or m2.ignore_cache
    out.description.update(m2.description)
    if m2.export_cache is not None:
        out.export_cache = m2.export_cache
    for cap in m2.caps:
        out.caps[cap] = True
    if m2.progress_group is not None:
        out.progress_group = m2.progress_group
    if m2.linux_resources is not None:
        out.linux_resources = m2.linux_resources
    return out


def marshal_definition(head: Output | None, ctx: MarshalContext) -> pb.Definition:
    """Go's `State.Marshal`: DFS inputs first, de-duplicated by digest, then the terminal op."""
    defn = pb.Definition()
    if head is None:
        return defn
    seen_digests: set[str] = set()
    visited: set[Vertex] = set()
    _walk(head.vertex, ctx, defn, seen_digests, visited)
    final = pb.Op(inputs=[ctx.to_input(head)]).to_bytes()
    dgst = digest_of(final)
    defn.def_.append(final)
    md = defn.metadata.get(dgst, pb.OpMetadata())
    md.caps.update({CAP_CONSTRAINTS: True, CAP_PLATFORM: True})
    for other in list(defn.metadata.values()):
        if other.ignore_cache:
            md.caps[CAP_META_IGNORE_CACHE] = True
        if other.description:
            md.caps[CAP_META_DESCRIPTION] = True
        if other.export_cache is not None:
            md.caps[CAP_META_EXPORT_CACHE] = True
    defn.metadata[dgst] = md
    defn.source = pb.Source()
    return defn


def _walk(vertex: Vertex, ctx: MarshalContext, defn: pb.Definition, seen: set[str], visited: set[Vertex]) -> None:
    """Emit `vertex` after everything it reads (iterative, so deep chains do not hit recursion limits)."""
    stack: list[tuple[Vertex, bool]] = [(vertex, False)]
    while stack:
        current, expanded = stack.pop()
        if current in visited:
            continue
        if not expanded:
            stack.append((current, True))
            for out in reversed(current.inputs()):
                if out.vertex not in visited:
                    stack.append((out.vertex, False))
            continue
        visited.add(current)
        marshaled = ctx.marshal(current)
        defn.metadata[marshaled.digest] = merge_metadata(
            defn.metadata.get(marshaled.digest, pb.OpMetadata()), marshaled.metadata)
        if marshaled.digest not in seen:
            seen.add(marshaled.digest)
            defn.def_.append(marshaled.data)
