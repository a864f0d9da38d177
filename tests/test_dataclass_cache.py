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


def _stdlib_create_fn():
    """The standard library's ``_create_fn`` the patch replaces; fails loudly elsewhere."""
    version = sys.version_info[:2]
    if version not in dataclass_cache._SUPPORTED:
        pytest.fail(f"Python {version[0]}.{version[1]} is not in dataclass_cache._SUPPORTED: re-check "
                    "solver/cli/dataclass_cache.py against this CPython's dataclasses (_create_fn) "
                    "and add the version, or remove the cache")
    original = dataclass_cache._STDLIB_CREATE_FN
    assert original is not None and original.__module__ == "dataclasses", \
        "dataclasses._create_fn is gone or changed on a supported Python: re-check the patch"
    return original


def test_the_patched_function_has_the_stdlib_signature() -> None:
    import inspect
    original = _stdlib_create_fn()
    ours = inspect.signature(dataclass_cache._create_fn).parameters
    theirs = inspect.signature(original).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == \
        [(p.name, p.kind, p.default) for p in theirs.values()]


def test_the_patched_function_makes_the_stdlib_functions() -> None:
    original = _stdlib_create_fn()
    cases = [
        ("__init__", ["self", "x:_type_x", "y:_type_y=__dataclass_dflt_y__"],
         ["__dataclass_builtins_object__.__setattr__(self,'x',x)", "self.y=y"],
         {"_type_x": int, "_type_y": str, "__dataclass_dflt_y__": "d",
          "__dataclass_builtins_object__": object}, None),
        ("__repr__", ["self"], ["return f'P(x={self.x!r})'"], {}, dataclasses.MISSING),
        ("__eq__", ["self", "other"], ["if other.__class__ is self.__class__:",
                                       " return (self.x,)==(other.x,)", "return NotImplemented"],
         {}, dataclasses.MISSING),
    ]
    for name, args, body, local_vars, return_type in cases:
        made = []
        for create in (original, dataclass_cache._create_fn):
            kwargs = {"globals": {}, "locals": dict(local_vars)}
            if return_type is not dataclasses.MISSING:
                kwargs["return_type"] = return_type
            made.append(create(name, list(args), list(body), **kwargs))
        stdlib, patched = made
        for attr in ("co_code", "co_consts", "co_names", "co_varnames", "co_argcount", "co_kwonlyargcount"):
            assert getattr(patched.__code__, attr) == getattr(stdlib.__code__, attr), (name, attr)
        assert (patched.__name__, patched.__qualname__, patched.__defaults__, patched.__annotations__) == \
            (stdlib.__name__, stdlib.__qualname__, stdlib.__defaults__, stdlib.__annotations__)
