"""Image efficiency as dive computes it (``dive/filetree/efficiency.go``, ``dive/image/analysis.go``).

For every path that is a leaf of some layer's tree (a file, an empty directory, a
removal), dive adds up the bytes each layer spends on it: the entry's size, or for a
removal the size of everything the removal hides in the layers below. A path touched by
two or more layers is an *inefficiency*; its cumulative size counts as wasted space.
The score is ``sum(smallest size seen per path) / sum(cumulative size per path)`` (1.0
when nothing was seen). The image size is the sum of the layers' sizes and the "user"
size leaves out the first (base) layer.

Here the layers are ``LayerDiff``s, already normalised so that a replaced (opaque)
directory lists what it hides as removed entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from solver.layers.pathtrie import PathTrie
from solver.snapshot.diff import REMOVED, FileType, LayerDiff


@dataclass
class PathCost:
    """What the layers spent on one path."""

    path: str
    cumulative_size: int = 0
    min_size: int = -1
    layers: list[int] = field(default_factory=list)


@dataclass
class Efficiency:
    score: float
    size: int  # sum of the layer sizes
    user_size: int  # all but the first layer
    wasted: int  # cumulative size of paths touched by more than one layer
    inefficiencies: list[PathCost]  # by cumulative size, largest first

    @property
    def wasted_user_percent(self) -> float:
        return 100.0 * self.wasted_user_ratio

    @property
    def wasted_user_ratio(self) -> float:
        """dive's ``WastedUserPercent``: wasted bytes / user bytes (a ratio, not a percentage)."""
        return self.wasted / self.user_size if self.user_size else 0.0


def layer_leaves(diff: LayerDiff) -> list[str]:
    """Paths of a layer's tree with no children in that layer (dive's ``IsLeaf``)."""
    paths = sorted(c.path for c in diff.changes)
    leaves = []
    for i, path in enumerate(paths):
        following = paths[i + 1] if i + 1 < len(paths) else ""
        if not following.startswith(path.rstrip("/") + "/"):
            leaves.append(path)
    return leaves


def compute_efficiency(diffs: Sequence[LayerDiff]) -> Efficiency:
    """dive's score, wasted bytes and inefficient paths of the layers, bottom first."""
    costs: dict[str, PathCost] = {}
    stacked: PathTrie[tuple[int, bool]] = PathTrie()  # path -> (size, is dir): the filesystem below
    for index, diff in enumerate(diffs):
        by_path = diff.by_path()
        for path in layer_leaves(diff):
            change = by_path[path]
            if change.kind == REMOVED:
                size = _hidden_size(stacked, path)
            else:
                size = change.size
            cost = costs.setdefault(path, PathCost(path))
            cost.cumulative_size += size
            if cost.min_size < 0 or size < cost.min_size:
                cost.min_size = size
            cost.layers.append(index)
        _apply(stacked, diff)
    minimum = sum(c.min_size for c in costs.values())
    discovered = sum(c.cumulative_size for c in costs.values())
    score = 1.0 if discovered == 0 else minimum / discovered
    bad = sorted((c for c in costs.values() if len(c.layers) >= 2), key=lambda c: -c.cumulative_size)
    sizes = [d.size for d in diffs]
    return Efficiency(score=score, size=sum(sizes), user_size=sum(sizes[1:]),
                      wasted=sum(c.cumulative_size for c in bad), inefficiencies=bad)


def _hidden_size(stacked: PathTrie[tuple[int, bool]], path: str) -> int:
    """What a removal hides: nothing for a file (dive), a directory's whole subtree in the
    layers below."""
    entry = stacked.get(path)
    if entry is None or not entry[1]:
        return 0
    return sum(size for _, (size, _) in stacked.subtree(path))


def _apply(stacked: PathTrie[tuple[int, bool]], diff: LayerDiff) -> None:
    for change in diff.changes:
        if change.kind == REMOVED:
            stacked.remove(change.path)
        else:
            stacked.set(change.path, (change.size, change.type is FileType.DIR))
