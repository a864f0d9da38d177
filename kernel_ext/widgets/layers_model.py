"""The layers of a result as dive shows them: a layer list, per-layer and aggregated file
trees served one directory at a time, filters, totals and per-file content diffs.

Trees are flat maps (path → ``TreeEntry``) with a children index, so a 50,000-file
layer costs one pass to build and each expanded directory only its own children.
Committed snapshots never change, so their ``LayerDiff`` is memoised by name.
"""

from __future__ import annotations

import difflib
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kernel_ext.widgets.dag_model import STEP_PREFIX
from kernel_ext.widgets.efficiency import Efficiency, compute_efficiency
from kernel_ext.widgets.pathtrie import PathTrie
from solver.snapshot.diff import ADDED, MODIFIED, REMOVED, Change, FileType, LayerDiff, LowerView

UNMODIFIED = "unmodified"
KINDS = (ADDED, MODIFIED, REMOVED, UNMODIFIED)
LAYER_ONLY, AGGREGATED = "layer", "aggregated"
MAX_DIFF_BYTES = 1 << 20
MAX_CHILDREN = 5000  # a directory lists at most this many entries (the rest is summarised)


@dataclass
class TreeEntry:
    path: str
    kind: str
    type: str
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    linkname: str = ""

    @property
    def is_dir(self) -> bool:
        return self.type == FileType.DIR.value

    @classmethod
    def of(cls, change: Change, kind: str | None = None) -> "TreeEntry":
        return cls(change.path, kind or change.kind, change.type.value, change.size, change.mode,
                   change.uid, change.gid, change.linkname)

    @classmethod
    def implicit_dir(cls, path: str) -> "TreeEntry":
        return cls(path, UNMODIFIED, FileType.DIR.value, mode=0o755)

    def to_json(self, has_children: bool) -> dict[str, Any]:
        return {"name": self.path.rsplit("/", 1)[-1], "path": self.path, "dir": self.is_dir,
                "kind": self.kind, "size": self.size, "mode": mode_string(self.type, self.mode),
                "owner": f"{self.uid}:{self.gid}", "link": self.linkname, "has_children": has_children}


_TYPE_CHAR = {"dir": "d", "symlink": "l", "char": "c", "block": "b", "fifo": "p", "socket": "s"}


def mode_string(kind: str, mode: int) -> str:
    """``drwxr-xr-x`` as ls prints it."""
    return _TYPE_CHAR.get(kind, "-") + stat.filemode(mode)[1:]


def parent_of(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class FileTree:
    """Entries by path and each directory's children, sorted by name."""

    def __init__(self, entries: Iterable[TreeEntry]) -> None:
        self.entries: dict[str, TreeEntry] = {}
        for entry in entries:
            self.entries[entry.path] = entry
        for path in list(self.entries):
            self._ensure_parents(path)
        children: dict[str, list[str]] = {}
        for path in self.entries:
            if path != "/":
                children.setdefault(parent_of(path), []).append(path)
        self.children = {k: sorted(v) for k, v in children.items()}

    def _ensure_parents(self, path: str) -> None:
        parent = parent_of(path)
        while parent != "/" and parent not in self.entries:
            self.entries[parent] = TreeEntry.implicit_dir(parent)
            parent = parent_of(parent)

    def __len__(self) -> int:
        return len(self.entries)

    def kinds(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {k: set() for k in KINDS}
        for path, entry in self.entries.items():
            out[entry.kind].add(path)
        return out

    def shown(self, pattern: str, kinds: Sequence[str]) -> set[str] | None:
        """Paths to list under the filter (None: all): matching entries and their parents."""
        if not pattern and set(kinds) >= set(KINDS):
            return None
        regex = re.compile(pattern) if pattern else None
        out: set[str] = set()
        for path, entry in self.entries.items():
            if entry.kind not in kinds or (regex is not None and not regex.search(path)):
                continue
            while path not in out and path != "/":
                out.add(path)
                path = parent_of(path)
        return out

    def list_dir(self, path: str, shown: set[str] | None) -> tuple[list[dict[str, Any]], int]:
        """The children of ``path`` as JSON rows, and how many were left out over the cap."""
        names = self.children.get(path, [])
        if shown is not None:
            names = [p for p in names if p in shown]
        rows = []
        for child in names[:MAX_CHILDREN]:
            grand = self.children.get(child, [])
            has = bool(grand) if shown is None else any(g in shown for g in grand)
            rows.append(self.entries[child].to_json(has))
        return rows, max(0, len(names) - MAX_CHILDREN)


def layer_tree(diff: LayerDiff) -> FileTree:
    """The tree of one layer's own changes (parents it did not change are plain)."""
    return FileTree(TreeEntry.of(c) for c in diff.changes)


def aggregated_tree(diffs: Sequence[LayerDiff]) -> FileTree:
    """The filesystem after the last of ``diffs``: its changes coloured, the rest plain, its
    removals still listed (in red) where they were."""
    state: PathTrie[TreeEntry] = PathTrie()
    for diff in diffs[:-1]:
        _fold(state, diff)
    top = diffs[-1] if diffs else LayerDiff()
    _fold(state, top)
    for change in top.changes:
        state.set(change.path, TreeEntry.of(change))
    return FileTree(entry for _, entry in state.items())


def _fold(state: PathTrie[TreeEntry], diff: LayerDiff) -> None:
    for change in diff.changes:
        if change.kind == REMOVED:
            state.remove(change.path)
        else:
            state.set(change.path, TreeEntry.of(change, UNMODIFIED))


@dataclass
class LayerInfo:
    index: int
    snapshot: str
    size: int
    instruction: str
    digest: str  # the layer blob's digest when it exists (a pulled layer); "" before an export
    vertex: str = ""  # the vertex that made it
    cache_key: str = ""  # that vertex's cache key (names a built layer before it has a digest)
    added: int = 0
    modified: int = 0
    removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_DIFF_MEMO: "OrderedDict[tuple[str, str], LayerDiff]" = OrderedDict()
_DIFF_MEMO_LOCK = threading.Lock()
_DIFF_MEMO_SIZE = 64


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
class LayersModel:
    """The layers of one result, bottom first, with trees built on demand."""

    stage: str
    layers: list[LayerInfo]
    diffs: list[LayerDiff]
    snapshotter: Any = None
    _trees: dict[tuple[int, str], FileTree] = field(default_factory=dict, repr=False)
    _shown: dict[tuple[int, str, str, tuple[str, ...]], set[str] | None] = field(default_factory=dict, repr=False)
    _efficiency: Efficiency | None = field(default=None, repr=False)

    def tree(self, layer: int, mode: str = LAYER_ONLY) -> FileTree:
        key = (layer, mode)
        if key not in self._trees:
            if len(self._trees) > 8:
                self._trees.clear()
                self._shown.clear()
            self._trees[key] = (layer_tree(self.diffs[layer]) if mode == LAYER_ONLY
                                else aggregated_tree(self.diffs[:layer + 1]))
        return self._trees[key]

    def children(self, layer: int, path: str = "/", mode: str = LAYER_ONLY, pattern: str = "",
                 kinds: Sequence[str] = KINDS) -> dict[str, Any]:
        """One directory's rows for the tree view (raises ``re.error`` on a bad pattern)."""
        tree = self.tree(layer, mode)
        key = (layer, mode, pattern, tuple(sorted(kinds)))
        if key not in self._shown:
            self._shown[key] = tree.shown(pattern, kinds)
        rows, more = tree.list_dir(path, self._shown[key])
        return {"path": path, "entries": rows, "more": more}

    @property
    def efficiency(self) -> Efficiency:
        if self._efficiency is None:
            self._efficiency = compute_efficiency(self.diffs)
        return self._efficiency

    def totals(self) -> dict[str, Any]:
        eff = self.efficiency
        return {"size": eff.size, "user_size": eff.user_size, "wasted": eff.wasted,
                "score": eff.score, "wasted_percent": eff.wasted_user_percent,
                "inefficiencies": [{"path": c.path, "size": c.cumulative_size, "count": len(c.layers)}
                                   for c in eff.inefficiencies[:50]]}

    def view_of(self, layer: int) -> LowerView:
        """The merged filesystem as of ``layer`` (that layer on top of its parents)."""
        name = self.layers[layer].snapshot
        return LowerView([self.snapshotter.diff_dir(name), *self.snapshotter.parent_layers(name)])

    def read(self, layer: int, path: str) -> bytes | None:
        """A regular file's bytes as of ``layer`` (None when absent or not a file)."""
        found = self.view_of(layer).lookup(path)
        if found is None or not stat.S_ISREG(found.st.st_mode):
            return None
        with open(found.host_path, "rb") as f:
            return f.read(MAX_DIFF_BYTES + 1)

    def file_diff(self, path: str, old_layer: int, new_layer: int) -> dict[str, Any]:
        """A unified diff of a text file between two layers."""
        old, new = self.read(old_layer, path), self.read(new_layer, path)
        out: dict[str, Any] = {"path": path, "old": old_layer, "new": new_layer, "binary": False,
                               "lines": [], "note": ""}
        if old is None and new is None:
            out["note"] = "not a regular file in either layer"
            return out
        data = [old or b"", new or b""]
        if any(b"\0" in d or len(d) > MAX_DIFF_BYTES for d in data):
            out["binary"] = True
            out["note"] = "binary or large file: " + ("identical" if data[0] == data[1] else "contents differ")
            return out
        a, b = (d.decode("utf-8", "replace").splitlines() for d in data)
        out["lines"] = list(difflib.unified_diff(a, b, f"layer {old_layer}:{path}", f"layer {new_layer}:{path}",
                                                 lineterm=""))
        if not out["lines"]:
            out["note"] = "identical"
        return out


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
    return LayersModel(key, layers, diffs, snapshotter)


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


