"""Each ``%%dockerfile`` cell build (and each ``%llb export``) recorded in the build history
(solver.history), as ``llbook build`` records its builds.

The record says frontend ``notebook``, the session it belongs to, the cells' text, the
session's build args and platform, the secret and ssh ids the build was served (never a
value, key or socket), the cell's docker build flags and an export's result; a failure to
record never fails the cell.
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
        return cls.begin(session, cell.filename, cell, target=options.target, platform=options.platform,
                         context=options.context)

    @classmethod
    def begin(cls, session: Any, name: str, cell: Any = None, *, target: str | None = None,
              platform: str | None = None, context: Any = None) -> "CellRecording":
        """A record named ``name`` of a build of the session (``cell``: the cell that runs)."""
        try:
            from solver.cli.build_flags import history_config
            from solver.history import Recorder
            served, flags = session.build_flags(cell), session.cell_flags(cell)
            recorder = Recorder.start(
                session.cache_dir, "notebook", name, session=session.session_id,
                sources={c.filename: c.text for c in session.cells}, args=session.effective_build_args(),
                target=target, platform=platform or session.platform, context=str(context or session.context),
                secrets=[s.id for s in served.secrets], ssh=[s.id for s in served.ssh],
                config=history_config(flags.network, flags.run))
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

    def finish(self, result: Any, error: BaseException | None, export: dict[str, Any] | None = None) -> None:
        """Save the record (the result's steps, or the events' when the build failed); an
        interrupt (the solve's ``Canceled`` in the worker thread) is recorded as canceled;
        ``export`` (type, dest, manifest, config, size) as the record's export and result digests."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        from solver.solve.scheduler import Canceled
        if isinstance(error, Canceled):
            error = KeyboardInterrupt(str(error) or "build interrupted")
        done = {} if export is None else {"exports": [export], "config_digest": export.get("config") or None,
                                          "image_digest": export.get("manifest") or None}
        try:
            recorder.finish(result, error, **done)
        except Exception:  # noqa: BLE001
            pass
