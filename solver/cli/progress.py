"""Text printers of the progress event stream: BuildKit's ``plain`` and ``tty`` styles.

- ``PlainPrinter``: ``#N [2/5] RUN …`` / ``#N 0.215 output`` / ``#N CACHED`` /
  ``#N DONE 0.3s`` / ``#N ERROR: …``, one block per vertex as BuildKit's plain mode.
- ``TtyPrinter``: a live view redrawn a few times a second: a ``[+] Building 3.2s (5/7)``
  header, one line per vertex with ``CACHED`` markers and timings, and the last log
  lines of running vertices, each vertex's log drawn through a small terminal emulation
  (``termlog.LogScreen``: ``\r``, cursor movement, erasing; colours dropped; wide
  characters two columns).
- ``make_printer("quiet")`` prints nothing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

from solver.cli.termlog import LogScreen, fit_columns, pad_columns, strip_controls
from solver.errors import shorten
from solver.solve.progress import (ProgressEvent, VertexCached, VertexCompleted, VertexFailed,
                                   VertexLog, VertexStarted, VertexStatus, VertexWarning)


@dataclass
class _VertexView:
    number: int
    name: str
    started: float | None = None
    completed: float | None = None
    cached: bool = False
    error: str | None = None
    canceled: bool = False
    logs: list[str] = field(default_factory=list)
    partial: str = ""
    screen: LogScreen | None = None  # the tty view's terminal of this vertex's log

    def add_log(self, data: bytes, keep: int) -> list[str]:
        """Complete lines of the log, control sequences stripped (the plain view)."""
        text = self.partial + data.decode("utf-8", "replace")
        lines = text.split("\n")
        self.partial = lines.pop()
        lines = [strip_controls(line) for line in lines]
        self.logs.extend(lines)
        del self.logs[:-keep]
        return lines

    def feed_screen(self, data: bytes, columns: int, rows: int) -> None:
        if self.screen is None:
            self.screen = LogScreen(columns, rows)
        self.screen.feed(data)

    def screen_lines(self) -> list[str]:
        return self.screen.lines() if self.screen is not None else []


class _Numbering:
    def __init__(self) -> None:
        self.views: dict[str, _VertexView] = {}

    def view(self, digest: str, name: str = "") -> _VertexView:
        if digest not in self.views:
            self.views[digest] = _VertexView(len(self.views) + 1, name)
        elif name and not self.views[digest].name:
            self.views[digest].name = name
        return self.views[digest]


class PlainPrinter:
    """BuildKit's ``--progress=plain`` format."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self._numbers = _Numbering()
        self._lock = threading.Lock()
        self._status_shown: dict[str, float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            self._handle(event)
            self.out.flush()

    def _handle(self, event: ProgressEvent) -> None:
        if isinstance(event, VertexLog):
            self._log(event)
            return
        if isinstance(event, VertexStatus):
            if not event.completed and event.time - self._status_shown.get(event.id, 0.0) < 1.0:
                return  # at most one line per second per sub-task, as BuildKit's plain mode
            self._status_shown[event.id] = event.time
            view = self._numbers.view(event.digest)
            state = " done" if event.completed else ""
            total = f" / {event.total}" if event.total else ""
            self.out.write(f"#{view.number} {event.name or event.id} {event.current}{total}{state}\n")
            return
        if isinstance(event, VertexWarning):
            view = self._numbers.view(event.digest)
            self.out.write(f"#{view.number} WARN: {event.message}\n")
            return
        view = self._numbers.view(event.digest, event.name)
        if isinstance(event, VertexStarted):
            view.started = event.started
            self.out.write(f"\n#{view.number} {shorten(view.name)}\n")
        elif isinstance(event, VertexCached):
            self.out.write(f"\n#{view.number} {shorten(view.name)}\n#{view.number} CACHED\n")
        elif isinstance(event, VertexCompleted):
            self._flush_partial(view)
            self.out.write(f"#{view.number} DONE {event.completed - event.started:.1f}s\n")
        elif isinstance(event, VertexFailed):
            self._flush_partial(view)
            word = "CANCELED" if event.canceled else f"ERROR: {event.error.splitlines()[0] if event.error else ''}"
            self.out.write(f"#{view.number} {word}\n")

    def _log(self, event: VertexLog) -> None:
        view = self._numbers.view(event.digest)
        start = view.started or event.time
        for line in view.add_log(event.data, keep=1):
            self.out.write(f"#{view.number} {event.time - start:.3f} {line}\n")

    def _flush_partial(self, view: _VertexView) -> None:
        if view.partial:
            self.out.write(f"#{view.number} {strip_controls(view.partial)}\n")
            view.partial = ""


class TtyPrinter:
    """A live, redrawn view like BuildKit's tty progress."""

    LOG_LINES = 6

    def __init__(self, out: TextIO | None = None, refresh: float = 0.15) -> None:
        self.out = out if out is not None else sys.stderr
        self.refresh = refresh
        self._numbers = _Numbering()
        self._lock = threading.Lock()
        self._started = time.time()
        self._drawn = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="llbook-tty", daemon=True)
        self._thread.start()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if isinstance(event, VertexLog):
                width = max(40, _columns() - 1) - len(" => => # ")
                self._numbers.view(event.digest).feed_screen(event.data, width, self.LOG_LINES)
                return
            if isinstance(event, (VertexStatus, VertexWarning)):
                return
            view = self._numbers.view(event.digest, event.name)
            if isinstance(event, VertexStarted):
                view.started = event.started
            elif isinstance(event, VertexCached):
                view.cached, view.started, view.completed = True, event.started, event.completed
            elif isinstance(event, VertexCompleted):
                view.started, view.completed = event.started, event.completed
            elif isinstance(event, VertexFailed):
                view.completed, view.error, view.canceled = event.completed, event.error, event.canceled

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh):
            self._draw()

    def _lines(self, final: bool) -> list[str]:
        now = time.time()
        views = list(self._numbers.views.values())
        done = sum(1 for v in views if v.completed is not None)
        width = max(40, _columns() - 1)
        lines = [f"[+] Building {now - self._started:.1f}s ({done}/{len(views)}){' FINISHED' if final else ''}"]
        body: list[str] = []
        for v in views:
            body.extend(self._vertex_lines(v, now, width))
        room = max(5, _rows() - 2)
        if len(body) > room:  # keep the live end in view; finished lines scroll away
            body = body[len(body) - room:]
        return lines + body

    def _vertex_lines(self, v: _VertexView, now: float, width: int) -> list[str]:
        if v.cached:
            return [_fit(f" => CACHED {v.name}", "0.0s", width)]
        if v.started is None:
            return [_fit(f" => {v.name}", "", width)]
        end = v.completed if v.completed is not None else now
        if v.error is not None:
            mark = "CANCELED" if v.canceled else "ERROR"
            lines = [_fit(f" => {mark} {v.name}", f"{end - v.started:.1f}s", width)]
            return lines + [fit_columns(f" > {line}", width) for line in v.screen_lines()]
        lines = [_fit(f" => {v.name}", f"{end - v.started:.1f}s", width)]
        if v.completed is None:
            lines += [fit_columns(f" => => # {line}", width) for line in v.screen_lines()]
        return lines

    def _draw(self, final: bool = False) -> None:
        with self._lock:
            lines = self._lines(final)
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            body = "".join(f"\x1b[2K{line}\n" for line in lines)
            extra = self._drawn - len(lines)
            clear = "".join("\x1b[2K\n" for _ in range(max(0, extra)))
            back = f"\x1b[{extra}F" if extra > 0 else ""
            self.out.write(up + body + clear + back)
            self.out.flush()
            self._drawn = len(lines)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        self._draw(final=True)


class QuietPrinter:
    def __call__(self, event: ProgressEvent) -> None:
        return None

    def close(self) -> None:
        return None


def _fit(left: str, right: str, width: int) -> str:
    """``left`` and ``right`` on one line of ``width`` terminal columns."""
    if not right:
        return fit_columns(left, width)
    room = width - len(right) - 1
    return pad_columns(fit_columns(left, room), room) + " " + right


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 100


def _rows() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).lines
    except (OSError, ValueError):
        return 40


def make_printer(mode: str, out: TextIO | None = None):
    """``auto`` (tty if stderr is a terminal, else plain), ``tty``, ``plain`` or ``quiet``."""
    out = out if out is not None else sys.stderr
    if mode == "auto":
        mode = "tty" if hasattr(out, "isatty") and out.isatty() else "plain"
    if mode == "tty":
        return TtyPrinter(out)
    if mode == "plain":
        return PlainPrinter(out)
    if mode == "quiet":
        return QuietPrinter()
    raise ValueError(f"unknown progress mode {mode!r} (auto, tty, plain, quiet)")


def close_printer(printer: object) -> None:
    close = getattr(printer, "close", None)
    if callable(close):
        close()
