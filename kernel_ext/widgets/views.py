"""The full views that ``%llb graph``, ``%llb layers``, ``%llb export`` and ``%llb why`` open
in a widget front end."""

from __future__ import annotations

from typing import Any

from kernel_ext.widgets.dag import DagWidget
from kernel_ext.widgets.dag_model import build_dag
from kernel_ext.widgets.export_controls import ExportControls
from kernel_ext.widgets.fallback import WithFallback
from kernel_ext.widgets.layers import LayersWidget
from kernel_ext.widgets.layers_model import build_layers
from kernel_ext.widgets.result_view import widget_state
from kernel_ext.widgets.why_model import why_cell, why_cells


def _last_cell(state: Any) -> Any:
    return state.last_run.cell if state.last_run is not None else None


def dag_view(state: Any, stage: str | None = None) -> WithFallback:
    """The whole DAG of a stage, with every cell's reasons."""
    session = state.session
    model = build_dag(session.dag_input(_last_cell(state)), stage, history=widget_state(state).history)
    return WithFallback(DagWidget(model, why_cells(c.solved() for c in session.cells)))


def why_view(state: Any, target: str | None = None) -> WithFallback:
    """One cell's reasons (default: the last cell run), linked to its stage's DAG."""
    from solver.errors import LLBookError
    session = state.session
    cell = session.cell(target) if target else _last_cell(state)
    if cell is None:
        raise LLBookError("no cell has run yet")
    model = build_dag(session.dag_input(_last_cell(state)), cell.stage, history=widget_state(state).history)
    return WithFallback(DagWidget(model, [why_cell(cell.solved())]))


def layers_view(state: Any, stage: str | None = None, sort: str = "name") -> WithFallback:
    return WithFallback(LayersWidget(build_layers(state.session, stage), session=state.session, sort=sort))


def export_view(state: Any, stage: str | None = None) -> WithFallback:
    session = state.session
    return WithFallback(ExportControls(session, stage, directory=str(session.context)))
