"""The local build context inside a solve: its selection (.dockerignore applied) computed
once per solve, content checksums over it without copying, and partial copies of just
the paths a COPY reads (so copying one file out of a large context costs one file)."""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.cache.contenthash import Selector
from solver.solve.ops_common import OpContext
from solver.solve.result import Ref

_WILDCARD_CHARS = "*?[\\"


MEMO_CONTEXTS = 16  # local contexts a Solver remembers between solves


@dataclass
class ContextMemo:
    """A context selection an earlier solve of the same Solver made, with the lstat of
    the root and of every entry its walk looked at (so every directory it listed), and
    the checksums computed over it.

    It is still valid when none of those changed (mtime, ctime, inode, size, mode): an
    entry added, removed or renamed changes its directory's times, and a changed file
    its own (ctime cannot be set back). Re-running an unchanged notebook cell then costs
    one lstat per context entry instead of a new walk and checksum."""

    found: tuple[Any, Any]  # (LocalContext, Selection)
    stats: list[tuple[str, tuple[int, int, int, int, int]]]
    checksums: dict[tuple[Selector, ...], str] = field(default_factory=dict)

    @classmethod
    def of(cls, local: Any, selection: Any) -> "ContextMemo":
        root = str(local.root)
        stats = [(root, _signature(os.lstat(root)))]
        stats += [(os.path.join(root, rel), _signature(st)) for rel, st in (selection.stats or {}).items()]
        return cls((local, selection), stats)

    def still_valid(self) -> bool:
        for path, signature in self.stats:
            try:
                if _signature(os.lstat(path)) != signature:
                    return False
            except OSError:
                return False
        return True


def _signature(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_size, st.st_mode)


def local_context(ctx: OpContext, ref: Ref):
    """``(LocalContext, Selection)`` of a local ref, computed once per solve (and reused
    from an earlier solve of the same Solver when the context did not change)."""
    return _context_memo(ctx, ref).found


def _context_memo(ctx: OpContext, ref: Ref) -> ContextMemo:
    from solver.source.local import LocalContext
    with ctx.local_lock:
        found = ctx.locals.get(ref)
        if found is not None:
            return found
        memos = ctx.context_memo
        earlier = memos.get(ref) if memos is not None else None
        if earlier is not None and earlier.still_valid():
            earlier.found[0].memo = ctx.memo  # this solve's stat memo for any later reads
            found = earlier
        else:
            assert ref.path is not None
            local = LocalContext(ref.path, exclude_patterns=ref.exclude_patterns,
                                 include_patterns=ref.include_patterns, follow_paths=ref.follow_paths,
                                 memo=ctx.memo)
            found = ContextMemo.of(local, local.select())
            if memos is not None:
                memos.pop(ref, None)
                memos[ref] = found
                while len(memos) > MEMO_CONTEXTS:
                    memos.pop(next(iter(memos)))
        ctx.locals[ref] = found
        return found


def checksum(ctx: OpContext, ref: Ref, selectors: Sequence[Selector]) -> str:
    memo = _context_memo(ctx, ref)
    key = tuple(selectors)
    known = memo.checksums.get(key)
    if known is None:
        local, selection = memo.found
        known = memo.checksums[key] = local.checksum_many(list(selectors), selection)
    return known


def file_digests(ctx: OpContext, ref: Ref, selector: Selector) -> dict[str, str]:
    local, selection = local_context(ctx, ref)
    return local.file_digests(selector, selection)


def literal_prefix(path: str) -> str:
    """The part of a (possibly wildcard) source path before its first wildcard component."""
    parts = []
    for part in path.strip("/").split("/"):
        if any(c in part for c in _WILDCARD_CHARS):
            break
        parts.append(part)
    return "/".join(p for p in parts if p)


def source_prefixes(root: Path, sources: Sequence[str]) -> list[str]:
    """The context paths a copy of ``sources`` reads: each source's literal prefix, and
    where a symlink is on the way, what it resolves to inside the context (a COPY follows
    a symlink source, as docker build does: ``COPY link /x`` copies the file it names)."""
    from solver.source.context_follow import resolve_follow_paths
    prefixes = [literal_prefix(posixpath.normpath("/" + s)) for s in sources]
    resolved = resolve_follow_paths(root, [p for p in prefixes if p])
    if resolved is None:
        return [""]
    return list(dict.fromkeys([*prefixes, *resolved]))


def _wanted(path: str, prefixes: Sequence[str]) -> bool:
    for prefix in prefixes:
        if not prefix or path == prefix or path.startswith(prefix + "/") or prefix.startswith(path + "/"):
            return True
    return False


def _fully_selected(root: Path, prefix: str, selected: frozenset[str]) -> bool:
    """True when every entry at or below ``prefix`` in the real directory is selected
    (nothing there is hidden by .dockerignore or include/follow paths) and the way to it
    has no symlink, so reading the directory itself gives exactly the selection."""
    import os
    current = root
    for part in [p for p in prefix.split("/") if p]:
        current = current / part
        if current.is_symlink():
            return False
    if not prefix:
        start = root
    elif not os.path.lexists(current):
        return True  # nothing to copy there (the copy reports the missing path itself)
    elif prefix not in selected:
        return False
    else:
        start = current
    if not start.is_dir():
        return True
    for dirpath, dirnames, filenames in os.walk(start):
        rel = os.path.relpath(dirpath, root)
        base = "" if rel == "." else rel + "/"
        for name in dirnames + filenames:
            if base + name not in selected:
                return False
    return True


@contextmanager
def readable(ctx: OpContext, ref: Ref, sources: Sequence[str] | None) -> Iterator[Path]:
    """A directory a copy can read ``sources`` from: the context directory itself when it
    holds exactly the selection there, else a partial copy (see ``materialised``)."""
    local, selection = local_context(ctx, ref)
    if sources is not None:
        prefixes = source_prefixes(local.root, sources)
        if all(_fully_selected(local.root, p, selection.paths) for p in prefixes):
            yield local.root
            return
    with materialised(ctx, ref, sources) as path:
        yield path


@contextmanager
def materialised(ctx: OpContext, ref: Ref, sources: Sequence[str] | None) -> Iterator[Path]:
    """A temporary copy of the selected context, limited to ``sources`` (None: everything)."""
    from solver.source.local import Selection
    local, selection = local_context(ctx, ref)
    if sources is not None:
        prefixes = source_prefixes(local.root, sources)
        selection = Selection(tuple(e for e in selection if _wanted(e.path, prefixes)))
    target = Path(tempfile.mkdtemp(prefix="context-", dir=ctx.store.paths.tmp))
    try:
        local.materialise(target / "root", selection)
        yield target / "root"
    finally:
        shutil.rmtree(target, ignore_errors=True)
