"""llbook's build engine: LLB, the Dockerfile frontend, the embedded solver and exporters.

Nothing here imports Jupyter or kernel_ext; tests drive it as plain Python. The error
classes are imported on first use (PEP 562), so that the thin client of ``llbook build``
(``solver.cli.main`` → ``solver.server.client``) does not pay for ``dataclasses``,
``inspect`` and ``typing`` at start-up (~13 ms here).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own costs ~4 ms at start-up; type checkers treat this name as True
if TYPE_CHECKING:
    from solver.errors import BuildError, DockerfileError, LLBookError

__all__ = ["BuildError", "DockerfileError", "LLBookError"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from solver import errors
        return getattr(errors, name)
    raise AttributeError(f"module 'solver' has no attribute {name!r}")
