"""``%llb`` sub-commands. Each returns something IPython can display (or None).

graph, layers, export, dump, dockerfile, exec, debug, history, why, status, reset, du, prune,
config, check, cache. ``%llb SUBCOMMAND --help`` explains each.
"""

from __future__ import annotations

import argparse
import html
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel_ext.magic_args import MagicParser
from kernel_ext.session import CellRun, NotebookSession
from kernel_ext.widgets.layers_model import human
from solver.errors import LLBookError


@dataclass
class KernelState:
    """Everything the extension keeps for one kernel (the session registry's entry)."""

    session: NotebookSession
    rich_display: bool = True
    current_cell_id: str | None = None
    last_run: CellRun | None = None
    callbacks: list[Any] = field(default_factory=list)
    views: Any = None  # kernel_ext.widgets.WidgetState, made on first use


class Text:
    """Plain text with an HTML <pre> form, so nbconvert and terminals show the same."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(self.text)}</pre>"


class Table:
    """A small table shown as text and HTML."""

    def __init__(self, headers: list[str], rows: list[list[Any]], title: str = "") -> None:
        self.headers, self.rows, self.title = headers, [[str(c) for c in r] for r in rows], title

    def __repr__(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.headers)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        out = ([self.title] if self.title else []) + [line(self.headers)] + [line(r) for r in self.rows]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows)
        title = f"<b>{html.escape(self.title)}</b>" if self.title else ""
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class SVG:
    def __init__(self, svg: str, dot: str) -> None:
        self.svg, self.dot = svg, dot

    def _repr_svg_(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        return self.dot


def _parser(prog: str, description: str) -> MagicParser:
    return MagicParser(prog=f"%llb {prog}", description=description)


def _parse_mixed(p: MagicParser, argv: list[str], rest: str) -> argparse.Namespace:
    """``p.parse_args`` where the words of the positional ``rest`` may follow options too
    (argparse's parse_intermixed_args cannot format a prog with a ``%`` in it)."""
    args, extra = p.parse_known_args(argv)
    unknown = [word for word in extra if word.startswith("-")]
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    setattr(args, rest, [*getattr(args, rest), *extra])
    return args


# -- sub-commands ---------------------------------------------------------------------------

def cmd_dockerfile(state: KernelState, argv: list[str]) -> Any:
    p = _parser("dockerfile", "The session as a plain Dockerfile that docker build accepts.")
    p.add_argument("--write", metavar="PATH", help="write it to PATH")
    args = p.parse_args(argv)
    text = state.session.dockerfile()
    if args.write:
        Path(args.write).write_text(text)
        return Text(f"wrote {args.write} ({len(text.splitlines())} lines)")
    return Text(text)


def cmd_check(state: KernelState, argv: list[str]) -> Any:
    p = _parser("check", "BuildKit's build checks over the session Dockerfile (as docker build --check), "
                         "each warning shown in its cell.")
    p.parse_args(argv)
    from kernel_ext.widgets.check_view import CheckReport
    checks = state.session.check()
    return CheckReport(checks.warnings, str(checks.error) if checks.error is not None else "")


def cmd_dump(state: KernelState, argv: list[str]) -> Any:
    p = _parser("dump", "The LLB of a stage, as buildctl debug dump-llb prints it.")
    p.add_argument("stage", nargs="?")
    p.add_argument("--format", choices=("json", "dot"), default="json")
    args = p.parse_args(argv)
    from solver.llb import dump
    definition = state.session.stage_state(args.stage)[1].marshal()
    return Text(dump.dump_json(definition) if args.format == "json" else dump.dump_dot(definition))


def cmd_graph(state: KernelState, argv: list[str]) -> Any:
    p = _parser("graph", "The build DAG of a stage (default: the current one), rendered by graphviz.")
    p.add_argument("stage", nargs="?")
    args = p.parse_args(argv)
    if state.rich_display:
        from kernel_ext.widgets import views
        return views.dag_view(state, args.stage)
    from kernel_ext.widgets.dag_model import render_svg
    dot = state.session.graph(args.stage)
    return SVG(render_svg(dot), dot)


def cmd_history(state: KernelState, argv: list[str]) -> Any:
    p = _parser("history", "The build records of the session's cells, as llbook history: ls (a table, the "
                           "default), inspect REF, diff [A B] (no refs: the session's last two builds), steps "
                           "(per-vertex table of the cells' last runs). REF: an id as ls shows it, or ^N (the "
                           "session's N-th latest build).")
    p.add_argument("action", nargs="?", default="ls", choices=("ls", "inspect", "diff", "steps"))
    p.add_argument("refs", nargs="*", metavar="REF")
    p.add_argument("--all", action="store_true", help="every build in the cache dir, not only this session's")
    args = _parse_mixed(p, argv, "refs")
    from kernel_ext import history_view
    if args.action == "ls":
        table = history_view.ls_table(state.session, args.all)
        return Table(table.headers, table.rows, title=table.title)
    if args.action == "inspect":
        if len(args.refs) > 1:
            raise LLBookError("%llb history inspect takes one REF")
        return Text(history_view.inspect_text(state.session, *args.refs, everything=args.all))
    if args.action == "diff":
        return Text(history_view.diff_text(state.session, args.refs, everything=args.all))
    return _steps_table(state)


def _steps_table(state: KernelState) -> Table:
    """Per-vertex table of the cells' last runs: instruction, cached, duration, size."""
    rows = []
    seen: set[str] = set()
    for cell in state.session.cells:
        if cell.last_result is None:
            continue
        for v in cell.last_result.vertices:
            if v.digest in seen or v.kind == "local":
                continue
            seen.add(v.digest)
            size = _record_size(state.session, v.cache_keys)
            rows.append([cell.filename, v.name, "CACHED" if v.cached else ("ERROR" if v.error else "built"),
                         f"{v.duration:.2f}s" if v.duration is not None else "", human(size)])
    return Table(["cell", "instruction", "status", "duration", "size"], rows)


def _record_size(session: NotebookSession, keys: list[str]) -> int:
    for key in keys:
        record = session.solver.store.get(key)
        if record is not None:
            return record.size
    return 0


def _reason_text(reason: dict[str, Any]) -> str:
    text = reason.get("message", reason.get("kind", ""))
    if reason.get("files"):
        text += ": " + ", ".join(reason["files"])
    return text


def cmd_why(state: KernelState, argv: list[str]) -> Any:
    p = _parser("why", "Why vertices were rebuilt in a cell's last run (default: the last cell run).")
    p.add_argument("target", nargs="?", help="a cell number or id, or a vertex digest (prefix)")
    args = p.parse_args(argv)
    session = state.session
    if state.rich_display and not (args.target or "").startswith("sha256:"):
        from kernel_ext.widgets import views
        return views.why_view(state, args.target)
    records = []
    if args.target and args.target.startswith("sha256:"):
        for cell in session.cells:
            for v in (cell.last_result.vertices if cell.last_result else []):
                if v.digest.startswith(args.target):
                    records.append(v)
    else:
        cell = session.cell(args.target) if args.target else (state.last_run.cell if state.last_run else None)
        if cell is None:
            raise LLBookError("no cell has run yet")
        records = list(cell.last_result.vertices) if cell.last_result else []
    lines = []
    for v in records:
        if v.kind == "local":
            continue
        if v.cached:
            lines.append(f"{v.name}: CACHED")
            continue
        reasons = "; ".join(_reason_text(r) for r in v.reasons) or "no reason recorded"
        lines.append(f"{v.name}: rebuilt — {reasons}")
    return Text("\n".join(lines) or "nothing ran")


def cmd_status(state: KernelState, argv: list[str]) -> Any:
    p = _parser("status", "The session's cells, their stages and status.")
    p.parse_args(argv)
    session = state.session
    session.stale_cells()
    rows = [[c.number, c.stage or "", c.status, c.text.strip().splitlines()[0][:60] if c.text.strip() else ""]
            for c in session.cells]
    return Table(["cell", "stage", "status", "first line"], rows,
                 title=f"cache: {session.solver.paths.root}")


def cmd_reset(state: KernelState, argv: list[str]) -> Any:
    p = _parser("reset", "Forget the session's cells (the on-disk cache stays).")
    p.parse_args(argv)
    state.session.reset()
    state.last_run = None
    return Text("session reset")


def cmd_du(state: KernelState, argv: list[str]) -> Any:
    p = _parser("du", "Disk usage of the cache, per entry.")
    p.parse_args(argv)
    entries = state.session.solver.store.du()
    rows = [[getattr(e, "name", "") or getattr(e, "key", "")[:19], human(getattr(e, "size", 0))] for e in entries]
    total = sum(getattr(e, "size", 0) for e in entries)
    return Table(["entry", "size"], rows, title=f"total {human(total)}")


def cmd_prune(state: KernelState, argv: list[str]) -> Any:
    p = _parser("prune", "Remove cache entries, least recently used first (like buildctl prune).")
    p.add_argument("--keep-storage", metavar="SIZE")
    p.add_argument("--all", action="store_true")
    args = p.parse_args(argv)
    from solver.cli.prune import prune_cache, report_lines
    solver = state.session.solver
    report = prune_cache(solver.store, solver.snapshotter, args.keep_storage, args.all)
    return Text("\n".join(report_lines(report) + [f"error: {e}" for e in report.errors]))


def cmd_config(state: KernelState, argv: list[str]) -> Any:
    p = _parser("config", "Show or set the session's settings.")
    p.add_argument("--cache-dir")
    p.add_argument("--executor", choices=("runc", "crun", "proot"))
    p.add_argument("--context")
    p.add_argument("--allow", action="append", default=[], choices=("network.host", "security.insecure"))
    p.add_argument("--buildkit-host", metavar="ADDR",
                   help="solve on this BuildKit daemon (dockerd://, unix://, tcp://, docker-container://); "
                        "'embedded' goes back to the embedded solver")
    from kernel_ext.cell_flags import BuildFlags, add_arguments, from_args
    add_arguments(p)  # docker build's flags for every cell: --network, --add-host, --secret, --ssh, ...
    p.add_argument("--reset-flags", action="store_true", help="forget the docker build flags set here before")
    args = p.parse_args(argv)
    session = state.session
    if args.reset_flags:
        session.flags = BuildFlags()
    session.flags = from_args(args).over(session.flags)
    if args.buildkit_host is not None:
        session.buildkit_host = None if args.buildkit_host in ("", "embedded", "none") else args.buildkit_host
    changed = args.cache_dir or args.executor or args.allow
    if args.context:
        session.context = Path(args.context)
    if changed:
        session.close()
        session.cache_dir = args.cache_dir or session.cache_dir
        session.executor_name = args.executor or session.executor_name
        session.entitlements = tuple(dict.fromkeys(session.entitlements + tuple(args.allow)))
    solver = session.solver
    mirrors = getattr(solver.registry_config, "describe", lambda: "")() if solver.registry_config else ""
    rows = [["cache dir", str(solver.paths.root)], ["executor", type(solver.executor()).__name__],
            ["snapshotter", type(solver.snapshotter).__name__], ["context", str(session.context)],
            ["entitlements", ", ".join(session.entitlements) or "none"], ["registries", mirrors or "defaults"]]
    rows += [[f"--{name}", value] for name, value in session.flags.describe()]
    backend = session.backend()
    if backend is not None:
        workers = backend.workers()  # unreachable daemons fail here, naming the address
        platforms = sorted({f"{p.os}/{p.architecture}" for w in workers for p in w.platforms})
        rows += [["buildkit host", backend.address],
                 ["buildkit workers", ", ".join(w.id for w in workers) + f" ({', '.join(platforms)})"]]
    return Table(["setting", "value"], rows)


def cmd_export(state: KernelState, argv: list[str]) -> Any:
    p = _parser("export", "Export a stage: --output type=oci|docker|tar|local|image,... (docker build's syntax).")
    p.add_argument("stage", nargs="?")
    p.add_argument("--output", "-o", help="e.g. type=docker,dest=img.tar,name=app:latest "
                                           "(without it: the export controls, in a widget front end)")
    p.add_argument("--tag", "-t", action="append", default=[])
    args = p.parse_args(argv)
    if not args.output:
        if not state.rich_display:
            raise LLBookError("%llb export needs --output here (the export controls need a widget front end)")
        from kernel_ext.widgets import views
        return views.export_view(state, args.stage)
    result = state.session.export(args.output, stage=args.stage, tags=tuple(args.tag))
    return Table(["field", "value"], [[k, v] for k, v in result.items()], title="export")


def cmd_cache(state: KernelState, argv: list[str]) -> Any:
    p = _parser("cache", "Export the session's build cache, or import one for the next cells, in BuildKit's "
                         "formats with buildx's syntax: export type=local,dest=DIR[,mode=min|max] | "
                         "type=registry,ref=REF[,mode=...]; import type=local,src=DIR | REF | "
                         "type=registry,ref=REF | type=inline,ref=IMAGE. ls: the imported caches.")
    p.add_argument("action", choices=("export", "import", "ls"))
    p.add_argument("specs", nargs="*", metavar="SPEC", help="as --cache-to (export) or --cache-from (import)")
    from solver.cli.cache_flags import add_arguments
    add_arguments(p)
    p.add_argument("--stage", help="export: the cache of this stage's result (default: the last cell's)")
    p.add_argument("--all", action="store_true", help="export: every result this session's cells built (needs mode=max)")
    args = _parse_mixed(p, argv, "specs")
    from kernel_ext import cache_transfer
    session = state.session
    if args.action == "export":
        reports = cache_transfer.export_caches(session, [*args.specs, *args.cache_to], all_cells=args.all,
                                               stage=args.stage)
        rows = [[r.spec.type, r.spec.ref or r.spec.dest, r.spec.mode, r.digest, r.records, r.layers] for r in reports]
        return Table(["type", "destination", "mode", "digest", "records", "layers"], rows, title="cache export")
    warnings = cache_transfer.import_caches(session, [*args.specs, *args.cache_from]) if args.action == "import" else []
    return Table(["cache", "records", "layers"], cache_transfer.imported_rows(session),
                 title="\n".join([*(f"WARNING: {w}" for w in warnings), "imported caches (asked on a miss)"]))


def cmd_layers(state: KernelState, argv: list[str]) -> Any:
    p = _parser("layers", "The layers of a stage's result, with their file changes (as dive shows).")
    p.add_argument("stage", nargs="?")
    p.add_argument("--files", action="store_true", help="list every changed path")
    p.add_argument("--sort", choices=["name", "size"], default="name", help="order of the layers and the tree")
    p.add_argument("--diff", metavar="OTHER", help="files added, removed and changed from OTHER (a stage, "
                   "history:REF, or an image: registry ref, docker-archive://PATH, oci-layout://PATH) to this result")
    p.add_argument("--platform", default="", help="the platform of a multi-platform OTHER image")
    p.add_argument("--export", metavar="FILE", help="write the stage's file tree to FILE.csv or FILE.json")
    args = p.parse_args(argv)
    state.session.require_local_result("%llb layers")
    if args.diff or args.export:
        from kernel_ext.widgets.layers_requests import layers_command
        return Text(layers_command(state.session, args.stage, args.diff, args.platform, args.export, args.sort))
    if state.rich_display and not args.files:
        from kernel_ext.widgets import views
        return views.layers_view(state, args.stage, sort=args.sort)
    from solver.export.result_source import layer_chain
    session = state.session
    key, stage_state, image_config = session.stage_state(args.stage)
    result = session.solve_state(stage_state, scope=key)
    snapshotter = session.solver.snapshotter
    rows, details = [], []
    history = [h for h in image_config.get("history", []) if not h.get("empty_layer")]
    chain = layer_chain(snapshotter, result.snapshot) if result.snapshot else []
    offset = len(chain) - len(history)
    for i, name in enumerate(chain):
        diff = snapshotter.layer_diff(name)
        made_by = history[i - offset].get("created_by", "") if i >= offset else "(base image)"
        rows.append([i, human(diff.size), len(diff.added), len(diff.modified), len(diff.removed), made_by[:70]])
        if args.files:
            details += [f"[{i}] {c.kind[0].upper()} {c.path}" for c in diff.changes]
    table = Table(["layer", "size", "added", "modified", "removed", "instruction"], rows, title=f"stage {key}")
    return Text(repr(table) + ("\n\n" + "\n".join(details) if details else "")) if args.files else table


def cmd_exec(state: KernelState, argv: list[str]) -> Any:
    p = _parser("exec", "Run a command in a throwaway container on a stage's current state; nothing is kept.")
    p.add_argument("--stage")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LLBookError("%llb exec needs a command after --")
    session = state.session
    key, stage_state, image_config = session.stage_state(args.stage)
    if session.buildkit_host:
        output, code = session.exec_on_daemon(stage_state, command)
        return Text(output + ("" if code == 0 else f"\n(exit code {code})"))
    result = session.solve_state(stage_state, scope=key)
    image = image_config.get("config", {})
    output, code = run_throwaway(session, result.snapshot, command, image)
    return Text(output + ("" if code == 0 else f"\n(exit code {code})"))


def run_throwaway(session: NotebookSession, snapshot: str | None, command: list[str],
                  image_config: dict[str, Any]) -> tuple[str, int]:
    """Run ``command`` on a writable copy of ``snapshot`` and drop the copy afterwards."""
    from solver.executor.base import ProcessSpec
    from solver.snapshot.mount import mounted
    solver = session.solver
    snapshotter = solver.snapshotter
    key = f"exec-{uuid.uuid4().hex}"
    mounts = snapshotter.prepare(key, snapshot)
    chunks: list[bytes] = []
    try:
        with mounted(mounts, parent_dir=solver.paths.tmp) as root:
            spec = ProcessSpec(args=command, env=image_config.get("Env", []),
                               cwd=image_config.get("WorkingDir") or "/", user=image_config.get("User", ""))
            code = solver.executor().run(root, spec, [], stdout=chunks.append, stderr=chunks.append,
                                         cancel=threading.Event())
    finally:
        snapshotter.remove(key)
    return b"".join(chunks).decode("utf-8", "replace"), code


def cmd_debug(state: KernelState, argv: list[str]) -> Any:
    p = _parser("debug", "A shell in the state after step N of a stage ([N/M] of its progress), "
                         "in a JupyterLab terminal running llbook debug; nothing it changes is kept.")
    p.add_argument("step", type=int)
    p.add_argument("--stage", help="the stage (default: the session's last)")
    p.add_argument("--before", action="store_true", help="the state before the step (a RUN's inputs)")
    args = p.parse_args(argv)
    from kernel_ext.debug_terminal import DebugTarget, label, opener
    target = DebugTarget(args.step, args.stage, args.before)
    open_now = opener(state.session, target)
    if not state.rich_display:
        return Text(f"terminal {open_now()}: {label(target)}")
    from kernel_ext.widgets.debug_button import DebugButton
    button = DebugButton(label(target), open_now)
    button.start_terminal()
    return button


COMMANDS = {
    "graph": cmd_graph, "layers": cmd_layers, "export": cmd_export, "dump": cmd_dump,
    "dockerfile": cmd_dockerfile, "exec": cmd_exec, "history": cmd_history, "why": cmd_why,
    "status": cmd_status, "debug": cmd_debug, "reset": cmd_reset, "du": cmd_du, "prune": cmd_prune, "config": cmd_config,
    "check": cmd_check, "cache": cmd_cache,
}


def run(state: KernelState, argv: list[str]) -> Any:
    if not argv or argv[0] in ("-h", "--help", "help"):
        return Text("usage: %llb SUBCOMMAND [--help]\n\nsub-commands: " + ", ".join(COMMANDS))
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise LLBookError(f"unknown %llb sub-command {name!r}; use one of: {', '.join(COMMANDS)}")
    return COMMANDS[name](state, rest)


