"""llbook's notebook widgets: the result view under each ``%%dockerfile`` cell (tabs
Progress / DAG / Layers / Export) and the full views of ``%llb graph|layers|export|why``.

Interactive parts are anywidget ES modules shipped next to this file (``dag.js``,
``layers.js``, ``llbook.css``: no build step, no CDN); layout and controls are
ipywidgets. Every widget also has a static text/HTML form for nbconvert and viewers.
The models (``dag_model``, ``layers_model``, ``efficiency``, ``why_model``) are plain
Python that tests drive without a front end.
"""

from __future__ import annotations

from kernel_ext.widgets.dag import DagWidget
from kernel_ext.widgets.dag_model import DagModel, DagVertex, RunHistory, build_dag
from solver.layers.efficiency import Efficiency, compute_efficiency
from kernel_ext.widgets.export_controls import ExportControls, ExportRequest
from kernel_ext.widgets.layers import LayersWidget
from kernel_ext.widgets.layers_model import LayersModel, build_layers
from kernel_ext.widgets.result_view import ResultView, build_result_view, show_result, widget_state
from kernel_ext.widgets.why_model import why_cell, why_cells

__all__ = ["DagModel", "DagVertex", "DagWidget", "Efficiency", "ExportControls", "ExportRequest", "LayersModel",
           "LayersWidget", "ResultView", "RunHistory", "build_dag", "build_layers", "build_result_view",
           "compute_efficiency", "show_result", "why_cell", "why_cells", "widget_state"]
