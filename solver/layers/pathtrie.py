"""A filesystem-shaped map (absolute path → value) where removing a directory removes its
subtree in time proportional to that subtree, not to the whole map. Stacking the layers
of an image (apply each layer's changes, removals included) stays linear this way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

V = TypeVar("V")


class _Node(Generic[V]):
    __slots__ = ("value", "has_value", "kids")

    def __init__(self) -> None:
        self.value: V | None = None
        self.has_value = False
        self.kids: dict[str, _Node[V]] = {}


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


class PathTrie(Generic[V]):
    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _find(self, path: str) -> _Node[V] | None:
        node = self._root
        for part in _parts(path):
            found = node.kids.get(part)
            if found is None:
                return None
            node = found
        return node

    def __contains__(self, path: str) -> bool:
        node = self._find(path)
        return node is not None and node.has_value

    def get(self, path: str) -> V | None:
        node = self._find(path)
        return node.value if node is not None and node.has_value else None

    def set(self, path: str, value: V) -> None:
        node = self._root
        for part in _parts(path):
            node = node.kids.setdefault(part, _Node())
        if not node.has_value:
            self._count += 1
        node.value, node.has_value = value, True

    def remove(self, path: str) -> list[tuple[str, V]]:
        """Remove ``path`` and everything below it; return what was removed."""
        parts = _parts(path)
        if not parts:
            removed = list(self.items())
            self._root, self._count = _Node(), 0
            return removed
        parent = self._find("/" + "/".join(parts[:-1]))
        if parent is None or parts[-1] not in parent.kids:
            return []
        node = parent.kids.pop(parts[-1])
        removed = list(_walk(node, "/" + "/".join(parts)))
        self._count -= len(removed)
        return removed

    def subtree(self, path: str) -> list[tuple[str, V]]:
        """``path`` and everything below it."""
        node = self._find(path)
        return [] if node is None else list(_walk(node, "/" + "/".join(_parts(path))))

    def items(self) -> Iterator[tuple[str, V]]:
        for name, kid in self._root.kids.items():
            yield from _walk(kid, "/" + name)


def _walk(node: _Node[V], path: str) -> Iterator[tuple[str, V]]:
    stack = [(node, path)]
    while stack:
        current, where = stack.pop()
        if current.has_value:
            yield where, current.value  # type: ignore[misc]
        for name, kid in current.kids.items():
            stack.append((kid, f"{where}/{name}"))
