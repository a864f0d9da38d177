"""The compact result view under a ``%%dockerfile`` cell: tabs Progress / DAG / Layers /
Export. It replaces the cell's live progress display when the build ends; its text and
HTML forms (progress, DAG SVG, layer summary) are what nbconvert and terminals show."""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import ipywidgets as w

from kernel_ext.widgets.check_view import warnings_html, warnings_text
from kernel_ext.widgets.dag import DagWidget, dag_static_html, dag_static_text
from kernel_ext.widgets.dag_model import BUILT, CACHED, FAILED, DagCache, DagModel, RunHistory, build_dag
from kernel_ext.widgets.export_controls import ExportControls
from kernel_ext.widgets.fallback import StaticFallback
from kernel_ext.widgets.layers import LayersWidget, layers_static_html
from kernel_ext.widgets.layers_model import LayersModel, build_layers, summary_text
from kernel_ext.widgets.why_model import WhyCell, why_cell

log = logging.getLogger(__name__)
TAB_TITLES = ("Progress", "DAG", "Layers", "Export")


@dataclass
class WidgetState:
    """What the widgets keep per kernel: the run history, the DAG drawings already made,
    and the result view each cell shows now (re-running a cell replaces its output, so the
    old view's widgets are closed instead of living as long as the kernel)."""

    history: RunHistory = field(default_factory=RunHistory)
    views: dict[str, "ResultView"] = field(default_factory=dict)  # cell id -> its current view
    dag_cache: DagCache = field(default_factory=DagCache)

    def replace_view(self, cell_id: str, view: "ResultView") -> None:
        old = self.views.get(cell_id)
        if old is not None and old is not view:
            old.close_all()
        self.views[cell_id] = view


def widget_state(kernel_state: Any) -> WidgetState:
    if getattr(kernel_state, "views", None) is None:
        kernel_state.views = WidgetState()
    return kernel_state.views


@dataclass
class ViewContent:
    """Everything one result view shows, computed without creating a widget: the tabs'
    widgets are made from it when a tab is first opened, the static fallback at once."""

    progress_text: str
    progress_html: str
    dag: DagModel | None = None
    dag_svg: str = ""
    why: list[WhyCell] = field(default_factory=list)
    layers: LayersModel | None = None
    export: Callable[[], ExportControls] | None = None
    note: str = ""
    result_key: tuple[Any, ...] | None = None  # what the Layers and Export tabs depend on


class ResultView(w.Tab):
    """The tabs of one cell's result, with static fallbacks for non-widget front ends.

    Only the Progress tab is a widget from the start; DAG, Layers and Export are created
    when first selected (or read as attributes), so a cell run marshals only what is shown.
    Re-running a cell whose result is unchanged refreshes this view in place (``refresh``)."""

    def __init__(self, content: ViewContent) -> None:
        self.content = content
        self._built: dict[int, Any] = {}
        self._closed = False
        self._progress = w.HTML(content.progress_html)
        children = [self._progress] + [_placeholder(self._hint(i)) for i in (1, 2, 3)]
        super().__init__(children=children, titles=list(TAB_TITLES))
        self.add_class("llbook-result")
        self.observe(self._on_select, names="selected_index")

    # -- the tabs, built on first use ---------------------------------------------------------
    @property
    def progress_text(self) -> str:
        return self.content.progress_text

    @property
    def progress_html(self) -> str:
        return self.content.progress_html

    @property
    def dag(self) -> DagWidget | None:
        return self._tab(1)

    @property
    def layers(self) -> LayersWidget | None:
        return self._tab(2)

    @property
    def export(self) -> ExportControls | None:
        return self._tab(3)

    def _hint(self, index: int) -> str:
        note = self.content.note
        if index == 1:
            return note or "no graph" if self.content.dag is None else "loading the graph…"
        if index == 2:
            return note or "no layers: the build did not finish" if self.content.layers is None else "loading…"
        return note or "nothing to export yet" if self.content.export is None else "loading…"

    def _make(self, index: int) -> Any:
        c = self.content
        if index == 1 and c.dag is not None:
            return DagWidget(c.dag, c.why, compact=True, svg=c.dag_svg)
        if index == 2 and c.layers is not None:
            return LayersWidget(c.layers)
        if index == 3 and c.export is not None:
            return c.export()
        return None

    def _tab(self, index: int) -> Any:
        if index not in self._built and not self._closed:
            widget = self._make(index)
            self._built[index] = widget
            if widget is not None:
                children = list(self.children)
                old, children[index] = children[index], widget
                self.children = children
                old.close()
        return self._built.get(index)  # a closed view makes no new widget

    def _on_select(self, change: dict[str, Any]) -> None:
        index = change.get("new")
        if isinstance(index, int) and 0 < index < len(TAB_TITLES):
            try:
                self._tab(index)
            except Exception:  # a tab that cannot be drawn keeps its hint; the cell is done
                log.debug("result tab %d failed", index, exc_info=True)

    # -- a re-run with the same result ----------------------------------------------------------
    def refresh(self, content: ViewContent) -> None:
        """Show a re-run whose result is this view's: new progress, DAG statuses and reasons;
        the Layers and Export tabs (same result) stay as they are."""
        old, self.content = self.content, replace(content, layers=self.content.layers, export=self.content.export)
        if self._progress.value != content.progress_html:
            self._progress.value = content.progress_html
        dag = self._built.get(1)
        if dag is not None and content.dag is not None and (content.dag, content.why) != (old.dag, old.why):
            dag.show(content.dag, content.why, svg=content.dag_svg)

    # -- a re-run with another result ------------------------------------------------------------
    def reset(self, content: ViewContent) -> None:
        """Show another result in this view's widgets: the progress and the DAG get new traits,
        a made Layers or Export tab (or the selected one) is made again from the new result,
        the others stay hints that are made when opened. No other widget is opened."""
        self.content = content
        if self._progress.value != content.progress_html:
            self._progress.value = content.progress_html
        for index in (1, 2, 3):
            self._reset_tab(index, content)

    def _reset_tab(self, index: int, content: ViewContent) -> None:
        built = self._built.pop(index, None)
        if index == 1 and built is not None and content.dag is not None:
            built.show(content.dag, content.why, svg=content.dag_svg)
            self._built[1] = built
            return
        child = self.children[index]
        if built is None and self.selected_index != index:
            child.value = _hint_html(self._hint(index))  # made when opened, from the new content
            return
        widget = self._make(index) if not self._closed else None
        if widget is None:
            widget = _placeholder(self._hint(index))
        else:
            self._built[index] = widget
        children = list(self.children)
        children[index] = widget
        self.children = children
        _close_tree(child)

    def close_all(self) -> None:
        """Close this view and every widget inside it (their comms and front-end models)."""
        self._closed = True
        _close_tree(self)

    # -- static forms ---------------------------------------------------------------------------
    def static_html(self) -> str:
        """Progress, DAG SVG and layer summary: what viewers without widgets show."""
        c = self.content
        parts = [c.progress_html]
        if c.dag is not None:
            parts.append(dag_static_html(c.dag, c.dag_svg, c.why))
        if c.layers is not None:
            parts.append(layers_static_html(c.layers))
        return "<div class='llbook-result-static'>" + "".join(parts) + "</div>"

    def static_text(self) -> str:
        c = self.content
        parts = []
        if c.dag is not None:
            parts.append(dag_static_text(c.dag, c.why))
        if c.layers is not None:
            parts.append(summary_text(c.layers))
        return "\n".join(parts)

    def fallback(self) -> StaticFallback:
        return StaticFallback(self.static_html(), self.static_text())

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view, with the progress as text and HTML (not ipywidgets' repr of every child)."""
        return {"text/plain": self.progress_text, "text/html": self.progress_html,
                "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                             "model_id": self._model_id}}


def _hint_html(text: str) -> str:
    return f"<div class='llbook-hint'>{html.escape(text)}</div>"


def _placeholder(text: str) -> w.HTML:
    return w.HTML(_hint_html(text))


def _close_tree(widget: Any) -> None:
    for child in list(getattr(widget, "children", ())):
        _close_tree(child)
    widget.close()


def view_content(kernel_state: Any, live: Any, run: Any = None, error: BaseException | None = None,
                 summary: str = "", previous: ViewContent | None = None) -> ViewContent:
    """What the result view of the cell that just ran (``run``) or failed (``error``) shows;
    the layers of ``previous`` (the view shown) are taken when its result is the same."""
    session = kernel_state.session
    views = widget_state(kernel_state)
    _remember(views.history, live, error)
    cell = run.cell if run is not None else _failed_cell(session, error)
    stage = cell.stage if cell is not None else None
    warnings = cell.warnings if cell is not None else []
    content = ViewContent(live.model.to_text(summary) + ("\n" + warnings_text(warnings) if warnings else ""),
                          live.model.to_html(summary) + warnings_html(warnings))
    try:
        content.dag = build_dag(session.dag_input(cell), stage, history=views.history, cache=views.dag_cache)
        content.dag_svg = content.dag.to_svg(views.dag_cache) if content.dag.vertices else ""
        content.why = [why_cell(cell.solved())] if cell is not None and cell.last_result else []
    except Exception as err:  # a view that cannot be drawn must not fail the cell
        log.debug("DAG view failed", exc_info=True)
        content.dag, content.note = None, f"DAG unavailable: {err}"
    if run is not None and run.result is not None and run.result.snapshot:
        try:
            key, _state, image_config = session.stage_state(stage)
            content.result_key = (key, run.result.head, run.result.output, run.result.snapshot,
                                  json.dumps(image_config, sort_keys=True))
            if previous is not None and previous.layers is not None and previous.result_key == content.result_key:
                content.layers, content.export = previous.layers, previous.export  # the same result
            else:
                content.layers = build_layers(session, stage, run.result)
                content.export = lambda: ExportControls(session, stage, directory=str(session.context))
        except Exception as err:
            log.debug("layers view failed", exc_info=True)
            content.layers, content.export, content.note = None, None, f"layers unavailable: {err}"
    return content


def build_result_view(kernel_state: Any, live: Any, run: Any = None, error: BaseException | None = None,
                      summary: str = "") -> ResultView:
    """The result view of the cell that just ran (``run``) or failed (``error``)."""
    return ResultView(view_content(kernel_state, live, run, error, summary))


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
    views = widget_state(kernel_state)
    cell = run.cell if run is not None else _failed_cell(kernel_state.session, error)
    try:
        shown = views.views.get(cell.cell_id) if cell is not None else None
        shown = shown if shown is not None and not shown._closed else None
        content = view_content(kernel_state, live, run, error, summary, shown.content if shown else None)
        if shown is not None:
            if content.result_key is not None and shown.content.result_key == content.result_key:
                shown.refresh(content)  # the same result: the Layers and Export tabs stay
            else:
                shown.reset(content)  # another result in the same widgets
            view = shown
        else:
            view = ResultView(content)
    except Exception:
        log.debug("result view failed", exc_info=True)
        return None
    from IPython.display import display
    if cell is not None:
        views.replace_view(cell.cell_id, view)
    handle = getattr(live, "_handle", None)
    if handle is not None:
        handle.update(view)
    else:
        display(view)
    display(view.fallback())
    return view
