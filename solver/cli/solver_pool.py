"""The Solver a build uses: a fresh one per process, or, in the resident server, one kept per
cache directory and settings so that its stat memo, context memo and open store outlive
the build (``keep()``)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

_kept: dict[tuple[str, ...], Any] | None = None  # None: not resident
_lock = threading.Lock()


def keep() -> None:
    """From now on, keep the Solvers builds open (the server calls this once)."""
    global _kept
    if _kept is None:
        _kept = {}


def _key(cache_dir: Any, registry_config: Any, entitlements: Any, executor_name: Any) -> tuple[str, ...]:
    from solver.cache.paths import resolve_cache_dir
    return (str(resolve_cache_dir(cache_dir)), repr(registry_config), repr(sorted(entitlements or ())),
            str(executor_name))


@contextmanager
def open_solver(*, cache_dir: Any = None, registry_config: Any = None, entitlements: Any = (),
                executor_name: Any = None) -> Iterator[Any]:
    """A Solver for one build; a kept one releases its lease after the build, as a process does."""
    from solver.solve.solver import Solver
    settings = dict(cache_dir=cache_dir, registry_config=registry_config, entitlements=entitlements,
                    executor_name=executor_name)
    if _kept is None:
        with Solver(**settings) as solver:
            yield solver
        return
    key = _key(cache_dir, registry_config, entitlements, executor_name)
    with _lock:
        solver = _kept.get(key)
        if solver is None:
            solver = _kept[key] = Solver(**settings)
    try:
        yield solver
    finally:
        solver.renew_lease()


def close_all() -> None:
    """Close every kept Solver (the server is exiting)."""
    if _kept is None:
        return
    with _lock:
        for solver in _kept.values():
            solver.close()
        _kept.clear()


def kept_count() -> int:
    return len(_kept or {})
