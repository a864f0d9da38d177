"""The small data the views read from a notebook session, so that no view imports the session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from solver.frontend import Lowering
from solver.solve.result import SolveResult


@dataclass(frozen=True)
class CellSolve:
    """One cell by name ("cell 3") and the result of its last solve (None: not solved)."""

    filename: str
    result: SolveResult | None


@dataclass(frozen=True)
class DagInput:
    """What the DAG view needs of a session: its lowering, the cells' last solves (the one
    that ran last at the end, so its records win), the stale cells, and the size of a
    cache record by key (None before anything was solved in this kernel)."""

    lowering: Lowering
    solves: tuple[CellSolve, ...]
    stale_cells: frozenset[str]
    record_size: Callable[[str], int | None] | None = None
