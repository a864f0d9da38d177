"""The notebook's build session: cells → snippets → stages → LLB states.

The session's Dockerfile is the snippets in the order their cells were first run.
Re-running a cell (same cell id) replaces its snippet in place; every run re-lowers all
snippets (cheap) and solves the state at the end of the cell that ran (the embedded
solver's cache makes that incremental). A cell whose end state no longer matches the
one it was last run with is *stale* until it runs again.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_ext.cell_flags import BuildFlags
from solver.errors import BuildError, DockerfileError, LLBookError
from solver.frontend import InstructionRecord, Lowering, LoweringOptions
from solver.llb.state import State
from solver.solve.entitlements import EntitlementError
from solver.solve.progress import ProgressEvent
from solver.solve.result import SolveResult
from solver.solve.solver import Solver

if TYPE_CHECKING:
    from kernel_ext.widgets.model_types import CellSolve, CellWarning, DagInput
    from solver.frontend.checks import CheckWarning

OK, FAILED, STALE, INTERRUPTED, NEW = "ok", "failed", "stale", "interrupted", "new"


@dataclass
class CellOptions:
    """The ``%%dockerfile`` flags of one cell."""

    stage: str | None = None
    context: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    target: str | None = None
    platform: str | None = None
    quiet: bool = False
    flags: BuildFlags = field(default_factory=BuildFlags)  # docker build's flags (kernel_ext.cell_flags)


@dataclass
class Cell:
    """One ``%%dockerfile`` cell as the session knows it."""

    cell_id: str
    text: str
    options: CellOptions
    number: int  # 1-based, in first-run order; names the cell in errors ("cell 3")
    status: str = NEW
    solved_digest: str | None = None  # digest of the end state when it last ran
    stage: str | None = None  # the stage its last instruction belongs to
    last_result: SolveResult | None = None
    duration: float | None = None
    warnings: list[CellWarning] = field(default_factory=list)  # build checks pointing into this cell

    @property
    def filename(self) -> str:
        return f"cell {self.number}"

    def solved(self) -> CellSolve:
        """This cell's name and last result as the views read them."""
        from kernel_ext.widgets.model_types import CellSolve
        return CellSolve(self.filename, self.last_result)


@dataclass
class LoweredCell:
    """Where one cell landed in the session's lowering."""

    cell: Cell
    records: list[InstructionRecord]
    stage: str | None
    state: State | None  # the state at the cell's end (None: only global ARGs)


@dataclass
class SessionLowering:
    """All cells lowered in order."""

    lowering: Lowering
    cells: list[LoweredCell]

    def of(self, cell: Cell) -> LoweredCell:
        for lowered in self.cells:
            if lowered.cell is cell:
                return lowered
        raise KeyError(cell.cell_id)


@dataclass(frozen=True)
class CellSpan:
    """Where a cell's text sits in the session Dockerfile."""

    cell: Cell
    first_line: int  # the session line of the cell's first non-blank line
    count: int
    skipped: int  # blank lines at the top of the cell that the session text leaves out

    def cell_line(self, session_line: int) -> int | None:
        offset = session_line - self.first_line
        return offset + self.skipped + 1 if 0 <= offset < self.count else None


@dataclass
class SessionSource:
    """The session Dockerfile and the cells' places in it."""

    text: str
    spans: list[CellSpan]

    def place(self, warning: CheckWarning) -> CellWarning | None:
        """A warning of the session Dockerfile as a warning of the cell it points at."""
        from kernel_ext.widgets.model_types import CellWarning
        for span in self.spans:
            start = span.cell_line(warning.start_line)
            if start is not None:
                end = span.cell_line(warning.end_line) or start
                return CellWarning(warning.rule, warning.message, warning.description, warning.url,
                                   span.cell.filename, start, end, span.cell.text)
        return None


@dataclass
class SessionChecks:
    """The build checks of the whole session."""

    warnings: list[CellWarning]
    error: DockerfileError | None
    source: str
    violation: bool = False  # error is check=error=true's "lint violation found"


@dataclass
class CellRun:
    """What running one cell did."""

    cell: Cell
    result: SolveResult | None
    stale: list[Cell]
    seconds: float
    records: list[InstructionRecord]

    @property
    def summary(self) -> str:
        if self.result is None:
            return f"0 steps, 0 cached, {self.seconds:.1f} s"
        steps = [v for v in self.result.vertices if v.kind != "local"]
        cached = sum(1 for v in steps if v.cached)
        return f"{len(steps)} steps, {cached} cached, {self.seconds:.1f} s"


class NotebookSession:
    """The build session of one kernel."""

    def __init__(self, *, cache_dir: str | Path | None = None, context: str | Path = ".",
                 build_args: dict[str, str] | None = None, executor: str | None = None,
                 registry_config: Any = None, entitlements: tuple[str, ...] = (),
                 platform: str | None = None, buildkit_host: str | None = None) -> None:
        self.cache_dir = cache_dir
        self.context = Path(context)
        self.build_args = dict(build_args or {})
        self.executor_name = executor
        self.registry_config = registry_config
        self.entitlements = tuple(entitlements)
        self.platform = platform
        self.flags = BuildFlags()  # %llb config's docker build flags, under every cell's own
        # a BuildKit daemon that solves every cell instead of the embedded solver
        self.buildkit_host = buildkit_host or os.environ.get("LLBOOK_BUILDKIT_HOST") or None
        self.cells: list[Cell] = []
        self.session_id = uuid.uuid4().hex[:12]  # names this kernel's builds in the history
        self.cache_imports: list[Any] = []  # caches %llb cache import loaded, asked on a miss
        self.results: list[SolveResult] = []  # every cell build's result (the latest 256), for %llb cache export --all
        self.last_run: CellRun | None = None  # the most recent run_cell, for code cells
        self._by_id: dict[str, Cell] = {}
        self._anonymous = itertools.count(1)
        self._solver: Solver | None = None
        self._resolved: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self._lowered: tuple[Any, SessionLowering] | None = None  # (inputs, lowering) of the last lower()
        self._checked: tuple[Any, SessionChecks] | None = None  # (inputs, result) of the last check()
        self._definitions: dict[int, tuple[State, Any]] = {}  # id(state) -> (state, its Definition)
        self._lock = threading.Lock()

    # -- services -------------------------------------------------------------------------
    @property
    def solver(self) -> Solver:
        if self._solver is None:
            self._solver = Solver(self.cache_dir, registry_config=self.registry_config,
                                  entitlements=self.entitlements, executor_name=self.executor_name)
        return self._solver

    def backend(self) -> Any:
        """The BuildKit backend for `buildkit_host` (None: the embedded solver solves)."""
        if not self.buildkit_host:
            return None
        from solver.buildkit.backend import BuildKitBackend, registry_credentials
        return BuildKitBackend(self.buildkit_host, entitlements=self.entitlements,
                               credentials=registry_credentials(self.registry_config))

    def exec_on_daemon(self, state: State, command: list[str]) -> tuple[str, int]:
        """`%llb exec` with a BuildKit daemon: the command runs there on the stage's result,
        never from cache; its output and exit code come back through the Status stream."""
        from solver.llb.definition import load
        from solver.llb.pb import NetMode
        from solver.solve.progress import VertexLog
        backend = self.backend()
        network = NetMode.HOST if "network.host" in self.entitlements else None
        defn = state.run(command, network=network, ignore_cache=True,
                         custom_name="%llb exec " + " ".join(command)).root().marshal()
        head = load(defn).result
        chunks: list[bytes] = []

        def collect(event: ProgressEvent) -> None:
            if isinstance(event, VertexLog) and head is not None and event.digest == head.digest:
                chunks.append(event.data)
        try:
            with self._lock:
                backend.solve(defn, context_dirs={"context": self.context}, progress=collect)
            code = 0
        except BuildError as error:
            if head is None or error.vertex != head.digest or error.exit_code is None:
                raise
            code = error.exit_code
        return b"".join(chunks).decode("utf-8", "replace"), code

    def require_local_result(self, what: str) -> None:
        """Refuse views that read the result's snapshots when a BuildKit daemon holds the result."""
        if self.buildkit_host:
            raise LLBookError(f"{what} reads the result's filesystem, which is in the BuildKit daemon at "
                              f"{self.buildkit_host}: fetch it with %llb export --output type=local,dest=DIR, "
                              "or go back with %llb config --buildkit-host embedded")

    def close(self) -> None:
        if self._solver is not None:
            self._solver.close()
            self._solver = None

    def _resolver(self, ref: str, platform: Any = None) -> tuple[str, dict[str, Any]]:
        """FROM resolution, memoised for the kernel's life so cached cells stay fast."""
        key = (ref, str(platform))
        if key not in self._resolved:
            self._resolved[key] = self.solver.image_resolver()(ref, platform)
        return self._resolved[key]

    # -- cells ----------------------------------------------------------------------------
    def upsert(self, text: str, cell_id: str | None, options: CellOptions) -> Cell:
        """Add a new cell, or replace the snippet of a known one in place."""
        cid = cell_id or f"anonymous-{next(self._anonymous)}"
        cell = self._by_id.get(cid)
        if cell is None:
            cell = Cell(cid, text, options, number=len(self.cells) + 1)
            self.cells.append(cell)
            self._by_id[cid] = cell
        else:
            cell.text, cell.options = text, options
        return cell

    def cell(self, key: str | int) -> Cell:
        """A cell by id or by its number."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            number = int(key)
            for cell in self.cells:
                if cell.number == number:
                    return cell
        elif key in self._by_id:
            return self._by_id[key]
        raise LLBookError(f"no %%dockerfile cell {key!r} in this session")

    def effective_build_args(self) -> dict[str, str]:
        """The session's build args, then each cell's ``--build-arg`` in first-run order:
        as with docker build, a build arg applies to the whole build."""
        args = dict(self.build_args)
        for cell in self.cells:
            args.update(cell.options.build_args)
        return args

    def lower(self, upto: Cell | None = None, running: Cell | None = None) -> SessionLowering:
        """Lower every cell (or those up to ``upto``) in first-run order, each cell's RUNs
        with its own docker build flags on the session's; the ``--no-cache-filter`` of the
        ``running`` cell (and the session's) marks the stages it names for the whole build.

        The result is kept for the next call while nothing it depends on changed (the
        cells' ids, numbers, texts, stages and flags, the build args, the platform): re-running
        an unchanged cell then costs no lowering. Lowerings are only read, never changed."""
        args = self.effective_build_args()
        no_cache = self.cell_flags(running).run.no_cache_stages
        key = (tuple((c.cell_id, c.number, c.text, c.options.stage, c.options.flags) for c in self.cells),
               upto.cell_id if upto is not None else None, tuple(sorted(args.items())), self.platform,
               self.flags, no_cache)
        if self._lowered is not None and self._lowered[0] == key:
            return self._lowered[1]
        result = self._lower(args, upto, no_cache)
        self._lowered = (key, result)
        return result

    def cell_flags(self, cell: Cell | None) -> BuildFlags:
        """A cell's docker build flags on top of the session's (``%llb config``)."""
        return cell.options.flags.over(self.flags) if cell is not None else self.flags

    def build_flags(self, running: Cell | None = None) -> BuildFlags:
        """The flags a build serves: every cell's secrets and ssh ids (an earlier cell's RUN
        may need its own again) on the session's, the running cell's last."""
        flags = self.flags
        for cell in [c for c in self.cells if c is not running] + ([running] if running is not None else []):
            flags = cell.options.flags.over(flags)
        return flags

    def _lower(self, args: dict[str, str], upto: Cell | None, no_cache: tuple[str, ...] | None) -> SessionLowering:
        options = LoweringOptions(build_args=args, resolver=self._resolver,
                                  platform=self._platform(), session_id="llbook-notebook")
        lowering = Lowering(options=options)
        lowered: list[LoweredCell] = []
        for cell in self.cells:
            flags = self.cell_flags(cell)
            lowering.build.options = replace(flags.lowering(options), no_cache_stages=(
                None if no_cache is None else list(no_cache)))
            records = lowering.add_snippet(cell.text, cell.filename, stage=cell.options.stage)
            stage = lowering.current
            state = lowering.stage_state(stage) if stage is not None else None
            lowered.append(LoweredCell(cell, records, stage, state))
            if cell is upto:
                break
        return SessionLowering(lowering, lowered)

    def _platform(self) -> Any:
        if not self.platform:
            return None
        from solver.llb.platform import Platform
        return Platform.parse(self.platform)

    @property
    def stages(self) -> dict[str, State]:
        lowering = self.lower().lowering
        return {name: lowering.stages[name].state for name in lowering.stage_order}

    def stale_cells(self, session: SessionLowering | None = None) -> list[Cell]:
        """Cells that ran, but whose end state differs from the one they ran with."""
        session = session or self.lower()
        stale = []
        for lowered in session.cells:
            cell = lowered.cell
            if cell.status in (OK, STALE) and cell.solved_digest != self.head_digest(lowered.state):
                cell.status = STALE
                stale.append(cell)
        return stale

    # -- running --------------------------------------------------------------------------
    def run_cell(self, text: str, cell_id: str | None = None, options: CellOptions | None = None, *,
                 progress: Callable[[ProgressEvent], None] | None = None,
                 cancel: threading.Event | None = None) -> CellRun:
        """Add or replace the cell's snippet and solve the state at its end; the build
        (one that solves something, or fails) is recorded in the build history."""
        from kernel_ext.cell_record import CellRecording
        options = options or CellOptions()
        started = time.time()
        cell = self.upsert(text, cell_id, options)
        recording = CellRecording.start(self, cell, options)
        try:
            run = self._run_cell(cell, options, started, progress=recording.tee(progress), cancel=cancel)
        except BaseException as error:
            recording.finish(None, error)
            raise
        if run.result is not None:
            recording.finish(run.result, None)
            self.results = [*self.results[-255:], run.result]
        return run

    def _run_cell(self, cell: Cell, options: CellOptions, started: float, *,
                  progress: Callable[[ProgressEvent], None] | None,
                  cancel: threading.Event | None) -> CellRun:
        cell.warnings = []
        try:
            session = self.lower(running=cell)
            lowered = session.of(cell)
            state, stage = self._target_state(session, lowered, options)
            self._cell_checks(cell)
        except DockerfileError:
            cell.status = FAILED
            raise
        cell.stage = stage
        result = None
        if state is not None:
            try:
                result = self.solve_state(state, options, progress=progress, cancel=cancel,
                                          scope=stage or "", flags=self.build_flags(cell))
            except BuildError as err:
                cell.status = FAILED
                _locate(err, session)
                raise
            except BaseException as err:
                cell.status = INTERRUPTED if isinstance(err, KeyboardInterrupt) else FAILED
                raise
        cell.status = OK
        cell.solved_digest = self.head_digest(state)
        cell.last_result = result
        cell.duration = time.time() - started
        stale = [c for c in self.stale_cells(session) if c is not cell]
        self.last_run = CellRun(cell, result, stale, cell.duration, lowered.records)
        return self.last_run

    def _target_state(self, session: SessionLowering, lowered: LoweredCell,
                      options: CellOptions) -> tuple[State | None, str | None]:
        if options.target:
            stages = session.lowering.stages
            if options.target not in stages:
                raise DockerfileError(f"target stage {options.target!r} could not be found", None,
                                      lowered.cell.filename)
            return stages[options.target].state, options.target
        return lowered.state, lowered.stage

    def solve_state(self, state: State, options: CellOptions | None = None, *,
                    progress: Callable[[ProgressEvent], None] | None = None,
                    cancel: threading.Event | None = None, scope: str = "",
                    flags: BuildFlags | None = None) -> SolveResult:
        """Solve ``state``; ``flags`` (default: every cell's) give the secrets and ssh agents it is served."""
        from solver.cli.build_ssh import ssh_sockets
        options = options or CellOptions()
        flags = flags if flags is not None else self.build_flags()
        context = Path(options.context) if options.context else self.context
        secrets = {s.id: s.src for s in flags.secrets}
        backend = self.backend()
        with ssh_sockets(list(flags.ssh)) as ssh, self._lock:  # key files: an ssh-agent for the solve
            if backend is not None:
                return backend.solve(state, context_dirs={"context": context}, no_cache=options.no_cache,
                                     progress=progress, cancel=cancel, secrets=secrets, ssh=ssh)
            try:
                return self.solver.solve(self.definition(state), context_dirs={"context": context},
                                         no_cache=options.no_cache, progress=progress, cancel=cancel,
                                         place_scope=f"notebook/{scope}", cache_imports=self.cache_imports,
                                         secrets=secrets, ssh=ssh)
            except EntitlementError as err:
                raise _notebook_hint(err) from None

    def definition(self, state: State) -> Any:
        """``state.marshal()``, once per state: lowerings are only read and kept while their
        inputs are unchanged, so the solve, the stale check and the DAG share one Definition."""
        found = self._definitions.get(id(state))
        if found is not None and found[0] is state:
            return found[1]
        if len(self._definitions) > 256:
            self._definitions.clear()
        definition = state.marshal()
        self._definitions[id(state)] = (state, definition)
        return definition

    def head_digest(self, state: State | None) -> str | None:
        """Digest of the state's result vertex (None: no state)."""
        return None if state is None else self.definition(state).head()

    def solve(self, stage: str | None = None, **kwargs: Any) -> SolveResult:
        """Solve a stage (default: the current one) from a code cell."""
        lowering = self.lower().lowering
        return self.solve_state(lowering.stage_state(stage), **kwargs)

    # -- views ----------------------------------------------------------------------------
    def dockerfile(self) -> str:
        """The session as a plain Dockerfile: global ARG cells first, then each stage's
        cells after the cell that started it, in first-run order."""
        return self.session_source().text

    def session_source(self) -> SessionSource:
        """``dockerfile()`` with where each cell's lines are in it."""
        groups: dict[str | None, list[LoweredCell]] = {}
        for lowered in self.lower().cells:
            key = _first_stage(lowered) or lowered.cell.options.stage or lowered.stage
            groups.setdefault(key, []).append(lowered)
        ordered = groups.pop(None, []) + [lowered for cells in groups.values() for lowered in cells]
        parts: list[str] = []
        spans: list[CellSpan] = []
        line = 1
        for lowered in ordered:
            text = lowered.cell.text
            body = text.strip("\n")
            skipped = len(text) - len(text.lstrip("\n"))
            count = body.count("\n") + 1
            spans.append(CellSpan(lowered.cell, line, count, skipped))
            parts.append(body)
            line += count + 1  # one blank line between cells
        return SessionSource("\n\n".join(parts) + "\n", spans)

    def check(self, *, all_stages: bool = True) -> SessionChecks:
        """BuildKit's build checks over the session Dockerfile (so UndefinedVar and friends see
        every cell), each warning placed in its cell."""
        from solver.frontend import context_ignore_patterns
        from solver.frontend.checks import CheckInputs, check_dockerfile
        source = self.session_source()
        inputs = CheckInputs(filename="session Dockerfile", build_args=self.effective_build_args(),
                             all_stages=all_stages, platform=self._platform(), resolver=self._resolver,
                             ignore_patterns=context_ignore_patterns(str(self.context), "Dockerfile"))
        key = (source.text, tuple((sp.cell.cell_id, sp.first_line, sp.count, sp.skipped) for sp in source.spans),
               tuple(sorted(inputs.build_args.items())), self.platform, all_stages, tuple(inputs.ignore_patterns))
        if self._checked is not None and self._checked[0] == key:  # re-running an unchanged session
            return self._checked[1]
        result = check_dockerfile(source.text, inputs)
        placed = [source.place(w) for w in result.warnings]
        checks = SessionChecks([w for w in placed if w is not None], result.error, source.text, result.violation)
        self._checked = (key, checks)
        return checks

    def _cell_checks(self, cell: Cell) -> None:
        """Keep the cell's own warnings; with ``check=error=true`` they fail the cell."""
        checks = self.check()
        cell.warnings = [w for w in checks.warnings if w.cell == cell.filename]
        if checks.violation and cell.warnings:
            rules = ", ".join(dict.fromkeys(w.rule for w in cell.warnings))
            raise DockerfileError(f"lint violation found for rules: {rules}", cell.warnings[0].line,
                                  cell.filename)

    def stage_state(self, stage: str | None = None) -> tuple[str, State, dict[str, Any]]:
        """(name, state, image config) of a stage; default: the current one."""
        lowering = self.lower().lowering
        key = stage or lowering.current
        if key is None or key not in lowering.stages:
            known = ", ".join(lowering.stage_order) or "none yet: run a %%dockerfile cell with FROM"
            raise LLBookError(f"no stage {key!r}; stages: {known}")
        return key, lowering.stages[key].state, self._labelled(lowering.stages[key].image.to_dict())

    def _labelled(self, image: dict[str, Any]) -> dict[str, Any]:
        """The image config with the session's and every cell's ``--label`` (as docker build's
        on its result image); cells in first-run order, a later cell's value winning."""
        labels = dict(self.build_flags().run.labels)
        if not labels:
            return image
        config = dict(image.get("config") or {})
        config["Labels"] = {**(config.get("Labels") or {}), **labels}
        return {**image, "config": config}

    def vertex_status(self) -> dict[str, str]:
        """Vertex digest → cached | built | failed, from the cells' last runs."""
        out: dict[str, str] = {}
        for cell in self.cells:
            for v in (cell.last_result.vertices if cell.last_result else []):
                out[v.digest] = "failed" if v.error else "cached" if v.cached else "built"
        return out

    def dag_input(self, last_cell: Cell | None = None) -> DagInput:
        """What the DAG view reads: the lowering, the cells' last solves with
        ``last_cell``'s last (its records win), the stale cells and the store's record sizes."""
        from kernel_ext.widgets.model_types import DagInput
        lowered = self.lower()
        cells = [c for c in self.cells if c is not last_cell] + ([last_cell] if last_cell is not None else [])
        solver = self._solver  # nothing solved in this kernel yet: do not open the store

        def record_size(key: str) -> int | None:
            record = solver.store.get(key)
            return record.size if record is not None else None

        return DagInput(lowered.lowering, tuple(c.solved() for c in cells),
                        frozenset(c.filename for c in self.stale_cells(lowered)),
                        record_size if solver is not None else None, self._warnings_by_line(), self.definition)

    def _warnings_by_line(self) -> dict[tuple[str, int], tuple[str, ...]]:
        """(cell, line) → the check warnings there, for the DAG's vertex details."""
        out: dict[tuple[str, int], tuple[str, ...]] = {}
        for cell in self.cells:
            for warning in cell.warnings:
                key = (warning.cell, warning.line)
                out[key] = out.get(key, ()) + (f"{warning.rule}: {warning.message}",)
        return out

    def graph(self, stage: str | None = None) -> str:
        """DOT source of a stage's LLB as the DAG view draws it (buildctl's shapes, status fills)."""
        from kernel_ext.widgets.dag_model import build_dag
        key, _, _ = self.stage_state(stage)
        return build_dag(self.dag_input(), key).to_dot()

    def export(self, output: str, stage: str | None = None, tags: tuple[str, ...] = (),
               progress: Any = None) -> dict[str, str]:
        """Solve ``stage`` (all cached when its cells ran) and export it; ``output`` is
        docker build's ``--output`` syntax."""
        from solver.export import epoch_from_env, export, parse_output
        from solver.export.result_source import export_source
        from kernel_ext.cell_record import CellRecording
        backend = self.backend()
        key, state, image_config = self.stage_state(stage)
        if backend is not None:
            return self._export_on_daemon(backend, output, tags, key, state, image_config)
        from solver.source.registry import RegistryClient
        spec = parse_output(output, tags=tags)  # a bad --output is no build: nothing is recorded
        recording = CellRecording.begin(self, f"%llb export {key}", target=key)  # a build in the history
        try:
            result = self.solve_state(state, scope=key, progress=recording.tee(None))
            source = export_source(self.solver, result, image_config)
            done = export(source, spec, epoch=epoch_from_env(spec, self.effective_build_args()), progress=progress,
                          registry_client=RegistryClient(self.solver.registry_config))
        except BaseException as error:
            recording.finish(None, error)
            raise
        recording.finish(result, None, {"type": done.type, "dest": done.dest or ",".join(spec.names),
                                        "manifest": done.manifest_digest, "config": done.config_digest,
                                        "size": done.size})
        out = {"type": done.type, "destination": done.dest or ",".join(spec.names)}
        if done.manifest_digest:
            out["digest"] = done.manifest_digest
            out["size"] = str(done.size)
        if spec.type == "docker":
            out["use"] = f"docker load -i {done.dest} && docker run --rm {spec.names[0] if spec.names else '<image>'}"
        return out

    def _export_on_daemon(self, backend: Any, output: str, tags: tuple[str, ...], key: str, state: State,
                          image_config: dict[str, Any]) -> dict[str, str]:
        """The export done by the BuildKit daemon (its exporters; local/tar land here), recorded
        in the history with the daemon's digests."""
        from kernel_ext.cell_record import CellRecording
        from solver.buildkit.address import parse_address
        from solver.buildkit.backend import export_for, parse_daemon_output
        from solver.cli.build_ssh import ssh_sockets
        flags = self.build_flags()
        target = export_for(parse_daemon_output(output), tags, parse_address(backend.address).scheme)
        assert target is not None
        recording = CellRecording.begin(self, f"%llb export {key}", target=key)
        try:
            with ssh_sockets(list(flags.ssh)) as ssh, self._lock:
                result = backend.solve(state, context_dirs={"context": self.context}, export=target,
                                       image_config=image_config, progress=recording.tee(None),
                                       secrets={s.id: s.src for s in flags.secrets}, ssh=ssh)
        except BaseException as error:
            recording.finish(None, error)
            raise
        response = backend.last.exporter_response if backend.last else {}
        out = {"type": target.type, "destination": target.dest or target.attrs.get("name", "")}
        if response.get("containerimage.digest"):
            out["digest"] = response["containerimage.digest"]
        recording.finish(result, None, {"type": target.type, "dest": out["destination"],
                                        "manifest": response.get("containerimage.digest", ""),
                                        "config": response.get("containerimage.config.digest", ""), "size": 0})
        return out

    def reset(self) -> None:
        """Forget every cell (the on-disk cache stays)."""
        self.cells.clear()
        self._by_id.clear()
        self._resolved.clear()
        self._lowered = None
        self._checked = None
        self._definitions.clear()


def _notebook_hint(err: BuildError) -> BuildError:
    """An entitlement refusal says how a notebook grants it (``%llb config --allow``)."""
    from solver.solve.entitlements import KNOWN
    needed = next((name for name in KNOWN if name in err.message), "")
    if needed:
        err.message = (f"entitlement {needed} is not allowed (as docker build without --allow {needed}); "
                       f"grant it to the session with %llb config --allow {needed}")
        err.args = (str(err),)
    return err


def _locate(err: BuildError, session: SessionLowering) -> None:
    """Point a build error at its cell and line when the solver could not."""
    if err.line is not None and err.filename:
        return
    for record in session.lowering.records:
        if err.name and err.name in record.vertex_names:
            err.filename, err.line = record.filename, record.line
            err.args = (str(err),)
            return


def _first_stage(lowered: LoweredCell) -> str | None:
    for record in lowered.records:
        if record.stage and type(record.instruction).__name__ == "FromInstruction":
            return record.stage
    return None
