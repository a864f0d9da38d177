"""The DAG view: graphviz SVG in an anywidget, a details pane per clicked vertex, and the
"why rebuilt" list linked to the vertices. Static form: legend + SVG + reasons."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from kernel_ext.widgets.dag_model import STATUS_FILL, STATUS_LABEL, STATUSES, DagModel, legend_html
from kernel_ext.widgets.why_model import WhyCell, why_html, why_text

HERE = Path(__file__).parent


class DagWidget(anywidget.AnyWidget):
    """Click a vertex (or a "why" entry) to see its details; ``selected`` is its digest."""

    _esm = HERE / "dag.js"
    _css = HERE / "llbook.css"

    svg = traitlets.Unicode("").tag(sync=True)
    stage = traitlets.Unicode("").tag(sync=True)
    vertices = traitlets.Dict({}).tag(sync=True)  # digest -> DagVertex.to_json()
    legend: traitlets.List[dict[str, str]] = traitlets.List([]).tag(sync=True)  # [{status, label, fill}]
    why: traitlets.List[dict[str, Any]] = traitlets.List([]).tag(sync=True)  # WhyCell.to_json() list
    selected = traitlets.Unicode("").tag(sync=True)
    compact = traitlets.Bool(False).tag(sync=True)

    def __init__(self, model: DagModel, why: list[WhyCell] | None = None, *, compact: bool = False,
                 svg: str | None = None, **kwargs: Any) -> None:
        self.model = model
        self.why_cells = why or []
        super().__init__(legend=[{"status": s, "label": STATUS_LABEL[s], "fill": STATUS_FILL[s]} for s in STATUSES],
                         compact=compact, **_synced(model, self.why_cells, svg), **kwargs)

    def show(self, model: DagModel, why: list[WhyCell] | None = None, *, svg: str | None = None) -> None:
        """Draw another state of the graph in this widget (only changed traits are sent)."""
        self.model, self.why_cells = model, why or []
        with self.hold_sync():
            for name, value in _synced(model, self.why_cells, svg).items():
                if getattr(self, name) != value:
                    setattr(self, name, value)

    def static_html(self) -> str:
        return dag_static_html(self.model, self.svg, self.why_cells)

    def static_text(self) -> str:
        return dag_static_text(self.model, self.why_cells)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        bundle = data[0] if isinstance(data, tuple) else data
        bundle = dict(bundle or {})
        bundle["text/plain"] = self.static_text()
        bundle["text/html"] = self.static_html()
        return bundle


def _synced(model: DagModel, why: list[WhyCell], svg: str | None) -> dict[str, Any]:
    """The traits that carry ``model`` and ``why`` to the front end."""
    return {"svg": svg if svg is not None else (model.to_svg() if model.vertices else ""),
            "stage": model.stage, "vertices": {v.digest: v.to_json() for v in model.vertices},
            "why": [c.to_json() for c in why]}


def dag_static_html(model: DagModel, svg: str, why: list[WhyCell]) -> str:
    """Legend, SVG and reasons as HTML, for viewers without widgets."""
    title = f"<b>DAG of stage {html.escape(model.stage)}</b>" if model.stage else "<b>DAG</b>"
    return f"<div class='llbook-dag-static'>{title}{legend_html()}{svg}{why_html(why)}</div>"


def dag_static_text(model: DagModel, why: list[WhyCell]) -> str:
    lines = [f"DAG of stage {model.stage}: {len(model.vertices)} vertices"]
    for v in model.vertices:
        lines.append(f"  {v.status:<8} {v.label}")
        lines += [f"           warning: {text}" for text in v.warnings]
    if why:
        lines += ["why rebuilt:", why_text(why)]
    return "\n".join(lines)
