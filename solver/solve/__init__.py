"""The embedded solver: parallel scheduling over an LLB graph, BuildKit-style cache keys,
progress events, "why was this rebuilt" records.

    from solver.solve import Solver
    with Solver(cache_dir="~/.cache/llbook") as solver:
        result = solver.solve(definition, context_dirs={"context": "."}, progress=print)
        result.snapshot, [v.name for v in result.executed]
"""

from solver.solve.progress import (ProgressBus, ProgressEvent, VertexCached, VertexCompleted, VertexFailed,
                                   VertexLog, VertexStarted, VertexStatus, VertexWarning)
from solver.solve.result import Ref, SolveResult, VertexRecord
from solver.solve.solver import Solver

__all__ = [
    "ProgressBus", "ProgressEvent", "Ref", "SolveResult", "Solver", "VertexCached", "VertexCompleted",
    "VertexFailed", "VertexLog", "VertexRecord", "VertexStarted", "VertexStatus", "VertexWarning",
]
