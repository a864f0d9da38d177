"""The layers of a built result, read from the snapshotter: the result's snapshot and its
ancestors, each layer's ``LayerDiff`` (memoised: committed snapshots never change) and
its files through the merged view of that layer on top of its parents."""

from __future__ import annotations

import hashlib
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from solver.layers.model import LayerInfo, Layers
from solver.snapshot.diff import LayerDiff, LowerView

_DIFF_MEMO: "OrderedDict[tuple[str, str], LayerDiff]" = OrderedDict()
_DIFF_MEMO_LOCK = threading.Lock()
_DIFF_MEMO_SIZE = 64
_CHUNK = 1 << 20


def cached_layer_diff(snapshotter: Any, name: str) -> LayerDiff:
    """``snapshotter.layer_diff(name)``, memoised (committed layers never change)."""
    key = (str(getattr(snapshotter, "root", "")), name)
    with _DIFF_MEMO_LOCK:
        if key in _DIFF_MEMO:
            _DIFF_MEMO.move_to_end(key)
            return _DIFF_MEMO[key]
    diff = snapshotter.layer_diff(name)
    with _DIFF_MEMO_LOCK:
        _DIFF_MEMO[key] = diff
        while len(_DIFF_MEMO) > _DIFF_MEMO_SIZE:
            _DIFF_MEMO.popitem(last=False)
    return diff


@dataclass
class SnapshotReader:
    """Regular files as of a layer, looked up in the snapshots' diff directories."""

    snapshotter: Any
    chain: list[str]  # snapshot names, bottom first

    def _host_path(self, layer: int, path: str) -> str | None:
        name = self.chain[layer]
        view = LowerView([self.snapshotter.diff_dir(name), *self.snapshotter.parent_layers(name)])
        found = view.lookup(path)
        if found is None or not stat.S_ISREG(found.st.st_mode):
            return None
        return found.host_path

    def read(self, layer: int, path: str, limit: int) -> bytes | None:
        host = self._host_path(layer, path)
        if host is None:
            return None
        with open(host, "rb") as f:
            return f.read(limit + 1)

    def digest(self, layer: int, path: str) -> str | None:
        host = self._host_path(layer, path)
        if host is None:
            return None
        digest = hashlib.sha256()
        with open(host, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        return "sha256:" + digest.hexdigest()


def result_layers(snapshotter: Any, snapshot: str, name: str, history: list[dict[str, Any]] | None = None,
                  blob_digests: dict[str, str] | None = None) -> Layers:
    """The layers of the committed ``snapshot``; instructions from the image config's
    ``history`` (the entries with a layer) where given, blob digests by snapshot name."""
    from solver.export.result_source import layer_chain
    chain = layer_chain(snapshotter, snapshot) if snapshot else []
    made = [h.get("created_by", "") for h in (history or []) if not h.get("empty_layer")]
    offset = len(chain) - len(made)
    infos, diffs = [], []
    for index, snap in enumerate(chain):
        diff = cached_layer_diff(snapshotter, snap)
        instruction = made[index - offset] if index >= offset else "(base image)"
        infos.append(LayerInfo.of(index, diff, instruction, (blob_digests or {}).get(snap, ""), snap))
        diffs.append(diff)
    return Layers(name, infos, diffs, SnapshotReader(snapshotter, chain))
