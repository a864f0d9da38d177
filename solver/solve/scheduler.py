"""Run a DAG of jobs in parallel: a job starts as soon as all its dependencies are done.

The scheduler owns the thread pool and the waiting; what a job does is the caller's
business. The pool outlives one run, so a resident server's builds reuse its threads (and
the SQLite connections they opened); a run that starts while another is going (a solve
from inside a job) gets a pool of its own, so it cannot wait on threads it occupies. The first failure (or a cancel / KeyboardInterrupt in the calling thread)
sets the shared cancel event, no further job starts, running jobs are waited for (they
must watch the event and stop quickly), and the first error is re-raised.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

MIN_WORKERS = 3


def default_workers() -> int:
    return max(MIN_WORKERS, os.cpu_count() or 1)


class Canceled(Exception):
    """The build was canceled before this job could finish."""


@dataclass
class _Run(Generic[T]):
    deps: Mapping[str, Sequence[str]]
    results: dict[str, T] = field(default_factory=dict)
    pending: dict[str, set[str]] = field(default_factory=dict)
    dependents: dict[str, list[str]] = field(default_factory=dict)
    running: dict[Future, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node, node_deps in self.deps.items():
            self.pending[node] = set(node_deps)
            for dep in node_deps:
                if dep not in self.deps:
                    raise ValueError(f"{node} depends on unknown node {dep}")
                self.dependents.setdefault(dep, []).append(node)

    def ready(self) -> list[str]:
        ready = [n for n, deps in self.pending.items() if not deps]
        for n in ready:
            del self.pending[n]
        return ready

    def finish(self, node: str, result: T) -> None:
        self.results[node] = result
        for dependent in self.dependents.get(node, []):
            self.pending[dependent].discard(node)


class Scheduler:
    """Parallel DAG runner with a fixed number of worker threads."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max(1, max_workers or default_workers())
        self._pool: ThreadPoolExecutor | None = None
        self._busy = False
        self._guard = threading.Lock()

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.max_workers, thread_name_prefix="llbook-solve")

    def _take_pool(self) -> tuple[ThreadPoolExecutor, bool]:
        """The kept pool (True) when no other run has it, else a pool for this run only."""
        with self._guard:
            if self._busy:
                return self._new_pool(), False
            self._busy = True
            if self._pool is None:
                self._pool = self._new_pool()
            return self._pool, True

    def close(self) -> None:
        """End the kept pool's threads (idle ones also end when the scheduler is collected)."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def run(self, deps: Mapping[str, Sequence[str]], job: Callable[[str], T],
            cancel: threading.Event | None = None, poll: float = 0.1) -> dict[str, T]:
        """Run ``job(node)`` for every node of ``deps`` (node -> its dependencies)."""
        cancel = cancel if cancel is not None else threading.Event()
        state: _Run[T] = _Run(deps)
        errors: list[BaseException] = []
        pool, kept = self._take_pool()
        try:
            self._loop(state, job, cancel, pool, errors, poll)
        except BaseException:  # KeyboardInterrupt in the waiting thread
            cancel.set()
            self._drain(state, errors)
            raise
        finally:
            if kept:
                with self._guard:
                    self._busy = False
            else:
                pool.shutdown(wait=True)
        if errors:
            raise _first_real(errors)
        if cancel.is_set() and state.pending:
            raise Canceled("build canceled")
        return state.results

    def _loop(self, state: _Run[T], job: Callable[[str], T], cancel: threading.Event,
              pool: ThreadPoolExecutor, errors: list[BaseException], poll: float) -> None:
        while True:
            if not cancel.is_set() and not errors:
                for node in state.ready():
                    state.running[pool.submit(job, node)] = node
            if not state.running:
                return
            done, _ = wait(list(state.running), timeout=poll, return_when=FIRST_COMPLETED)
            for future in done:
                node = state.running.pop(future)
                self._collect(state, node, future, cancel, errors)

    @staticmethod
    def _collect(state: _Run[T], node: str, future: Future, cancel: threading.Event,
                 errors: list[BaseException]) -> None:
        error = future.exception()
        if error is None:
            state.finish(node, future.result())
            return
        errors.append(error)
        cancel.set()

    @staticmethod
    def _drain(state: _Run[T], errors: list[BaseException]) -> None:
        for future in list(state.running):
            try:
                future.result()
            except BaseException as error:  # noqa: BLE001 - collected, first one re-raised
                errors.append(error)
        state.running.clear()


def _first_real(errors: list[BaseException]) -> BaseException:
    """The first error that is not a mere consequence of canceling."""
    for error in errors:
        if not isinstance(error, Canceled):
            return error
    return errors[0]
