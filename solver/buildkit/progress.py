"""The daemon's Status stream as llbook progress events.

BuildKit sends each vertex again whenever it changes (started, cached, completed, error),
and logs, sub-task statuses and warnings as they come. `StatusTranslator` remembers what it
has already reported per vertex, so subscribers see llbook's sequence:
started → (log …) → completed | failed, or cached. It also keeps each vertex's log tail
and the daemon's view of every vertex (`records`) for the DAG and "why" views.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from solver.buildkit import messages as m
from solver.solve.progress import (LogTail, ProgressEvent, VertexCached, VertexCompleted, VertexFailed, VertexLog,
                                   VertexStarted, VertexStatus, VertexWarning)

Emit = Callable[[ProgressEvent], None]


def _time(ts: m.Timestamp | None) -> float | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.to_float()


@dataclass
class DaemonVertex:
    """What the daemon reported about one vertex over the whole solve."""

    digest: str
    name: str = ""
    inputs: list[str] = field(default_factory=list)
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""
    reported: str = ""  # "", "started", "done": what has been emitted
    tail: LogTail = field(default_factory=LogTail, repr=False)


class StatusTranslator:
    """Feeds StatusResponse messages in, emits llbook ProgressEvents out."""

    def __init__(self, emit: Emit | None) -> None:
        self._emit = emit or (lambda event: None)
        self._lock = threading.Lock()
        self.records: dict[str, DaemonVertex] = {}
        self.order: list[str] = []

    def feed(self, response: m.StatusResponse) -> None:
        with self._lock:
            for vertex in response.vertexes:
                self._vertex(vertex)
            for status in response.statuses:
                self._emit(VertexStatus(status.vertex, status.id, status.name, status.current, status.total,
                                        _time(status.started), _time(status.completed),
                                        _time(status.timestamp) or time.time()))
            for log in response.logs:
                self._record(log.vertex).tail.add(log.msg)
                self._emit(VertexLog(log.vertex, int(log.stream), log.msg, _time(log.timestamp) or time.time()))
            for warning in response.warnings:
                self._emit(VertexWarning(warning.vertex, warning.short.decode("utf-8", "replace"),
                                         time.time()))

    def _record(self, digest: str) -> DaemonVertex:
        record = self.records.get(digest)
        if record is None:
            record = self.records[digest] = DaemonVertex(digest)
            self.order.append(digest)
        return record

    def _vertex(self, v: m.ControlVertex) -> None:
        rec = self._record(v.digest)
        rec.name = v.name or rec.name
        rec.inputs = list(v.inputs) or rec.inputs
        rec.started = _time(v.started) or rec.started
        rec.completed = _time(v.completed)
        rec.cached = rec.cached or v.cached
        rec.error = v.error or rec.error
        if rec.reported == "done":
            return
        if v.cached and rec.completed is not None:
            rec.reported = "done"
            started = rec.started or rec.completed
            self._emit(VertexCached(rec.digest, rec.name, started, rec.completed))
            return
        if rec.started is not None and rec.reported == "":
            rec.reported = "started"
            self._emit(VertexStarted(rec.digest, rec.name, rec.started))
        if rec.completed is None:
            return
        started = rec.started if rec.started is not None else rec.completed
        rec.reported = "done"
        if rec.error:
            canceled = "context canceled" in rec.error
            self._emit(VertexFailed(rec.digest, rec.name, rec.error, started, rec.completed, canceled=canceled))
        else:
            self._emit(VertexCompleted(rec.digest, rec.name, started, rec.completed))

    def failed(self) -> list[DaemonVertex]:
        """Vertices the daemon reported with an error (not mere cancellations), in report order."""
        with self._lock:
            return [self.records[d] for d in self.order
                    if self.records[d].error and "context canceled" not in self.records[d].error]
