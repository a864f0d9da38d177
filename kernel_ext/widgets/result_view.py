"""The compact result view under a ``%%dockerfile`` cell: tabs Progress / DAG / Layers /
Export. It replaces the cell's live progress display when the build ends; its text and
HTML forms (progress, DAG SVG, layer summary) are what nbconvert and terminals show."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w

from kernel_ext.widgets.check_view import warnings_html, warnings_text
from kernel_ext.widgets.dag import DagWidget
from kernel_ext.widgets.dag_model import BUILT, CACHED, FAILED, RunHistory, build_dag
from kernel_ext.widgets.export_controls import ExportControls
from kernel_ext.widgets.fallback import StaticFallback
from kernel_ext.widgets.layers import LayersWidget
from kernel_ext.widgets.layers_model import build_layers
from kernel_ext.widgets.why_model import why_cell

log = logging.getLogger(__name__)
TAB_TITLES = ("Progress", "DAG", "Layers", "Export")


@dataclass
class WidgetState:
    """What the widgets keep per kernel: the run history, and the result view each cell
    shows now (re-running a cell replaces its output, so the old view's widgets are closed
    instead of living as long as the kernel)."""

    history: RunHistory = field(default_factory=RunHistory)
    views: dict[str, "ResultView"] = field(default_factory=dict)  # cell id -> its current view

    def replace_view(self, cell_id: str, view: "ResultView") -> None:
        old = self.views.get(cell_id)
        if old is not None and old is not view:
            old.close_all()
        self.views[cell_id] = view


def widget_state(kernel_state: Any) -> WidgetState:
    if getattr(kernel_state, "views", None) is None:
        kernel_state.views = WidgetState()
    return kernel_state.views


class ResultView(w.Tab):
    """The tabs of one cell's result, with static fallbacks for non-widget front ends."""

    def __init__(self, progress_text: str, progress_html: str, dag: DagWidget | None,
                 layers: LayersWidget | None, export: ExportControls | None, note: str = "") -> None:
        self.progress_text, self.progress_html = progress_text, progress_html
        self.dag, self.layers, self.export = dag, layers, export
        placeholder = lambda text: w.HTML(f"<div class='llbook-hint'>{html.escape(text)}</div>")  # noqa: E731
        children = [w.HTML(progress_html),
                    dag if dag is not None else placeholder(note or "no graph"),
                    layers if layers is not None else placeholder(note or "no layers: the build did not finish"),
                    export if export is not None else placeholder(note or "nothing to export yet")]
        super().__init__(children=children, titles=list(TAB_TITLES))
        self.add_class("llbook-result")

    def close_all(self) -> None:
        """Close this view and every widget inside it (their comms and front-end models)."""
        _close_tree(self)

    def static_html(self) -> str:
        """Progress, DAG SVG and layer summary: what viewers without widgets show."""
        parts = [self.progress_html]
        if self.dag is not None:
            parts.append(self.dag.static_html())
        if self.layers is not None:
            parts.append(self.layers.static_html())
        return "<div class='llbook-result-static'>" + "".join(parts) + "</div>"

    def static_text(self) -> str:
        parts = []
        if self.dag is not None:
            parts.append(self.dag.static_text())
        if self.layers is not None:
            parts.append(self.layers.static_text())
        return "\n".join(parts)

    def fallback(self) -> StaticFallback:
        return StaticFallback(self.static_html(), self.static_text())

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        bundle = dict((data[0] if isinstance(data, tuple) else data) or {})
        bundle["text/plain"] = self.progress_text
        bundle["text/html"] = self.progress_html
        return bundle


def _close_tree(widget: Any) -> None:
    for child in list(getattr(widget, "children", ())):
        _close_tree(child)
    widget.close()


def build_result_view(kernel_state: Any, live: Any, run: Any = None, error: BaseException | None = None,
                      summary: str = "") -> ResultView:
    """The result view of the cell that just ran (``run``) or failed (``error``)."""
    session = kernel_state.session
    views = widget_state(kernel_state)
    _remember(views.history, live, error)
    cell = run.cell if run is not None else _failed_cell(session, error)
    stage = cell.stage if cell is not None else None
    dag = layers = export = None
    note = ""
    try:
        model = build_dag(session.dag_input(cell), stage, history=views.history)
        dag = DagWidget(model, [why_cell(cell.solved())] if cell is not None and cell.last_result else [], compact=True)
    except Exception as err:  # a view that cannot be drawn must not fail the cell
        log.debug("DAG view failed", exc_info=True)
        note = f"DAG unavailable: {err}"
    if run is not None and run.result is not None and run.result.snapshot:
        try:
            layers = LayersWidget(build_layers(session, stage, run.result))
            export = ExportControls(session, stage, directory=str(session.context))
        except Exception as err:
            log.debug("layers view failed", exc_info=True)
            note = f"layers unavailable: {err}"
    warnings = cell.warnings if cell is not None else []
    text = live.model.to_text(summary) + ("\n" + warnings_text(warnings) if warnings else "")
    return ResultView(text, live.model.to_html(summary) + warnings_html(warnings), dag, layers, export, note)


_OUTCOMES = {"CACHED": CACHED, "done": BUILT, "error": FAILED}


def _remember(history: RunHistory, live: Any, error: BaseException | None) -> None:
    """Fold the run's progress rows (what it cached, built, failed) into the history."""
    rows = live.model.rows
    history.record_progress({d: _OUTCOMES[r.status] for d, r in rows.items() if r.status in _OUTCOMES})
    for digest, row in rows.items():
        if row.status == "error" and row.error:
            history.record_failure(digest, row.error)
    vertex = getattr(error, "vertex", "")
    if vertex:
        history.record_failure(vertex, str(error))


def _failed_cell(session: Any, error: BaseException | None) -> Any:
    filename = getattr(error, "filename", None)
    for cell in session.cells:
        if cell.filename == filename:
            return cell
    return None


def show_result(kernel_state: Any, live: Any, run: Any = None, error: BaseException | None = None,
                summary: str = "") -> ResultView | None:
    """Replace the cell's progress display by the result view, followed by its static
    fallback (rich front ends only; the widgets' CSS hides the fallback where they render)."""
    if not kernel_state.rich_display or live.quiet:
        return None
    try:
        view = build_result_view(kernel_state, live, run, error, summary)
    except Exception:
        log.debug("result view failed", exc_info=True)
        return None
    from IPython.display import display
    cell = run.cell if run is not None else _failed_cell(kernel_state.session, error)
    if cell is not None:
        widget_state(kernel_state).replace_view(cell.cell_id, view)
    handle = getattr(live, "_handle", None)
    if handle is not None:
        handle.update(view)
    else:
        display(view)
    display(view.fallback())
    return view
