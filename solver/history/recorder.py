"""Recording one build: a progress subscriber keeps step events and a bounded log tail, then the record is saved."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from solver.history.record import BUILT, CACHED, CANCELED, FAILED, BuildRecord, StepRecord
from solver.history.store import DEFAULT_KEEP_AGE, DEFAULT_KEEP_COUNT, HistoryStore, new_ref

LOG_TAIL_BYTES = 256 * 1024  # kept per build (BuildKit keeps the whole log; we keep its end)


@dataclass
class _Logs:
    """The last ``limit`` bytes of a build's logs, each line prefixed with its step number."""

    limit: int = LOG_TAIL_BYTES
    chunks: deque[bytes] = field(default_factory=deque)
    kept: int = 0
    total: int = 0

    def add(self, data: bytes) -> None:
        self.chunks.append(data)
        self.kept += len(data)
        self.total += len(data)
        while self.kept > self.limit and len(self.chunks) > 1:
            self.kept -= len(self.chunks.popleft())

    def tail(self) -> bytes:
        data = b"".join(self.chunks)
        return data[-self.limit:]


class Recorder:
    """Subscribe it to a build's ProgressBus; ``finish`` saves the build's record."""

    def __init__(self, store: HistoryStore, record: BuildRecord) -> None:
        self.store, self.record = store, record
        self._steps: dict[str, StepRecord] = {}
        self._numbers: dict[str, int] = {}
        self._logs = _Logs()
        self._lock = threading.Lock()

    @classmethod
    def start(cls, cache_dir: Any, frontend: str, name: str, **fields: Any) -> "Recorder":
        record = BuildRecord(new_ref(), frontend, name, time.time(), **fields)
        return cls(HistoryStore.of(cache_dir), record)

    def __call__(self, event: Any) -> None:
        from solver.solve import progress as p
        with self._lock:
            if isinstance(event, p.VertexLog):
                number = self._numbers.setdefault(event.digest, len(self._numbers) + 1)
                text = event.data if event.data.endswith(b"\n") else event.data + b"\n"
                self._logs.add(b"".join(b"#%d %s\n" % (number, line) for line in text.splitlines()))
                return
            if not isinstance(event, (p.VertexStarted, p.VertexCached, p.VertexCompleted, p.VertexFailed)):
                return
            self._numbers.setdefault(event.digest, len(self._numbers) + 1)
            step = self._steps.setdefault(event.digest, StepRecord(event.digest, event.name))
            step.started = getattr(event, "started", step.started)
            if isinstance(event, p.VertexCached):
                step.status, step.completed = CACHED, event.completed
            elif isinstance(event, p.VertexCompleted):
                step.status, step.completed = BUILT, event.completed
            elif isinstance(event, p.VertexFailed):
                step.status = CANCELED if event.canceled else FAILED
                step.completed, step.error = event.completed, event.error

    def finish(self, result: Any = None, error: BaseException | None = None, *,
               exports: list[dict[str, Any]] | None = None, config_digest: str | None = None,
               image_digest: str | None = None) -> BuildRecord:
        """Complete the record from the solve result (or what the events said) and save it;
        a failure to write history never fails the build."""
        record = self.record
        record.completed = time.time()
        record.status = ("canceled" if isinstance(error, KeyboardInterrupt)
                         else "failed" if error is not None else "completed")
        record.error = None if error is None else (str(error) or type(error).__name__)
        vertices = list(getattr(result, "vertices", None) or [])
        with self._lock:
            record.steps = [self._step(v) for v in vertices] if vertices else list(self._steps.values())
            logs = self._logs.tail()
            record.log_bytes, record.log_truncated = self._logs.total, self._logs.total > len(logs)
        if result is not None:
            record.result = _result_fields(result)
        if config_digest:
            record.result["config_digest"] = config_digest
        if image_digest:
            record.result["image_digest"] = image_digest
        record.exports = list(exports or [])
        try:
            self.store.save(record, logs)
            self.store.collect(DEFAULT_KEEP_COUNT, DEFAULT_KEEP_AGE)
        except OSError:
            pass
        return record

    def _step(self, vertex: Any) -> StepRecord:
        seen = self._steps.get(vertex.digest)
        status = CACHED if vertex.cached else FAILED if vertex.error else BUILT
        if seen is not None and seen.status == CANCELED:
            status = CANCELED
        return StepRecord(vertex.digest, vertex.name, status, vertex.kind, vertex.place, vertex.started,
                          vertex.completed, vertex.error, list(vertex.inputs),
                          dict(vertex.key_inputs[0]) if vertex.key_inputs else {},
                          vertex.filename, vertex.line)


def _result_fields(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"snapshot": getattr(result, "snapshot", None)}
    head = [v for v in result.vertices if v.digest == getattr(result, "head", None)]
    if head and head[0].cache_keys:
        out["cache_key"] = head[0].cache_keys[min(getattr(result, "output", 0), len(head[0].cache_keys) - 1)]
    return out
