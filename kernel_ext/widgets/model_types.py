"""The small data the views read from a notebook session, so that no view imports the session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    warnings: Mapping[tuple[str, int], tuple[str, ...]] = field(default_factory=dict)  # (cell, line) -> shorts
    definition: Callable[[Any], Any] | None = None  # State -> its Definition, marshalled once per state


@dataclass(frozen=True)
class CellWarning:
    """One build-check warning placed in the cell it points at (lines are the cell's own)."""

    rule: str
    message: str
    description: str
    url: str
    cell: str  # "cell 2"
    line: int
    end_line: int
    cell_text: str

    @property
    def short(self) -> str:
        return f"{self.rule}: {self.message} ({self.cell}, line {self.line})"
