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
        super().__init__(
            svg=svg if svg is not None else (model.to_svg() if model.vertices else ""),
            stage=model.stage,
            vertices={v.digest: v.to_json() for v in model.vertices},
            legend=[{"status": s, "label": STATUS_LABEL[s], "fill": STATUS_FILL[s]} for s in STATUSES],
            why=[c.to_json() for c in self.why_cells], compact=compact, **kwargs)

    def static_html(self) -> str:
        title = f"<b>DAG of stage {html.escape(self.stage)}</b>" if self.stage else "<b>DAG</b>"
        return (f"<div class='llbook-dag-static'>{title}{legend_html()}{self.svg}"
                f"{why_html(self.why_cells)}</div>")

    def static_text(self) -> str:
        lines = [f"DAG of stage {self.stage}: {len(self.model.vertices)} vertices"]
        for v in self.model.vertices:
            lines.append(f"  {v.status:<8} {v.label}")
            lines += [f"           warning: {text}" for text in v.warnings]
        if self.why_cells:
            lines += ["why rebuilt:", why_text(self.why_cells)]
        return "\n".join(lines)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        bundle = data[0] if isinstance(data, tuple) else data
        bundle = dict(bundle or {})
        bundle["text/plain"] = self.static_text()
        bundle["text/html"] = self.static_html()
        return bundle
