"""One stream of build progress events, and the bus that fans them out to subscribers.

Every front end (the CLI printers, the notebook widgets, the metadata file writer)
consumes the same events. The solver emits them from worker threads; the bus delivers
them synchronously, in emission order, under one lock, so a subscriber sees a
consistent sequence per vertex: started → (log …) → completed | failed, or cached.

Times are ``time.time()`` seconds (wall clock, comparable across processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class VertexStarted:
    digest: str
    name: str
    started: float = field(default_factory=time.time)


@dataclass(frozen=True)
class VertexCached:
    digest: str
    name: str
    started: float = field(default_factory=time.time)
    completed: float = field(default_factory=time.time)


@dataclass(frozen=True)
class VertexCompleted:
    digest: str
    name: str
    started: float
    completed: float = field(default_factory=time.time)


@dataclass(frozen=True)
class VertexFailed:
    digest: str
    name: str
    error: str
    started: float
    completed: float = field(default_factory=time.time)
    canceled: bool = False


@dataclass(frozen=True)
class VertexLog:
    digest: str
    stream: int  # 1 stdout, 2 stderr
    data: bytes
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class VertexStatus:
    """Progress of a sub-task of a vertex, e.g. the download of one layer."""

    digest: str
    id: str
    name: str = ""
    current: int = 0
    total: int = 0
    started: float | None = None
    completed: float | None = None
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class VertexWarning:
    digest: str
    message: str
    time: float = field(default_factory=time.time)


ProgressEvent = Union[VertexStarted, VertexCached, VertexCompleted, VertexFailed, VertexLog,
                      VertexStatus, VertexWarning]
Subscriber = Callable[[ProgressEvent], None]


class ProgressBus:
    """Delivers each event to every subscriber, in order; a failing subscriber is dropped."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)
        return unsubscribe

    def emit(self, event: ProgressEvent) -> None:
        with self._lock:
            broken = []
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:  # a broken printer must not break the build
                    broken.append(subscriber)
            for subscriber in broken:
                self._subscribers.remove(subscriber)

    __call__ = emit


class LogTail:
    """The last bytes written by a vertex over all its streams, in write order."""

    def __init__(self, limit: int = 64 * 1024) -> None:
        self._limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._data += data
            if len(self._data) > self._limit:
                del self._data[: len(self._data) - self._limit]

    def lines(self, count: int = 20) -> list[str]:
        with self._lock:
            text = bytes(self._data).decode("utf-8", "replace")
        return text.splitlines()[-count:]


class VertexLogWriter:
    """A binary file-like object that turns writes into ``VertexLog`` events and feeds a tail."""

    def __init__(self, emit: Callable[[ProgressEvent], None], digest: str, stream: int,
                 tail: LogTail) -> None:
        self._emit = emit
        self._digest = digest
        self._stream = stream
        self._tail = tail

    def write(self, data: bytes) -> int:
        if not data:
            return 0
        data = bytes(data)
        self._tail.add(data)
        self._emit(VertexLog(self._digest, self._stream, data))
        return len(data)

    def flush(self) -> None:
        return None
