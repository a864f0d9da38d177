"""llbook's IPython extension: ``%load_ext kernel_ext`` registers ``%%dockerfile`` and ``%llb``.

The kernel's session registry below is the only module-level mutable state: one
``KernelState`` per IPython shell, created on load and dropped on unload.
"""

from __future__ import annotations

import os
from typing import Any

from kernel_ext.commands import KernelState
from kernel_ext.session import CellOptions, CellRun, NotebookSession

__all__ = ["CellOptions", "CellRun", "NotebookSession", "load_ipython_extension", "session",
           "unload_ipython_extension"]

_registry: dict[int, KernelState] = {}  # id(shell) -> state: the kernel's session registry


def _new_session() -> NotebookSession:
    allow = tuple(a for a in os.environ.get("LLBOOK_ALLOW", "").split(",") if a)
    session = NotebookSession(cache_dir=os.environ.get("LLBOOK_CACHE_DIR") or None, context=os.getcwd(),
                              executor=os.environ.get("LLBOOK_EXECUTOR") or None, entitlements=allow)
    if os.environ.get("LLBOOK_CACHE_FROM"):  # a cache shipped with the notebooks (binder/start)
        import sys
        from kernel_ext.cache_transfer import import_from_env
        for warning in import_from_env(session):
            print(f"WARNING: {warning}", file=sys.stderr)
    return session


def load_ipython_extension(shell: Any) -> None:
    """Register the magics and the cell-id hook; loading twice is harmless."""
    if id(shell) in _registry:
        return
    from kernel_ext.magics import LLBookMagics
    rich = type(shell).__name__ == "ZMQInteractiveShell"
    state = KernelState(_new_session(), rich_display=rich)

    def remember_cell_id(info: Any) -> None:
        state.current_cell_id = getattr(info, "cell_id", None)

    shell.events.register("pre_run_cell", remember_cell_id)
    state.callbacks.append(("pre_run_cell", remember_cell_id))
    shell.register_magics(LLBookMagics(shell, state))
    _registry[id(shell)] = state


def unload_ipython_extension(shell: Any) -> None:
    """Remove the magics and hooks and close the session."""
    state = _registry.pop(id(shell), None)
    if state is None:
        return
    for event, callback in state.callbacks:
        shell.events.unregister(event, callback)
    magics = shell.magics_manager.magics
    magics["cell"].pop("dockerfile", None)
    magics["line"].pop("llb", None)
    state.session.close()


def session() -> NotebookSession:
    """The session of the running kernel (for code cells): ``solve()``, ``export()``,
    ``graph()``, ``dockerfile()`` and ``stages``."""
    from IPython import get_ipython
    shell = get_ipython()
    if shell is None or id(shell) not in _registry:
        raise RuntimeError("run %load_ext kernel_ext first")
    return _registry[id(shell)].session
