"""StateRef: what exec and file ops read of a State (its output and working directory), so they need not import state.py."""

from __future__ import annotations

from typing import Protocol

from solver.llb.vertex import Output


class StateRef(Protocol):
    """A filesystem state as a mount or copy source sees it (solver.llb.state.State satisfies it)."""

    @property
    def output(self) -> Output | None: ...

    @property
    def cwd(self) -> str: ...
