"""The layers of a notebook result as dive shows them. The analysis lives in
``solver.layers`` (shared with ``llbook layers``): layer list, per-layer and aggregated
file trees sorted by name or size, filters, totals, previews, per-file diffs between layers
and diffs between two results or images. This module builds it from a session's stage and
keeps the names the widgets and their tests use.
"""

from __future__ import annotations

from typing import Any

from kernel_ext.widgets.dag_model import STEP_PREFIX
from solver.layers.model import MAX_DIFF_BYTES, LayerInfo, Layers
from solver.layers.snapshots import SnapshotReader, cached_layer_diff
from solver.layers.tree import (AGGREGATED, BY_NAME, BY_SIZE, KINDS, LAYER_ONLY, MAX_CHILDREN, UNMODIFIED, FileTree,
                                TreeEntry, aggregated_tree, layer_tree, mode_string, parent_of)

__all__ = ["AGGREGATED", "BY_NAME", "BY_SIZE", "KINDS", "LAYER_ONLY", "MAX_CHILDREN", "MAX_DIFF_BYTES", "UNMODIFIED",
           "FileTree", "LayerInfo", "LayersModel", "TreeEntry", "aggregated_tree", "build_layers", "cached_layer_diff",
           "human", "layer_tree", "mode_string", "parent_of", "summary_html", "summary_text"]


class LayersModel(Layers):
    """The layers of one stage's result (``name`` is the stage)."""

    @property
    def stage(self) -> str:
        return self.name


def build_layers(session: Any, stage: str | None = None, result: Any = None) -> LayersModel:
    """The layers of ``stage`` (solved, normally all from the cache) or of a given result."""
    from solver.export.result_source import image_manifests, layer_chain, pulled_layers
    key, state, image_config = session.stage_state(stage)
    if result is None:
        result = session.solve_state(state, scope=key)
    solver = session.solver
    snapshotter = solver.snapshotter
    chain = layer_chain(snapshotter, result.snapshot) if result.snapshot else []
    history = [h for h in image_config.get("history", []) if not h.get("empty_layer")]
    offset = len(chain) - len(history)
    pulled = pulled_layers(solver.store.content, image_manifests(solver, result))  # as the exporter finds them
    makers = _makers(result)
    layers, diffs = [], []
    for i, name in enumerate(chain):
        diff = cached_layer_diff(snapshotter, name)
        blob = pulled.get(name)
        vertex = makers.get(name)
        made_by = history[i - offset].get("created_by", "") if i >= offset else "(base image)"
        if vertex is not None and vertex.kind != "source" and blob is None:
            made_by = STEP_PREFIX.sub("", vertex.name) or made_by  # the instruction as written in the cell
        layers.append(LayerInfo(i, name, diff.size, made_by, blob.digest if blob else "",
                                vertex.digest if vertex else "", vertex.cache_keys[0] if vertex and vertex.cache_keys
                                else "", len(diff.added), len(diff.modified), len(diff.removed)))
        diffs.append(diff)
    return LayersModel(key, layers, diffs, SnapshotReader(snapshotter, chain))


def _makers(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in result.vertices:
        for snap in v.snapshots:
            if snap:
                out.setdefault(snap, v)
    return out


def human(n: float) -> str:
    """A size as dive prints it: decimal units, ``2.0 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def summary_html(model: LayersModel) -> str:
    """Static layer summary: the layer table and the image totals."""
    import html
    totals = model.totals()
    rows = "".join(
        f"<tr><td>{l.index}</td><td>{human(l.size)}</td><td>+{l.added} ~{l.modified} -{l.removed}</td>"
        f"<td><code>{html.escape(l.instruction[:90])}</code></td><td><code>{html.escape(_layer_id(l))}</code></td></tr>"
        for l in model.layers)
    return ("<div class='llbook-layers-summary'><table><thead><tr><th>layer</th><th>size</th><th>changes</th>"
            f"<th>instruction</th><th>digest</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<div>image size {human(totals['size'])}, wasted {human(totals['wasted'])}, "
            f"efficiency {100 * totals['score']:.1f}%</div></div>")


def _layer_id(layer: LayerInfo) -> str:
    return layer.digest[:19] if layer.digest else f"key {layer.cache_key[7:19]}" if layer.cache_key else ""


def summary_text(model: LayersModel) -> str:
    totals = model.totals()
    lines = [f"{l.index:>3}  {human(l.size):>9}  +{l.added} ~{l.modified} -{l.removed}  {l.instruction[:70]}"
             for l in model.layers]
    lines.append(f"image size {human(totals['size'])}, wasted {human(totals['wasted'])}, "
                 f"efficiency {100 * totals['score']:.1f}%")
    return "\n".join(lines)


