"""The BuildKit backend: the embedded solver's `solve()` contract, answered by a BuildKit daemon.

`BuildKitBackend.solve()` takes what `Solver.solve()` takes (a Definition or State, local
context directories, secrets, no-cache, progress, cancel, locations) and returns llbook's
`SolveResult`, whose vertex records come from the daemon's Status stream, in the order of
llbook's graph. The result lives in the daemon, so `SolveResult.ref` is a `Ref("remote")`:
to look at its filesystem, export it (`export=`), e.g. `type=tar` or `type=local` to the client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.buildkit.address import TLSFiles, parse_address
from solver.buildkit.client import BuildKitClient, BuildKitResult, Export
from solver.buildkit.dockerd_images import save_archive, temporary_name, untag
from solver.buildkit.session import SessionServices
from solver.errors import LLBookError
from solver.llb import pb
from solver.llb.definition import load
from solver.solve.progress import ProgressEvent
from solver.solve.result import Ref, SolveResult, VertexRecord
from solver.solve.solver import op_kind, to_definition

IMAGE_EXPORTERS = ("moby", "image", "oci", "docker")


def with_ignore_cache(defn: pb.Definition) -> pb.Definition:
    """The same Definition with `ignore_cache` in every op's metadata (digests do not change)."""
    from solver.llb.digest import digest_of
    metadata = {k: v for k, v in defn.metadata.items()}
    for data in defn.def_[:-1]:
        dgst = digest_of(data)
        meta = metadata.get(dgst) or pb.OpMetadata()
        meta.ignore_cache = True
        metadata[dgst] = meta
    return pb.Definition(def_=list(defn.def_), metadata=metadata, source=defn.source)


@dataclass(frozen=True)
class DaemonOutput:
    """docker build's `--output` for a daemon: `type=`, `dest=`, and the exporter's own attrs."""

    type: str
    dest: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


def parse_daemon_output(text: str) -> DaemonOutput:
    """`type=image,name=app:1,push=true`, `type=tar,dest=fs.tar`, `type=local,dest=out`, ...

    Unlike the embedded exporters, `type=image` without push is valid: it lands in the
    daemon's image store (dockerd's, for `dockerd://`).
    """
    fields: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        key, sep, value = item.partition("=")
        if not sep:
            raise LLBookError(f"--output {text!r}: expected KEY=VALUE, got {item!r}")
        fields[key.strip()] = value.strip()
    kind = fields.pop("type", "")
    if not kind:
        raise LLBookError(f"--output {text!r}: no type= (local, tar, image, moby)")
    dest = fields.pop("dest", "")
    if kind in ("local", "tar", "oci", "docker") and not dest:
        raise LLBookError(f"--output type={kind} needs dest=PATH")
    return DaemonOutput(kind, dest, fields)


def export_for(output: DaemonOutput | None, tags: Iterable[str], scheme: str) -> Export | None:
    """An Export from a `--output` (parse_daemon_output) or from `-t` tags."""
    names = ",".join(tags)
    if output is None:
        if not names:
            return None
        return Export("moby" if scheme == "dockerd" else "image", {"name": names})
    attrs = dict(output.attrs)
    if names and "name" not in attrs:
        attrs["name"] = names
    kind = output.type
    if kind == "image" and scheme == "dockerd" and attrs.get("push", "false").lower() != "true":
        kind = "moby"  # dockerd's image store, as `docker build -t` does
    if kind == "moby":
        attrs.pop("push", None)
    return Export(kind, attrs, output.dest or None)


@dataclass
class BuildKitBackend:
    """Solves on the BuildKit daemon at `address` (`unix://`, `tcp://`, `docker-container://`, `dockerd://`)."""

    address: str
    tls: TLSFiles | None = None
    entitlements: tuple[str, ...] = ()
    credentials: Callable[[str], tuple[str, str] | None] | None = None
    last: BuildKitResult | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parse_address(self.address, self.tls)  # fail early, naming the address

    @property
    def scheme(self) -> str:
        return parse_address(self.address).scheme

    def client(self) -> BuildKitClient:
        return BuildKitClient(self.address, self.tls)

    def workers(self) -> list[Any]:
        with self.client() as client:
            return client.list_workers()

    def solve(self, definition_or_state: Any, *, context_dirs: dict[str, str | Path] | None = None,
              secrets: dict[str, str | Path] | None = None, no_cache: bool = False,
              progress: Callable[[ProgressEvent], None] | None = None,
              cancel: threading.Event | None = None,
              locations: dict[str, tuple[str | None, int | None]] | None = None,
              export: Export | None = None, image_config: dict[str, Any] | None = None,
              place_scope: str = "", ssh: dict[str, str | Path] | None = None, **_: Any) -> SolveResult:
        """Solve on the daemon; the vertex records are the daemon's, in llbook's graph order."""
        defn = to_definition(definition_or_state)
        sent = with_ignore_cache(defn) if no_cache else defn
        services = SessionServices(dirs={k: Path(v).absolute() for k, v in (context_dirs or {}).items()},
                                   secrets={k: Path(v).absolute() for k, v in (secrets or {}).items()},
                                   credentials=self.credentials,
                                   ssh={k: Path(v) for k, v in (ssh or {}).items()})
        archive = export if export is not None and export.type == "docker" and self.scheme == "dockerd" else None
        if archive is not None:  # dockerd's BuildKit has no docker exporter: its image store, then save
            names = [n for n in archive.attrs.get("name", "").split(",") if n] or [temporary_name()]
            export = Export("moby", {"name": ",".join(names)})
        with self.client() as client:
            config = image_config if export is not None and export.type in IMAGE_EXPORTERS else None
            self.last = client.solve(sent, export=export, services=services, entitlements=self.entitlements,
                                     progress=progress, cancel=cancel, locations=locations, image_config=config)
        if archive is not None:
            self._save(archive, names)
        solved = to_solve_result(defn, self.last, locations or {}, image_config)
        add_reasons(solved, self.address, no_cache)
        return solved


    def _save(self, archive: Export, names: list[str]) -> None:
        """The docker archive of the image just stored in dockerd, written to the export's dest."""
        if not archive.dest:
            raise LLBookError("--output type=docker needs dest=PATH")
        socket_path = parse_address(self.address).path
        try:
            save_archive(socket_path, names, Path(archive.dest).expanduser().absolute())
        finally:
            if "name" not in archive.attrs:
                untag(socket_path, names[0])


def add_reasons(result: SolveResult, address: str, no_cache: bool) -> None:
    """"Why rebuilt" records for the vertices the daemon ran. The daemon reports no cache keys,
    so the reasons are what llbook can tell: --no-cache, a rebuilt parent, or a daemon cache miss."""
    ops = ("exec", "file", "merge", "diff")
    by_digest = {v.digest: v for v in result.vertices}
    for record in result.vertices:
        if record.cached or record.kind not in ops or record.error or record.completed is None:
            continue
        parents = [by_digest[d] for d in record.inputs if d in by_digest]
        rebuilt = [v.name for v in parents if v.kind in ops and not v.cached]
        if no_cache:
            record.reasons = [{"kind": "no-cache", "message": "--no-cache"}]
        elif rebuilt:
            record.reasons = [{"kind": "parent", "message": f"a parent was rebuilt: {rebuilt[0]}"}]
        else:
            record.reasons = [{"kind": "daemon", "message": f"not in the cache of the BuildKit daemon at {address}"}]


def to_solve_result(defn: pb.Definition, result: BuildKitResult,
                    locations: dict[str, tuple[str | None, int | None]],
                    image_config: dict[str, Any] | None) -> SolveResult:
    """llbook's SolveResult from the daemon's vertices (only those of the Definition)."""
    graph = load(defn)
    reported = {v.digest: v for v in result.vertices}
    records = []
    for vertex in graph.reachable():
        seen = reported.get(vertex.digest)
        filename, line = locations.get(vertex.digest, (None, None))
        record = VertexRecord(vertex.digest, seen.name if seen and seen.name else graph.name(vertex.digest),
                              kind=op_kind(vertex.op), inputs=list(dict.fromkeys(vertex.input_digests)),
                              filename=filename, line=line)
        if seen is not None:
            record.cached, record.started, record.completed = seen.cached, seen.started, seen.completed
            record.error = seen.error or None
        records.append(record)
    head = graph.result
    return SolveResult(head.digest if head else "", head.index if head else 0, Ref("remote"), records,
                       image_config)


def registry_credentials(registry_config: Any) -> Callable[[str], tuple[str, str] | None] | None:
    """Auth.Credentials answers from llbook's registry config (docker config.json, helpers)."""
    if registry_config is None:
        return None

    def lookup(host: str) -> tuple[str, str] | None:
        found = registry_config.credentials_for(host)
        if found is None:
            return None
        if found.identity_token:
            return "", found.identity_token
        return found.username, found.password
    return lookup
