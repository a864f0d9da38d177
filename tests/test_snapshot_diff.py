"""Layer diffs from overlay-form directories, built by hand in the OCI whiteout form (no root
needed): lookups through layers, opaque directories, OCI names, and a cost that follows
the change, not the root filesystem."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from solver.snapshot.diff import ADDED, MODIFIED, REMOVED, LowerView, compute_diff, walk_oci
from helpers_rootfs import private_tmp_dir

@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's basetemp, which concurrent pytest sessions may prune."""
    yield from private_tmp_dir()


class CountingView(LowerView):
    """A LowerView that counts its lookups and listings (to check the cost of a diff)."""

    def __init__(self, layers) -> None:
        super().__init__(layers)
        self.calls = 0

    def lookup(self, rel):
        self.calls += 1
        return super().lookup(rel)

    def listdir(self, rel):
        self.calls += 1
        return super().listdir(rel)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_lookup_through_layers_with_oci_whiteouts(tmp_path: Path) -> None:
    bottom = _tree(tmp_path / "l0", {"a/x": "1", "a/y": "2", "b": "3"})
    top = _tree(tmp_path / "l1", {"a/.wh.x": "", "c": "4"})
    view = LowerView([top, bottom])
    assert view.lookup("/a/x") is None
    assert view.lookup("/a/y") is not None and view.lookup("/c") is not None
    assert sorted(view.listdir("/a")) == ["y"]
    assert sorted(view.listdir("/")) == ["a", "b", "c"]
    opaque = _tree(tmp_path / "l2", {"a/.wh..wh..opq": "", "a/z": "5"})
    view = LowerView([opaque, top, bottom])
    assert sorted(view.listdir("/a")) == ["z"] and view.lookup("/a/y") is None


def test_compute_diff_and_oci_walk(tmp_path: Path) -> None:
    lower = _tree(tmp_path / "lower", {"etc/passwd": "root", "etc/group": "g", "d/old": "o", "gone": "x"})
    upper = _tree(tmp_path / "upper", {"etc/passwd": "root+app", "new": "n", ".wh.gone": "",
                                       "d/.wh..wh..opq": "", "d/fresh": "f"})
    diff = compute_diff(upper, [lower])
    kinds = {c.path: c.kind for c in diff.changes}
    assert kinds == {"/etc": MODIFIED, "/etc/passwd": MODIFIED, "/new": ADDED, "/gone": REMOVED,
                     "/d": MODIFIED, "/d/fresh": ADDED, "/d/old": REMOVED}
    assert diff.by_path()["/etc/passwd"].size == len("root+app")
    names = [(e.name, e.kind) for e in walk_oci(upper)]
    assert names == [(".wh.gone", "whiteout"), ("d", "entry"), ("d/.wh..wh..opq", "opaque"),
                     ("d/fresh", "entry"), ("etc", "entry"), ("etc/passwd", "entry"), ("new", "entry")]


def test_cost_follows_the_change_not_the_rootfs(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    for i in range(50):
        _tree(lower / f"dir{i}", {f"f{j}": "x" for j in range(40)})
    upper = _tree(tmp_path / "upper", {"dir7/f3": "changed", "added": "a"})
    view = CountingView([lower])
    diff = compute_diff(upper, view)
    assert [c.path for c in diff.changes] == ["/added", "/dir7", "/dir7/f3"]
    assert view.calls == 3  # one lookup per entry of the diff dir, none for the 2000 others
    assert sum(len(files) for _, _, files in os.walk(lower)) == 2000


def test_apply_layer_in_oci_form(tmp_path: Path) -> None:
    from solver.snapshot.fsutil import apply_layer

    target = _tree(tmp_path / "target", {"keep": "k", "gone": "g", "d/old": "o", "f/x": "dir"})
    layer = _tree(tmp_path / "layer", {".wh.gone": "", "d/.wh..wh..opq": "", "d/new": "n",
                                       "f": "now a file", "keep": "k2"})
    apply_layer(layer, target)
    assert sorted(os.listdir(target)) == ["d", "f", "keep"]
    assert os.listdir(target / "d") == ["new"]
    assert (target / "f").read_text() == "now a file"
    assert (target / "keep").read_text() == "k2"
