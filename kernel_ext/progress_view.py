"""Live build progress under a cell, built on the solver's one event stream.

``ProgressModel`` folds events into one row per vertex (running, CACHED, done, error,
with durations and the RUN output). ``LiveProgress`` shows it: in a Jupyter front end as
a display that is updated in place (text/plain and text/html, so nbconvert keeps the
same information as text); in a terminal as plain lines as they happen. The solver runs
in a worker thread; every display call happens on the kernel's main thread, so the
output lands in the cell that is running.
"""

from __future__ import annotations

import html
import queue
import sys
import time
from dataclasses import dataclass, field

from solver.cli.progress import PlainPrinter
from solver.cli.termlog import strip_controls
from solver.solve.progress import (ProgressEvent, VertexCached, VertexCompleted, VertexFailed, VertexLog,
                                   VertexStarted, VertexStatus)

LOG_LINES_SHOWN = 6
RUNNING, CACHED, DONE, ERROR = "running", "CACHED", "done", "error"


@dataclass
class VertexRow:
    digest: str
    name: str
    status: str = RUNNING
    started: float = 0.0
    completed: float | None = None
    log: list[str] = field(default_factory=list)
    error: str = ""
    detail: str = ""

    def duration(self, now: float) -> float:
        return (self.completed or now) - self.started


class ProgressModel:
    """Per-vertex rows, in the order vertices started."""

    def __init__(self) -> None:
        self.rows: dict[str, VertexRow] = {}
        self.started = time.time()
        self._partial: dict[str, str] = {}

    def apply(self, event: ProgressEvent) -> None:
        if isinstance(event, (VertexStarted, VertexCached, VertexCompleted, VertexFailed)):
            row = self.rows.get(event.digest)
            if row is None:
                row = self.rows[event.digest] = VertexRow(event.digest, event.name, started=event.started)
            if isinstance(event, VertexCached):
                row.status, row.completed = CACHED, event.completed
            elif isinstance(event, VertexCompleted):
                row.status, row.completed = DONE, event.completed
            elif isinstance(event, VertexFailed):
                row.status, row.completed, row.error = ERROR, event.completed, event.error
        elif isinstance(event, VertexLog) and event.digest in self.rows:
            self._add_log(self.rows[event.digest], event.data.decode("utf-8", "replace"))
        elif isinstance(event, VertexStatus) and event.digest in self.rows:
            if event.total:
                self.rows[event.digest].detail = f"{event.name} {event.current}/{event.total}"

    def _add_log(self, row: VertexRow, text: str) -> None:
        text = self._partial.pop(row.digest, "") + text
        lines = text.split("\n")
        if lines[-1]:
            self._partial[row.digest] = lines[-1]
        row.log.extend(strip_controls(line) for line in lines[:-1])  # HTML cannot draw \r or ESC [

    def flush_partial(self) -> None:
        for digest, text in self._partial.items():
            self.rows[digest].log.append(strip_controls(text))
        self._partial.clear()

    def to_text(self, summary: str = "") -> str:
        now = time.time()
        out = []
        for i, row in enumerate(self.rows.values(), 1):
            status = {RUNNING: "...", CACHED: "CACHED", DONE: "DONE", ERROR: "ERROR"}[row.status]
            out.append(f"#{i} {row.name}  {status} {row.duration(now):.1f}s".rstrip())
            for line in row.log[-LOG_LINES_SHOWN:]:
                out.append(f"#{i} | {line}")
            if row.error:
                out.append(f"#{i} ERROR: {row.error.splitlines()[0] if row.error else ''}")
        if summary:
            out.append(summary)
        return "\n".join(out)

    def to_html(self, summary: str = "") -> str:
        now = time.time()
        colours = {RUNNING: "#1f6feb", CACHED: "#6e7781", DONE: "#1a7f37", ERROR: "#cf222e"}
        rows = []
        for row in self.rows.values():
            log = "".join(f"<div class='llbook-log'>{html.escape(line)}</div>" for line in row.log[-LOG_LINES_SHOWN:])
            rows.append(
                f"<tr><td style='color:{colours[row.status]};font-weight:bold'>{row.status}</td>"
                f"<td><code>{html.escape(row.name)}</code>{log}</td>"
                f"<td style='text-align:right'>{row.duration(now):.1f}s</td></tr>")
        foot = f"<div class='llbook-summary'><b>{html.escape(summary)}</b></div>" if summary else ""
        return ("<div class='llbook-progress'><table style='font-size:12px'>" + "".join(rows) +
                "</table>" + foot + "</div>")


class ProgressDisplay:
    """A display object IPython shows with both text and HTML."""

    def __init__(self, model: ProgressModel, summary: str = "") -> None:
        self.model, self.summary = model, summary

    def __repr__(self) -> str:
        return self.model.to_text(self.summary)

    def _repr_html_(self) -> str:
        return self.model.to_html(self.summary)


class LiveProgress:
    """Receives events on any thread; shows them when ``pump`` runs on the main thread."""

    def __init__(self, *, rich: bool, quiet: bool = False) -> None:
        self.model = ProgressModel()
        self.events: queue.Queue[ProgressEvent] = queue.Queue()
        self.rich = rich
        self.quiet = quiet
        self._handle = None
        # where no widget frontend exists: the CLI's plain printer (BuildKit's `#N …` lines)
        self._printer = PlainPrinter(sys.stdout)

    def __call__(self, event: ProgressEvent) -> None:
        self.events.put(event)

    def pump(self, summary: str = "", refresh: bool = True) -> None:
        """Apply queued events and refresh what the cell shows (unless ``refresh`` is false)."""
        changed = False
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self.model.apply(event)
            changed = True
            if not self.rich and not self.quiet:
                self._printer(event)
        if refresh and self.rich and not self.quiet and (changed or summary or self._handle is None):
            self._show(summary)

    def finish(self, summary: str, show: bool = True) -> None:
        """Apply the last events and show the summary; ``show=False`` leaves the rich display
        as it is (the result view replaces it next; ``show_summary`` if it does not)."""
        self.pump(refresh=show)
        self.model.flush_partial()
        if self.quiet:
            return
        if self.rich:
            if show:
                self._show(summary)
        else:
            print(summary, flush=True)

    def show_summary(self, summary: str) -> None:
        """Show the finished progress with ``summary`` (rich front ends)."""
        if self.rich and not self.quiet:
            self._show(summary)

    def _show(self, summary: str) -> None:
        from IPython.display import display
        view = ProgressDisplay(self.model, summary)
        if self._handle is None:
            self._handle = display(view, display_id=True)
        else:
            self._handle.update(view)
