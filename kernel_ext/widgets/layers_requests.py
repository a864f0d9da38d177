"""The layers view's requests beyond the tree: a file's preview, the diff of this result
with another one or an image, and the tree's export as CSV or JSON.

What to compare with (``resolve_other``):
- a stage of this session (the name of a ``FROM ... AS NAME`` in a cell, as ``%llb layers NAME``);
- ``history:REF``, a build's result from the history (``^0`` the latest, or an id);
- an image: a registry reference, ``docker-archive://PATH`` or ``oci-layout://PATH[:TAG]``,
  for ``platform`` when the image has several.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from solver.layers.compare import compare
from solver.layers.export import export_tree
from solver.layers.model import Layers
from solver.layers.tree import AGGREGATED, BY_NAME

PREVIEW_CAP = 64 * 1024
HISTORY_PREFIX = "history:"


def resolve_other(session: Any, text: str, platform: str, scratch: Path) -> Layers:
    """The layers ``text`` names (see the module docstring)."""
    text = text.strip()
    if session is not None and text.startswith(HISTORY_PREFIX):
        return _history_layers(session, text[len(HISTORY_PREFIX):] or "^0")
    if session is not None and "/" not in text and ":" not in text:
        try:
            stages = session.lower().lowering.stages
        except Exception:  # noqa: BLE001 - no cells yet: not a stage then
            stages = {}
        if text in stages:
            from kernel_ext.widgets.layers_model import build_layers
            return build_layers(session, text)
    from solver.layers.image import open_image
    return open_image(text, scratch, platform or None)


def _history_layers(session: Any, ref: str) -> Layers:
    from solver.history import HistoryStore
    from solver.layers.snapshots import result_layers
    record = HistoryStore.of(session.cache_dir).resolve(ref)
    snapshot = record.result.get("snapshot") or ""
    return result_layers(session.solver.snapshotter, snapshot, f"build {record.ref}")


def compare_reply(model: Layers, session: Any, other: str, platform: str = "") -> dict[str, Any]:
    """The files added, removed and changed from ``other`` to this result."""
    with tempfile.TemporaryDirectory(prefix="llbook-compare-") as scratch:
        theirs = resolve_other(session, other, platform, Path(scratch))
        result = compare(theirs, model)
    out = result.to_json()
    out["platform"] = theirs.platform
    return out


def answer_extra(model: Layers, session: Any, content: dict[str, Any]) -> dict[str, Any]:
    """The reply fields of a ``preview``, ``compare`` or ``export`` request."""
    kind = content.get("type")
    if kind == "preview":
        layer = int(content.get("layer", model.top))
        return model.preview(layer, str(content["path"]), int(content.get("cap", PREVIEW_CAP))).to_json()
    if kind == "compare":
        return compare_reply(model, session, str(content["other"]), str(content.get("platform", "")))
    if kind == "platforms":
        return {"platforms": platforms_for(session, str(content.get("other", "")))}
    if kind == "export":
        fmt = str(content.get("format", "json"))
        layer = int(content.get("layer", model.top))
        text = export_tree(model, fmt, layer, str(content.get("mode", AGGREGATED)),
                           str(content.get("sort", BY_NAME)))
        return {"format": fmt, "text": text, "filename": f"{model.name or 'layers'}-layer{layer}.{fmt}"}
    return {"error": f"unknown request {kind!r}"}


EXTRA_REQUESTS = ("preview", "compare", "export", "platforms")


def platforms_for(session: Any, text: str) -> list[str]:
    """The platforms of a multi-platform registry image (none for a stage, a build or a file)."""
    text = text.strip()
    if not text or text.startswith((HISTORY_PREFIX, "docker-archive://", "oci-layout://")):
        return []
    if session is not None and "/" not in text and ":" not in text:
        try:
            if text in session.lower().lowering.stages:
                return []
        except Exception:  # noqa: BLE001 - no cells yet: not a stage then
            pass
    from solver.layers.image import platforms_of
    return platforms_of(text)


def layers_command(session: Any, stage: str | None, other: str | None, platform: str, export: str | None,
                   sort: str = BY_NAME) -> str:
    """``%llb layers [STAGE] --diff OTHER | --export FILE``: the comparison as text lines, or
    where the tree was written."""
    from kernel_ext.widgets.layers_model import build_layers, human
    from solver.layers.export import format_of
    model = build_layers(session, stage)
    if export:
        text = export_tree(model, format_of(export), model.top, AGGREGATED, sort)
        Path(export).write_text(text)
        return f"wrote the tree of stage {model.name} ({len(model.tree(model.top, AGGREGATED))} paths) to {export}"
    reply = compare_reply(model, session, other or "", platform)
    size = lambda n: "" if n < 0 else human(n)  # noqa: E731
    lines = [f"{reply['old']} → {reply['new']}: {reply['added']} added, {reply['removed']} removed, "
             f"{reply['changed']} changed"]
    lines += [f"  {c['kind']:<8} {size(c['old_size']):>9} → {size(c['new_size']):>9}  {c['path']}"
              + (f"  ({c['what']})" if c["what"] else "") for c in reply["changes"]]
    return "\n".join(lines)
