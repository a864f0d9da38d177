"""The tree of a layer (or of the image up to it) as CSV or JSON, one row per path."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from solver.layers.model import Layers
from solver.layers.tree import AGGREGATED, BY_NAME, mode_string

FIELDS = ("path", "kind", "type", "size", "mode", "uid", "gid", "link")
FORMATS = ("csv", "json")


def tree_rows(layers: Layers, layer: int, mode: str = AGGREGATED, sort: str = BY_NAME) -> list[dict[str, Any]]:
    """Every path of the tree depth first; a directory's size is the sum of what is below it."""
    tree = layers.tree(layer, mode)
    return [{"path": e.path, "kind": e.kind, "type": e.type, "size": tree.size_of(e.path),
             "mode": mode_string(e.type, e.mode), "uid": e.uid, "gid": e.gid, "link": e.linkname}
            for _, e in tree.walk(sort)]


def export_tree(layers: Layers, fmt: str, layer: int | None = None, mode: str = AGGREGATED,
                sort: str = BY_NAME) -> str:
    """The tree as ``csv`` (a header row, then one row per path) or ``json`` (the image's
    name, the layer, its totals and the rows)."""
    index = layers.top if layer is None else layer
    rows = tree_rows(layers, index, mode, sort)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "json":
        return json.dumps({"image": layers.name, "platform": layers.platform, "layer": index, "mode": mode,
                           "layers": [l.to_json() for l in layers.layers], "totals": layers.totals(),
                           "files": rows}, indent=2) + "\n"
    raise ValueError(f"unknown export format {fmt!r} (csv or json)")


def format_of(path: str) -> str:
    """``csv`` or ``json`` from a file name's extension (json otherwise)."""
    return "csv" if path.lower().endswith(".csv") else "json"
