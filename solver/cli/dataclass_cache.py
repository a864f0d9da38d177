"""Compiled-code cache for the methods ``dataclasses`` generates, for a faster CLI start.

Every ``@dataclass`` builds the source text of ``__init__``, ``__repr__``, ``__eq__`` (and
more for frozen classes) and compiles it with ``exec``. llbook defines some 200 dataclasses
on the way to a build, so compiling those ~700 small functions was about half of the
import time of ``llbook build`` (~50 ms of ~120 ms on a 2-core machine).

``install()`` (called by the CLI entry point, where start-up time matters) wraps
``dataclasses._create_fn`` so that the *compile* step is looked up by the exact source
text first; everything else is done as the standard library does it, so the functions
are the same as without the cache. The code objects are kept with ``marshal`` next to
the package's ``.pyc`` files (``solver/cli/__pycache__/dataclass-fns2.<cache tag>-<magic>.marshal``),
written atomically when a process compiled new ones, and never when bytecode writing is
off (``PYTHONDONTWRITEBYTECODE``) or the directory is not writable. A missing, stale or
unreadable cache file only means compiling as usual.

Only Python versions whose ``_create_fn`` is known (3.11, 3.12) are patched; elsewhere
``install()`` does nothing.
"""

from __future__ import annotations

import atexit
import dataclasses
import marshal
import os
import sys
import threading
from types import CodeType
from typing import Any

_SUPPORTED = ((3, 11), (3, 12))
_STDLIB_CREATE_FN = getattr(dataclasses, "_create_fn", None)  # what install() replaces
_MAX_ENTRIES = 4000  # a cache that grew past this (other programs' classes) starts over
_lock = threading.Lock()
_codes: dict[str, CodeType] = {}  # compiled or unmarshalled in this process
_stored: dict[str, bytes] = {}  # source text -> marshalled code, from the cache file
_new = 0
_installed = False


def cache_file() -> str:
    """Per interpreter build: the cache tag and bytecode magic number are in the name.
    The file holds ``{source text: marshal.dumps(code)}``: loading it is a copy of bytes,
    and only the code objects a process uses are unmarshalled."""
    from importlib._bootstrap_external import MAGIC_NUMBER  # frozen: already imported
    here = os.path.dirname(os.path.abspath(__file__))
    name = f"dataclass-fns2.{sys.implementation.cache_tag}-{MAGIC_NUMBER.hex()}.marshal"
    return os.path.join(here, "__pycache__", name)


def _load() -> None:
    try:
        with open(cache_file(), "rb") as f:
            data = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return
    if isinstance(data, dict):  # code objects stay marshalled until a class needs one
        _stored.update((k, v) for k, v in data.items() if isinstance(k, str) and isinstance(v, bytes))


def _save() -> None:
    if not _new or sys.dont_write_bytecode:
        return
    path = cache_file()
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _lock:
            data = dict(_stored) if len(_stored) + _new <= _MAX_ENTRIES else {}
            data.update((k, marshal.dumps(v)) for k, v in _codes.items() if k not in data)
        with open(tmp, "wb") as f:
            marshal.dump(data, f)
        os.replace(tmp, path)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _compiled(txt: str) -> CodeType:
    global _new
    code = _codes.get(txt)
    if code is None and txt in _stored:
        try:
            code = marshal.loads(_stored[txt])
        except (EOFError, ValueError, TypeError):
            code = None
        if code is not None:
            with _lock:
                _codes[txt] = code
    if code is None:
        # dont_inherit: compile as dataclasses' own exec() does, without this module's
        # ``from __future__ import annotations`` (annotations must stay objects).
        code = compile(txt, "<string>", "exec", dont_inherit=True)
        with _lock:
            _codes[txt] = code
            _new += 1
    return code


def _create_fn(name: str, args: list[str], body: list[str], *, globals: dict[str, Any] | None = None,
               locals: dict[str, Any] | None = None, return_type: Any = dataclasses.MISSING) -> Any:
    # The standard library's _create_fn (3.11/3.12), with exec(txt) split into a cached
    # compile and an exec of the code object.
    if locals is None:
        locals = {}
    return_annotation = ""
    if return_type is not dataclasses.MISSING:
        locals["_return_type"] = return_type
        return_annotation = "->_return_type"
    args_text = ",".join(args)
    body_text = "\n".join(f"  {b}" for b in body)
    txt = f" def {name}({args_text}){return_annotation}:\n{body_text}"
    local_vars = ", ".join(locals.keys())
    txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
    ns: dict[str, Any] = {}
    exec(_compiled(txt), globals, ns)
    return ns["__create_fn__"](**locals)


def install() -> None:
    """Route dataclasses' method compilation through the cache (once per process)."""
    global _installed
    if _installed or sys.version_info[:2] not in _SUPPORTED or not hasattr(dataclasses, "_create_fn"):
        return
    _installed = True
    _load()
    dataclasses._create_fn = _create_fn  # type: ignore[attr-defined]
    atexit.register(_save)
