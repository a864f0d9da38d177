"""The dive-like layers view: an anywidget whose file tree is served a directory at a time
over the widget's message channel. Static form: the layer table and image totals.

Messages from the front end (``{"type": ..., "req": n}``), each answered with the same
``type`` and ``req``:
- ``children``: ``layer``, ``path``, ``mode`` (layer | aggregated), ``pattern``, ``kinds``
  → ``entries`` (one directory's rows), ``more`` (rows over the cap), or ``error``;
- ``diff``: ``path``, ``old``, ``new`` (layer indexes) → a unified diff of the file;
- ``preview``, ``compare``, ``export``: see ``layers_requests``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from solver.errors import LLBookError

from kernel_ext.widgets.layers_model import KINDS, LayersModel, summary_html, summary_text
from kernel_ext.widgets.layers_requests import EXTRA_REQUESTS, answer_extra

HERE = Path(__file__).parent


def layers_static_html(model: LayersModel) -> str:
    """The layer table and totals as HTML, for viewers without widgets."""
    return f"<div class='llbook-layers-static'><b>Layers of stage {model.stage}</b>{summary_html(model)}</div>"


class LayersWidget(anywidget.AnyWidget):
    _esm = HERE / "layers.js"
    _css = HERE / "llbook.css"

    stage = traitlets.Unicode("").tag(sync=True)
    layers: traitlets.List[dict[str, Any]] = traitlets.List([]).tag(sync=True)
    totals = traitlets.Dict({}).tag(sync=True)
    layer = traitlets.Int(0).tag(sync=True)  # the selected layer
    mode = traitlets.Unicode("layer").tag(sync=True)  # layer | aggregated
    kinds = traitlets.List(list(KINDS)).tag(sync=True)
    pattern = traitlets.Unicode("").tag(sync=True)
    sort = traitlets.Unicode("name").tag(sync=True)  # name | size: the tree's and the layer list's order

    def __init__(self, model: LayersModel, session: Any = None, **kwargs: Any) -> None:
        self.model = model
        self.session = session  # to compare with the session's other stages and builds
        super().__init__(stage=model.stage, layers=[l.to_json() for l in model.layers],
                         totals=model.totals(), layer=max(0, len(model.layers) - 1), **kwargs)
        self.on_msg(self._on_message)

    # -- requests -------------------------------------------------------------------------
    def answer(self, content: dict[str, Any]) -> dict[str, Any]:
        """The reply to one front-end request (also used by the tests)."""
        kind = content.get("type")
        reply: dict[str, Any] = {"type": kind, "req": content.get("req")}
        try:
            if kind == "children":
                reply.update(self.model.children(
                    int(content.get("layer", self.layer)), str(content.get("path", "/")),
                    str(content.get("mode", self.mode)), str(content.get("pattern", "")),
                    list(content.get("kinds", KINDS)), str(content.get("sort", self.sort))))
            elif kind in EXTRA_REQUESTS:
                reply.update(answer_extra(self.model, self.session, content))
            elif kind == "diff":
                reply.update(self.model.file_diff(str(content["path"]), int(content["old"]), int(content["new"])))
            else:
                reply["error"] = f"unknown request {kind!r}"
        except re.error as err:
            reply["error"] = f"bad filter: {err}"
        except (IndexError, KeyError, ValueError, OSError) as err:
            reply["error"] = f"{type(err).__name__}: {err}"
        except LLBookError as err:
            reply["error"] = str(err)
        return reply

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") in ("children", "diff", *EXTRA_REQUESTS):
            self.send(self.answer(content))

    # -- static forms ---------------------------------------------------------------------
    def static_html(self) -> str:
        return layers_static_html(self.model)

    def static_text(self) -> str:
        return summary_text(self.model)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        data = super()._repr_mimebundle_(**kwargs)
        bundle = dict((data[0] if isinstance(data, tuple) else data) or {})
        bundle["text/plain"] = summary_text(self.model)
        bundle["text/html"] = self.static_html()
        return bundle
