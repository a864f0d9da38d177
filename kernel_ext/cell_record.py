"""Each ``%%dockerfile`` cell build recorded in the build history (solver.history), as ``llbook build`` records its builds.

The record says frontend ``notebook``, the session it belongs to, the cells' text, the
session's build args and platform; a failure to record never fails the cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Progress = Callable[[Any], None]


@dataclass
class CellRecording:
    """The history record of one cell's build (``recorder`` None: nothing is recorded).
    ``start`` reads a ``NotebookSession``, its ``Cell`` and ``CellOptions`` (typed Any: this
    module is imported by session.py, and imports nothing of the kernel's)."""

    recorder: Any = None

    @classmethod
    def start(cls, session: Any, cell: Any, options: Any) -> "CellRecording":
        try:
            from solver.history import Recorder
            recorder = Recorder.start(
                session.cache_dir, "notebook", cell.filename, session=session.session_id,
                sources={c.filename: c.text for c in session.cells}, args=session.effective_build_args(),
                target=options.target, platform=options.platform or session.platform,
                context=str(options.context or session.context))
        except Exception:  # noqa: BLE001 - history is best effort, the cell still builds
            recorder = None
        return cls(recorder)

    def tee(self, progress: Progress | None) -> Progress | None:
        """``progress`` with the recorder subscribed; a recorder that fails is dropped."""
        if self.recorder is None:
            return progress

        def emit(event: Any) -> None:
            recorder = self.recorder
            if recorder is not None:
                try:
                    recorder(event)
                except Exception:  # noqa: BLE001
                    self.recorder = None
            if progress is not None:
                progress(event)
        return emit

    def finish(self, result: Any, error: BaseException | None) -> None:
        """Save the record (the result's steps, or the events' when the build failed); an
        interrupt (the solve's ``Canceled`` in the worker thread) is recorded as canceled."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        from solver.solve.scheduler import Canceled
        if isinstance(error, Canceled):
            error = KeyboardInterrupt(str(error) or "build interrupted")
        try:
            recorder.finish(result, error)
        except Exception:  # noqa: BLE001
            pass
