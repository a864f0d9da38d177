"""solver.cli.dataclass_cache: dataclasses made with the compile cache behave as without it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from solver.cli import dataclass_cache


def _make(frozen: bool):
    @dataclass(frozen=frozen, order=True)
    class Point:
        x: int
        y: list[int] = field(default_factory=list)
        z: str = "z"
    return Point


def test_cached_methods_behave_like_the_standard_ones() -> None:
    dataclass_cache.install()
    if not dataclass_cache._installed:
        pytest.skip(f"not patched on Python {sys.version_info[:2]}")
    for frozen in (False, True):
        Point = _make(frozen)
        Again = _make(frozen)  # same generated source: compiled once
        assert Point(1) == Point(1, [], "z") and Point(1) != Point(2) and Point(1) < Point(2)
        assert repr(Point(1, [2])).endswith("Point(x=1, y=[2], z='z')")
        assert Point(1).y is not Point(1).y  # default_factory runs per instance
        # the field's own annotation, not the generated source's name for it ("_type_x"):
        # the cache compiles without this module's __future__ flags, as exec() does
        assert Point.__init__.__annotations__["x"] == Point.__dataclass_fields__["x"].type
        assert Again(3) == Again(3) and Point.__init__ is not Again.__init__
        if frozen:
            assert hash(Point(1, ())) == hash(Point(1, ()))  # type: ignore[arg-type]
            with pytest.raises(dataclasses.FrozenInstanceError):
                Point(1).x = 2  # type: ignore[misc]


def test_cache_file_is_written_and_reused() -> None:
    code = ("import sys; from solver.cli import dataclass_cache as c; c.install(); "
            "import solver.llb.pb; print(c._new, len(c._codes))")
    if not os.access(os.path.dirname(os.path.dirname(dataclass_cache.cache_file())), os.W_OK):
        pytest.skip("the package directory is read-only here: no cache file")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            for _ in range(2)]
    if not dataclass_cache._installed:
        pytest.skip("not patched on this Python")
    new_second, known_second = map(int, runs[1].stdout.split())
    assert new_second == 0 and known_second > 0  # the second process compiled nothing
