"""The embedded solver: walks an LLB graph, looks results up by cache key, runs the rest.

``Solver(cache_dir=...).solve(definition)``:

1. loads the Definition (``solver.llb.definition.load``) and checks entitlements before
   anything runs;
2. runs one job per reachable vertex on the ``Scheduler``: a vertex starts as soon as its
   inputs are done, so independent stages run in parallel;
3. per vertex: computes its cache map and the keys of its outputs (content checksums of
   the selected input paths where the cache map asks for them), looks the keys up; on a
   miss takes the per-key lock (``CacheStore.building``), looks again (another process
   may have built it meanwhile), executes the op, commits its snapshots and then indexes
   the records, with the key inputs and the reasons why it ran;
4. emits progress events throughout and returns a ``SolveResult``.

A failing or canceled vertex leaves no record: its op executor removes what it
prepared, and nothing is indexed before the snapshots are committed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.cache.paths import CachePaths
from solver.cache.records import Record
from solver.cache.store import CacheStore
from solver.errors import BuildError, LLBookError
from solver.llb import pb
from solver.llb.definition import Graph, Vertex, load
from solver.solve import cachekey, reasons, remote
from solver.solve.cachekey import CacheMap, DepKey, KeyInputs
from solver.solve.entitlements import Entitlements, validate
from solver.solve.ops_common import OpContext, OutputResult, VertexInfo
from solver.solve.progress import (ProgressBus, ProgressEvent, VertexCached, VertexCompleted,
                                   VertexFailed, VertexLog, VertexStarted)
from solver.solve.result import Ref, SolveResult, VertexRecord
from solver.solve.scheduler import Canceled, Scheduler

_STEP_RE = re.compile(r"^\[(?:(?P<stage>[^\]]*?)\s+)?(?P<i>\d+)(?:/(?P<n>\d+))?\]\s*")
_INTERNAL_RE = re.compile(r"^\[internal\]\s*")


@dataclass
class _Outcome:
    """The solved state of one vertex: keys and refs per output, the records of imported
    caches each output matches, and (for an imported hit) how to fetch its refs."""

    keys: list[str]
    refs: list[Ref]
    key_inputs: KeyInputs | None = None
    remote: list[remote.RemoteMatch] = field(default_factory=list)
    loader: Callable[[], list[Ref]] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_refs(self) -> list[Ref]:
        """The refs, fetched from an imported cache the first time they are needed."""
        with self.lock:
            if self.loader is not None:
                self.refs, self.loader = self.loader(), None
            return self.refs


class _InputRefs:
    """The refs of a vertex's inputs, each fetched only when read."""

    def __init__(self, outcomes: list[_Outcome], inputs: list[pb.Input]) -> None:
        self._pairs = list(zip(outcomes, inputs))

    def __getitem__(self, i: int) -> Ref:
        outcome, inp = self._pairs[i]
        return outcome.get_refs()[inp.index]

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self):
        return (self[i] for i in range(len(self)))


@dataclass
class _SolveState:
    graph: Graph
    ctx: OpContext
    no_cache: bool
    place_scope: str
    records: dict[str, VertexRecord] = field(default_factory=dict)
    outcomes: dict[str, _Outcome] = field(default_factory=dict)
    imports: list[Any] = field(default_factory=list)  # remote.ImportedCache
    lock: threading.Lock = field(default_factory=threading.Lock)


def output_count(op: pb.Op) -> int:
    """How many outputs an op has (exec: one per mount with an output index)."""
    inner = op.op
    if isinstance(inner, pb.ExecOp):
        outs = [m.output for m in inner.mounts if m.output >= 0
                and m.mount_type in (pb.MountType.BIND,)]
        return max(outs) + 1 if outs else 0
    return 1


def op_kind(op: pb.Op) -> str:
    inner = op.op
    if isinstance(inner, pb.SourceOp):
        scheme = inner.identifier.split("://", 1)[0]
        return {"docker-image": "image", "local": "local", "oci-layout": "oci-layout"}.get(scheme, scheme)
    return {pb.ExecOp: "exec", pb.FileOp: "file", pb.MergeOp: "merge",
            pb.DiffOp: "diff"}.get(type(inner), type(inner).__name__.lower())


def place_of(name: str, digest: str, scope: str, position: int) -> str:
    """A stable name for "the same step" across edits: stage and step number.

    ``[builder 2/5] RUN make`` -> ``<scope>|builder|2``; names without a step number use
    the name itself (``[internal] load …``) or, without a name, the vertex position.
    """
    match = _STEP_RE.match(name)
    if match:
        return f"{scope}|{match.group('stage') or ''}|{match.group('i')}"
    if name:
        return f"{scope}|name|{name}"
    return f"{scope}|pos|{position}"


def _location(defn: pb.Definition, graph: Graph, digest: str) -> tuple[str | None, int | None]:
    source = defn.source
    if source is None:
        return None, None
    original = {v: k for k, v in graph.renamed.items()}.get(digest, digest)
    locs = source.locations.get(original) or source.locations.get(digest)
    if locs is None or not locs.locations:
        return None, None
    loc = locs.locations[0]
    filename = None
    if 0 <= loc.source_index < len(source.infos):
        filename = source.infos[loc.source_index].filename or None
    line = loc.ranges[0].start.line if loc.ranges and loc.ranges[0].start else None
    return filename, line


def _overlay_works(scratch: Path) -> bool:
    """Can this process mount an overlayfs in ``scratch``? (the snapshot package's probe)"""
    from solver.snapshot.probe import overlay_supported
    return overlay_supported(str(scratch))


def default_snapshotter(root: Path) -> Any:
    """The snapshotter already owning ``root``, else overlay where it mounts, else native.

    ``LLBOOK_SNAPSHOTTER=overlay|native`` overrides the choice for a new cache directory."""
    import os
    from solver.snapshot.native import NativeSnapshotter
    from solver.snapshot.overlay import OverlaySnapshotter
    from solver.snapshot.probe import recorded_driver
    wanted = recorded_driver(Path(root)) or os.environ.get("LLBOOK_SNAPSHOTTER", "").strip().lower()
    if not wanted:  # a new cache dir: the probe verdict is remembered per user until reboot
        wanted = _probed_snapshotter(Path(root).parent / "tmp")
    return OverlaySnapshotter(root) if wanted == "overlay" else NativeSnapshotter(root)


def _probed_snapshotter(scratch: Path) -> str:
    """overlay when an overlay mounts in ``scratch``, else native. The verdict is kept per
    user until reboot next to the executor's (``_machine_executor_memo``), per block device
    of ``scratch`` (never for anonymous devices such as tmpfs, whose numbers are reused)."""
    import json
    import os
    scratch.mkdir(parents=True, exist_ok=True)
    device = os.stat(scratch).st_dev
    executor_memo = _machine_executor_memo()
    memo = executor_memo.with_name("snapshotter.json") if executor_memo is not None else None
    key = f"{os.major(device)}:{os.minor(device)}"
    if memo is None or os.major(device) == 0:
        return "overlay" if _overlay_works(scratch) else "native"
    saved: dict[str, Any] = {}
    if _private_file(memo):
        try:
            saved = json.loads(memo.read_text())
        except (OSError, ValueError):
            saved = {}
    if saved.get("machine") != _machine_identity() or not isinstance(saved.get("devices"), dict):
        saved = {"machine": _machine_identity(), "devices": {}}
    found = saved["devices"].get(key)
    if found in ("overlay", "native"):
        return found
    found = "overlay" if _overlay_works(scratch) else "native"
    saved["devices"][key] = found
    try:
        memo.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if _private_dir(memo.parent):
            _write_memo(memo, saved)
    except OSError:
        pass
    return found


def _platform_text(platform: Any) -> str:
    """``os/arch[/variant]`` of a platform object or string; "default" for None."""
    if platform is None:
        return "default"
    if isinstance(platform, str):
        return platform
    parts = (getattr(platform, "os", ""), getattr(platform, "architecture", ""), getattr(platform, "variant", ""))
    return "/".join(p for p in parts if p)


def _machine_identity() -> dict[str, Any]:
    import os
    return {"uid": os.geteuid(), "kernel": os.uname().release}


def remembered_executor(cache_dir: Path, preference: str | None) -> Any:
    """The probed executor, remembered in ``<cache>/executor.json`` for this user and kernel.

    Probing runs a throwaway container (a few hundred ms); the verdict does not change
    between builds on one machine, so it is probed once per cache directory."""
    import json
    import os
    from solver.executor import probe
    from solver.executor.proot import ProotExecutor
    from solver.executor.runc import RuncExecutor
    wanted = (preference or os.environ.get("LLBOOK_EXECUTOR", "") or "auto").strip().lower()
    memo = Path(cache_dir) / "executor.json"
    machine_memo = _machine_executor_memo()
    for path in (memo, machine_memo):
        if path is None or (path is machine_memo and not _private_file(path)):
            continue
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if saved.get("machine") == _machine_identity() and saved.get("wanted") == wanted:
            name = saved.get("name")
            if path is machine_memo and name in ("proot", *probe.RUNTIMES):
                _write_memo(memo, saved)
            if name == "proot":
                return ProotExecutor()
            if name in probe.RUNTIMES:
                return RuncExecutor(runtime=name)
    executor = probe.choose_executor(None if wanted == "auto" else wanted)
    name = "proot" if isinstance(executor, ProotExecutor) else getattr(executor, "runtime", "runc")
    verdict = {"machine": _machine_identity(), "wanted": wanted, "name": Path(str(name)).name}
    _write_memo(memo, verdict)
    if machine_memo is not None:
        try:
            machine_memo.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if _private_dir(machine_memo.parent):
                _write_memo(machine_memo, verdict)
        except OSError:
            pass  # the per-cache-dir verdict is enough
    return executor


def _machine_executor_memo() -> Path | None:
    """The probe verdict shared by every cache directory of this user until reboot: next
    to runc's state root (``/run/llbook`` as root, else ``$XDG_RUNTIME_DIR/llbook``)."""
    import os
    if os.geteuid() == 0:
        return Path("/run/llbook/executor.json")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime_dir) / "llbook" / "executor.json" if runtime_dir else None


def _private_dir(path: Path) -> bool:
    import os
    st = os.lstat(path)
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022 and not os.path.islink(path)


def _private_file(path: Path) -> bool:
    """Only a verdict this user wrote and nobody else can change is trusted (another user
    must not be able to pick a weaker executor for us)."""
    import os
    try:
        st = os.lstat(path)
        return (st.st_uid == os.geteuid() and not st.st_mode & 0o022 and os.path.isfile(path)
                and not os.path.islink(path) and _private_dir(path.parent))
    except OSError:
        return False


def _write_memo(path: Path, verdict: dict[str, Any]) -> None:
    import json
    import os
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.json")
    tmp.write_text(json.dumps(verdict))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def to_definition(definition_or_state: Any) -> pb.Definition:
    if isinstance(definition_or_state, pb.Definition):
        return definition_or_state
    if isinstance(definition_or_state, (bytes, bytearray)):
        return pb.Definition.from_bytes(bytes(definition_or_state))
    marshal = getattr(definition_or_state, "marshal", None)
    if marshal is None:
        raise TypeError(f"cannot solve {type(definition_or_state).__name__}: need a Definition or a State")
    return marshal()


class Solver:
    """Solves LLB graphs against one persistent cache directory."""

    def __init__(self, cache_dir: str | Path | None = None, executor: Any = None,
                 snapshotter: Any = None, registry_config: Any = None,
                 entitlements: tuple[str, ...] | list[str] = (), max_workers: int | None = None,
                 executor_name: str | None = None) -> None:
        self.paths = CachePaths.resolve(cache_dir).ensure()
        self.store = CacheStore(self.paths)
        self._snapshotter = snapshotter
        self._executor = executor
        self._executor_name = executor_name
        self._executor_lock = threading.Lock()
        self.registry_config = registry_config
        self.entitlements = Entitlements.parse(entitlements)
        self.scheduler = Scheduler(max_workers)
        self._lease = self.store.lease("llbook solver")
        self._image_source: Any = None
        self._memo: Any = None  # contenthash.StatMemo shared by this Solver's solves
        self._context_memo: dict[Any, Any] = {}  # local contexts seen by earlier solves (ops_local)
        self._pinned_images: dict[tuple[str, str], Any] = {}  # see _remember_pinned
        self._memo_seen: tuple[int, int, int] | None = None

    # services ----------------------------------------------------------------------------

    @property
    def snapshotter(self) -> Any:
        if self._snapshotter is None:
            self._snapshotter = default_snapshotter(self.paths.snapshots)
        return self._snapshotter

    def executor(self) -> Any:
        with self._executor_lock:
            if self._executor is None:
                self._executor = remembered_executor(self.paths.root, self._executor_name)
            return self._executor

    def image_source(self) -> Any:
        with self._executor_lock:
            if self._image_source is None:
                from solver.source.image import ImageSource
                from solver.source.registry import RegistryClient
                self._image_source = ImageSource(RegistryClient(self.registry_config))
            return self._image_source

    def image_resolver(self, pull: bool = False) -> Callable[..., tuple[str, dict[str, Any]]]:
        """``resolver(ref, platform) -> (pinned ref, image config)`` for the frontend.

        A reference resolved before is answered from the cache directory (as docker build
        uses a base image it already has); ``pull=True`` asks the registry again.
        """
        from solver.solve.ops_source import ResolutionCache
        cache = ResolutionCache(self.paths.root / "resolved")

        def resolve(ref: str, platform: Any = None) -> tuple[str, dict[str, Any]]:
            text = _platform_text(platform)
            found = None if pull else cache.get(ref, text)
            if found is None:  # only now import the registry client (a warm build needs none)
                from solver.source.registry import Platform
                wanted = None if text == "default" else Platform.parse(text.rstrip("/"))
                resolved = self.image_source().resolve(ref, wanted)
                found = (resolved.pinned, dict(resolved.config))
                cache.put(ref, text, *found)
                self._remember_pinned(resolved)
            return found
        return resolve

    def _stat_memo(self) -> Any:
        """The context stat memo, kept between solves of this Solver (a notebook kernel
        solves every cell with one); loaded again when another process saved it since."""
        memo = self._memo
        if memo is None or _file_signature(memo.path) != self._memo_seen:
            memo = self._memo = _new_memo(self.paths.root)
            self._memo_seen = _file_signature(memo.path)
        return memo

    def _remember_pinned(self, resolved: Any) -> None:
        """Keep what resolving a tag fetched as the resolution of its pinned reference, so
        that the image op of the same solve does not fetch the same documents again
        (``ops_source.resolve_image``: same key, same result as resolving the pinned ref)."""
        from dataclasses import replace
        from solver.source.reference import parse as parse_reference
        pinned = parse_reference(resolved.pinned).string
        p = resolved.platform
        self._pinned_images[(pinned, f"{p.os}/{p.architecture}/{p.variant}")] = replace(resolved, name=pinned)

    def renew_lease(self) -> None:
        """Let go of what earlier solves hold (their snapshots and blobs, which prune spares
        while a live process holds them) as an exiting process would, and take a new lease:
        a resident server does this after each build."""
        self._lease.release()
        self._lease = self.store.lease("llbook solver")

    def close(self) -> None:
        self._lease.release()
        self.scheduler.close()
        self.store.close()

    def __enter__(self) -> "Solver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # solve -------------------------------------------------------------------------------

    def solve(self, definition_or_state: Any, *, context_dirs: dict[str, str | Path] | None = None,
              secrets: dict[str, str | Path] | None = None, no_cache: bool = False,
              progress: Callable[[ProgressEvent], None] | None = None,
              cancel: threading.Event | None = None, image_config: dict[str, Any] | None = None,
              place_scope: str = "", platform: pb.Platform | None = None,
              locations: dict[str, tuple[str | None, int | None]] | None = None,
              cache_imports: list[Any] | tuple[Any, ...] = (),
              ssh: dict[str, str | Path] | None = None,
              resolved: dict[Any, Any] | None = None) -> SolveResult:
        """Solve a Definition (or a State) and return the result ref and per-vertex records.

        ``ssh`` maps ``--ssh`` ids to agent sockets (RUN --mount=type=ssh forwards them).

        ``cache_imports`` are imported caches (``remote.ImportedCache``), asked on a miss.

        ``resolved``: the sources' resolutions (images, git refs) shared with other solves of
        one build, as BuildKit's per-job resolver cache (a git context read, then built).

        ``locations`` maps vertex digests to (filename, line) when the Definition has no
        source map (the Dockerfile frontend's ``Lowered.vertex_sources()``).
        """
        defn = to_definition(definition_or_state)
        if not defn.def_:  # the empty filesystem (llb.scratch(), FROM scratch alone)
            return SolveResult("", 0, Ref.scratch(), [], image_config)
        graph = load(defn)
        bus = ProgressBus()
        if progress is not None:
            bus.subscribe(progress)
        cancel = cancel if cancel is not None else threading.Event()
        vertices = graph.reachable()
        names = {v.digest: graph.name(v.digest) for v in vertices}
        validate({v.digest: v.op for v in vertices}, names, self.entitlements)
        ctx = self.op_context(bus.emit, cancel, context_dirs, secrets, platform, ssh)
        if resolved is not None:  # filled by this solve, read by the next one
            ctx.resolved = {**ctx.resolved, **resolved}
            resolved.update(ctx.resolved)
            ctx.resolved = resolved
        state = _SolveState(graph, ctx, no_cache, place_scope, imports=list(cache_imports))
        for position, v in enumerate(vertices):
            filename, line = (locations or {}).get(v.digest) or _location(defn, graph, v.digest)
            state.records[v.digest] = VertexRecord(
                v.digest, names[v.digest], kind=op_kind(v.op),
                inputs=list(dict.fromkeys(v.input_digests)),
                place=place_of(names[v.digest], v.digest, place_scope, position),
                filename=filename, line=line)
        deps = {v.digest: list(dict.fromkeys(v.input_digests)) for v in vertices}
        try:
            self.scheduler.run(deps, lambda d: self._solve_vertex(state, graph.vertices[d]), cancel)
        finally:
            _save_memo(ctx)
            self._memo_seen = _file_signature(ctx.memo.path) if ctx.memo is not None else None
        head = graph.result
        ref = state.outcomes[head.digest].get_refs()[head.index]
        ordered = [state.records[v.digest] for v in vertices]
        return SolveResult(head.digest, head.index, ref, ordered, image_config)

    def op_context(self, emit: Callable[[ProgressEvent], None], cancel: threading.Event,
                   context_dirs: dict[str, str | Path] | None = None,
                   secrets: dict[str, str | Path] | None = None,
                   platform: pb.Platform | None = None,
                   ssh: dict[str, str | Path] | None = None) -> OpContext:
        """The services an op executor gets (one per solve; a debug shell makes its own)."""
        return OpContext(
            store=self.store, snapshotter=self.snapshotter, executor_factory=self.executor,
            emit=emit, cancel=cancel, lease=self._lease,
            context_dirs={k: Path(v).absolute() for k, v in (context_dirs or {}).items()},
            secrets={k: Path(v).absolute() for k, v in (secrets or {}).items()},
            ssh={k: Path(v).absolute() for k, v in (ssh or {}).items()},
            registry_config=self.registry_config, platform=platform,
            memo=self._stat_memo(), image_source_factory=self.image_source,
            context_memo=self._context_memo, resolved=dict(self._pinned_images))

    # one vertex --------------------------------------------------------------------------

    def _solve_vertex(self, state: _SolveState, vertex: Vertex) -> _Outcome:
        ctx = state.ctx
        ctx.check_canceled()
        record = state.records[vertex.digest]
        info = VertexInfo(vertex.digest, record.name, vertex.op, vertex.metadata,
                          record.filename, record.line)
        if op_kind(vertex.op) == "local":
            return self._solve_local(state, info, record)
        started = time.time()
        try:
            cmap = self._cache_map(ctx, info)
            inputs = [state.outcomes[i.digest] for i in vertex.op.inputs]
            input_refs = _InputRefs(inputs, vertex.op.inputs)
            deps = self._located_dep_keys(ctx, info, cmap, inputs, input_refs, with_files=False)
            outputs = max(1, output_count(vertex.op))
            keys = [cachekey.combine(cmap.digest, out, deps) for out in range(outputs)]
            record.cache_keys = keys
            matches = self._remote_matches(state, info, cmap, deps, inputs, outputs)
            ignore = bool(vertex.metadata and vertex.metadata.ignore_cache)
            skip_lookup = (state.no_cache and not isinstance(vertex.op.op, pb.SourceOp)) or ignore
            found = None if skip_lookup else self._lookup(ctx, keys)
            if found is not None:
                return self._cached(state, record, keys, found, started, matches)
            if cachekey.is_random(keys[0]):
                return self._execute(state, info, record, cmap, keys, inputs, input_refs, started,
                                     skip_lookup, ignore, matches)
            with ctx.store.building(keys[0], lease=ctx.lease):
                found = None if skip_lookup else self._lookup(ctx, keys)
                if found is not None:
                    return self._cached(state, record, keys, found, started, matches)
                hit = None if skip_lookup or outputs != 1 else remote.best_hit(state.imports, matches[0])
                if hit is not None:
                    return self._imported(state, info, record, cmap, keys, deps, inputs, started, matches, hit)
                return self._execute(state, info, record, cmap, keys, inputs, input_refs, started,
                                     skip_lookup, ignore, matches)
        except BaseException as error:
            self._fail(ctx, record, error, started)
            raise

    def _solve_local(self, state: _SolveState, info: VertexInfo, record: VertexRecord) -> _Outcome:
        from solver.solve import ops_source
        started = time.time()
        state.ctx.emit(VertexStarted(info.digest, info.name, started))
        try:
            ref = ops_source.local_ref(state.ctx, info)
        except BaseException as error:
            self._fail(state.ctx, record, error, started)
            raise
        record.started, record.completed = started, time.time()
        record.cache_keys = [cachekey.random_digest()]
        state.ctx.emit(VertexCompleted(info.digest, info.name, started, record.completed))
        outcome = _Outcome(record.cache_keys, [ref], remote=[remote.no_match(state.imports)])
        state.outcomes[info.digest] = outcome
        return outcome

    def _cache_map(self, ctx: OpContext, info: VertexInfo) -> CacheMap:
        source_key = None
        if isinstance(info.op.op, pb.SourceOp):
            from solver.solve import ops_source
            source_key = ops_source.source_key(ctx, info)
        return cachekey.op_cache_map(info.op, source_key)

    def _dep_keys(self, ctx: OpContext, cmap: CacheMap, inputs: list[_Outcome], op: pb.Op,
                  input_refs: Any, with_files: bool) -> list[DepKey]:
        from solver.solve.ops_contenthash import content_checksum
        deps: list[DepKey] = []
        for i, (spec, outcome, inp) in enumerate(zip(cmap.deps, inputs, op.inputs)):
            if spec.content_based:
                checksum, files = content_checksum(ctx, input_refs[i], spec.content, with_files)
                deps.append(DepKey(outcome.keys[inp.index], spec.selector, checksum, files,
                                   spec.compat_selector))
            else:
                deps.append(DepKey(outcome.keys[inp.index], spec.selector,
                                   compat_selector=spec.compat_selector))
        return deps

    def _lookup(self, ctx: OpContext, keys: list[str]) -> list[Record] | None:
        if any(cachekey.is_random(k) for k in keys):
            return None
        found = []
        for key in keys:
            rec = ctx.store.lookup(key, lease=ctx.lease)
            if rec is None:
                return None
            if rec.snapshot is not None and not ctx.snapshotter.exists(rec.snapshot):
                ctx.store.delete(key)  # index entry whose snapshot vanished: rebuild it
                return None
            found.append(rec)
        return found

    def _cached(self, state: _SolveState, record: VertexRecord, keys: list[str],
                found: list[Record], started: float, matches: list[remote.RemoteMatch]) -> _Outcome:
        refs = [Ref.of_snapshot(r.snapshot) if r.snapshot else Ref.scratch() for r in found]
        record.cached = True
        record.started, record.completed = started, time.time()
        record.snapshots = [r.snapshot for r in found]
        record.key_inputs = [dict(found[0].key_inputs)] if found[0].key_inputs else []  # as it was built
        state.ctx.emit(VertexCached(record.digest, record.name, started, record.completed))
        outcome = _Outcome(keys, refs, remote=matches)
        state.outcomes[record.digest] = outcome
        return outcome

    def _located_dep_keys(self, ctx: OpContext, info: VertexInfo, cmap: CacheMap, inputs: list[_Outcome],
                          input_refs: Any, with_files: bool) -> list[DepKey]:
        """``_dep_keys``; an error of a content checksum (a context that changed while it was
        read, a path out of it) is a BuildError naming the step and its Dockerfile line."""
        try:
            return self._dep_keys(ctx, cmap, inputs, info.op, input_refs, with_files=with_files)
        except (LLBookError, OSError) as error:
            if isinstance(error, (BuildError, Canceled)):
                raise
            raise _located(info, f"failed to compute cache key: {_reason(error)}") from error

    def _execute(self, state: _SolveState, info: VertexInfo, record: VertexRecord, cmap: CacheMap,
                 keys: list[str], inputs: list[_Outcome], input_refs: Any, started: float,
                 no_cache: bool, ignore: bool, matches: list[remote.RemoteMatch]) -> _Outcome:
        ctx = state.ctx
        record.started = started
        ctx.emit(VertexStarted(info.digest, info.name, started))
        deps = self._located_dep_keys(ctx, info, cmap, inputs, input_refs,
                                      with_files=any(d.content_based for d in cmap.deps))
        key_inputs = KeyInputs(cmap.digest, 0, tuple(deps), cmap.plaintext, cmap.compat)
        record.key_inputs = [key_inputs.to_json()]
        input_names = [state.records[i.digest].name if i.digest in state.records else ""
                       for i in info.op.inputs]
        record.reasons = [r.to_json() for r in self._reasons(ctx, record.place, key_inputs,
                                                             state.no_cache, ignore, input_names)]
        results = _run_op(ctx, info, list(input_refs))
        duration = time.time() - started
        self._index(ctx, info, record, keys, results, key_inputs, duration)
        record.completed = time.time()
        record.snapshots = [r.ref.snapshot for r in results]
        ctx.emit(VertexCompleted(info.digest, info.name, started, record.completed))
        outcome = _Outcome(keys, [r.ref for r in results], key_inputs, remote=matches)
        state.outcomes[info.digest] = outcome
        return outcome

    # imported caches ---------------------------------------------------------------------

    def _remote_matches(self, state: _SolveState, info: VertexInfo, cmap: CacheMap, deps: list[DepKey],
                        inputs: list[_Outcome], outputs: int) -> list[remote.RemoteMatch]:
        """The records of the imported caches each output matches (none without imports)."""
        if not state.imports:
            return [() for _ in range(outputs)]
        empty = remote.no_match(state.imports)
        input_matches = [o.remote[i.index] if i.index < len(o.remote) else empty
                         for o, i in zip(inputs, info.op.inputs)]
        alternatives = () if deps else _alternative_digests(state.ctx, info)
        return [remote.match_vertex(state.imports, cmap, out, deps, input_matches, alternatives)
                for out in range(outputs)]

    def _imported(self, state: _SolveState, info: VertexInfo, record: VertexRecord, cmap: CacheMap,
                  keys: list[str], deps: list[DepKey], inputs: list[_Outcome], started: float,
                  matches: list[remote.RemoteMatch], hit: tuple[Any, frozenset[int]]) -> _Outcome:
        """A hit in an imported cache: reported cached now, its layers fetched when needed."""
        key_inputs = KeyInputs(cmap.digest, 0, tuple(deps), cmap.plaintext, cmap.compat)
        record.cached = True
        record.started, record.completed = started, time.time()
        record.key_inputs = [key_inputs.to_json()]
        state.ctx.emit(VertexCached(record.digest, record.name, started, record.completed))
        outcome = _Outcome(keys, [], key_inputs, remote=matches)
        outcome.loader = lambda: self._load_imported(state, info, record, cmap, keys, inputs, matches,
                                                     key_inputs, hit)
        state.outcomes[info.digest] = outcome
        return outcome

    def _load_imported(self, state: _SolveState, info: VertexInfo, record: VertexRecord, cmap: CacheMap,
                       keys: list[str], inputs: list[_Outcome], matches: list[remote.RemoteMatch],
                       key_inputs: KeyInputs, hit: tuple[Any, frozenset[int]]) -> list[Ref]:
        """Fetch and unpack an imported result; a refused import (a blob whose digest does
        not match, a registry that fails) builds the vertex instead."""
        ctx = state.ctx
        cache, records = hit
        try:
            layers = cache.fetch(records, ctx.store.content)
        except LLBookError as error:
            layers = None
            ctx.emit(VertexLog(info.digest, 2, f"cache import {cache.name} refused: {error}\n".encode()))
        if layers is None:
            record.cached = False
            outcome = self._execute(state, info, record, cmap, keys, inputs, _InputRefs(inputs, info.op.inputs),
                                    time.time(), False, False, matches)
            return outcome.get_refs()
        from solver.solve.ops_source import _unpack_layer_snapshot
        names: list[str] = []
        for layer in layers:
            ctx.check_canceled()
            ctx.lease.add_blob(layer.blob)
            ctx.store.add_blob(layer.blob, layer.media_type)
            name = "import-" + cachekey.sha256_text(f"{names[-1] if names else ''}\0{layer.blob}")[7:]
            _unpack_layer_snapshot(ctx, name, names[-1] if names else None, layer.path, layer.media_type,
                                   layer.diff_id)
            names.append(name)
        if not names:
            return [Ref.scratch()]
        result = OutputResult(Ref.of_snapshot(names[-1]), 0, tuple(reversed(names[:-1])),
                              tuple(l.blob for l in layers), {"imported": cache.name})
        record.snapshots = [names[-1]]
        self._index(ctx, info, record, keys, [result], key_inputs, 0.0)
        return [result.ref]

    @staticmethod
    def _reasons(ctx: OpContext, place: str, key_inputs: KeyInputs, no_cache: bool,
                 ignore: bool, input_names: list[str]) -> list[reasons.Reason]:
        previous = ctx.store.last_at_place(place)
        old = None
        if previous is not None and previous.key_inputs:
            try:
                old = KeyInputs.from_json(previous.key_inputs)
            except (KeyError, TypeError, ValueError):
                old = None
        return reasons.explain(key_inputs, old, no_cache=no_cache, ignore_cache=ignore,
                               input_names=input_names)

    @staticmethod
    def _index(ctx: OpContext, info: VertexInfo, record: VertexRecord, keys: list[str],
               results: list[OutputResult], key_inputs: KeyInputs, duration: float) -> None:
        if cachekey.is_random(keys[0]):
            return
        for out, (key, result) in enumerate(zip(keys, results)):
            rec = Record(
                cache_key=key, vertex_digest=info.digest, op_kind=op_kind(info.op), name=info.name,
                snapshot=result.ref.snapshot, output_index=out, size=result.size, duration=duration,
                key_inputs={**key_inputs.to_json(), "output": out},
                extra={"reasons": record.reasons, **result.extra},
                parents=result.parents, blobs=result.blobs)
            ctx.store.put(rec, place=record.place if out == 0 else f"{record.place}#{out}",
                          lease=ctx.lease)

    @staticmethod
    def _fail(ctx: OpContext, record: VertexRecord, error: BaseException, started: float) -> None:
        record.completed = time.time()
        if record.started is None:
            record.started = started
        canceled = isinstance(error, (Canceled, KeyboardInterrupt))
        record.error = "canceled" if canceled else str(error)
        ctx.emit(VertexFailed(record.digest, record.name, record.error, record.started,
                              record.completed, canceled=canceled))


def _alternative_digests(ctx: OpContext, info: VertexInfo) -> tuple[str, ...]:
    """Further cache map digests of a root op that BuildKit also records: an image's second
    key, the chain ID of its layers (``CacheMap`` index 1 of BuildKit's image source)."""
    src = info.op.op
    if not isinstance(src, pb.SourceOp) or not src.identifier.startswith("docker-image://"):
        return ()
    from solver.solve import ops_source
    resolved = ops_source.resolve_image(ctx, src.identifier[len("docker-image://"):], info.op)
    chains = ops_source.chain_ids(resolved.diff_ids)
    return (cachekey.sha256_text(cachekey.SOURCE_PREFIX + chains[-1]),) if chains else ()


def _dispatch(ctx: OpContext, info: VertexInfo, input_refs: list[Ref]) -> list[OutputResult]:
    inner = info.op.op
    if isinstance(inner, pb.SourceOp):
        from solver.solve import ops_source
        return ops_source.execute_source(ctx, info)
    if isinstance(inner, pb.ExecOp):
        from solver.solve import ops_exec
        return ops_exec.execute_exec(ctx, info, input_refs)
    if isinstance(inner, pb.FileOp):
        from solver.solve import ops_file
        return ops_file.execute_file(ctx, info, input_refs)
    if isinstance(inner, pb.MergeOp):
        from solver.solve import ops_merge
        return ops_merge.execute_merge(ctx, info, input_refs)
    if isinstance(inner, pb.DiffOp):
        from solver.solve import ops_merge
        return ops_merge.execute_diff(ctx, info, input_refs)
    raise BuildError(f"unsupported op {type(inner).__name__}", vertex=info.digest, name=info.name)


def _run_op(ctx: OpContext, info: VertexInfo, input_refs: list[Ref]) -> list[OutputResult]:
    try:
        return _dispatch(ctx, info, input_refs)
    except (BuildError, Canceled, KeyboardInterrupt):
        raise
    except Exception as error:
        raise _located(info, f"{type(error).__name__}: {error}") from error


def _located(info: VertexInfo, message: str) -> BuildError:
    """A BuildError about ``info``'s vertex, with its Dockerfile and line."""
    return BuildError(message, vertex=info.digest, name=info.name, filename=info.filename, line=info.line)


def _reason(error: BaseException) -> str:
    return str(error) if isinstance(error, LLBookError) else f"{type(error).__name__}: {error}"


def _new_memo(cache_dir: Path) -> Any:
    from solver.cache.statmemo import StatMemo
    return StatMemo.in_dir(cache_dir)


def _file_signature(path: Path | None) -> tuple[int, int, int] | None:
    import os
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino) if st is not None else None


def _save_memo(ctx: OpContext) -> None:
    """Persist the stat memo so the next process re-checks the context with stats only."""
    if ctx.memo is not None:
        try:
            ctx.memo.save_if_changed()
        except OSError:
            pass
