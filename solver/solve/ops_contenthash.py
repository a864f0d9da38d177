"""Content checksums of the paths a consumer selects from an input (BuildKit's slow keys).

``content_checksum(ctx, ref, selectors)`` opens the input read-only (a snapshot view, or
the local context directory with its .dockerignore applied) and returns the checksum of
exactly the selected paths, plus, when asked, the per-file digests for "why rebuilt".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from solver.cache import contenthash
from solver.solve.cachekey import ContentSelector
from solver.solve.ops_common import OpContext
from solver.solve.result import Ref

MAX_FILES_RECORDED = 5000


def _selector(sel: ContentSelector) -> contenthash.Selector:
    return contenthash.Selector(sel.path, sel.follow_symlinks, sel.wildcard,
                                tuple(sel.include_patterns), tuple(sel.exclude_patterns))


def _local_root(ctx: OpContext, ref: Ref) -> tuple[Path, object | None]:
    """The local context as a tree that hides what .dockerignore excludes."""
    from solver.source.local import LocalContext
    assert ref.path is not None
    local = LocalContext(ref.path, exclude_patterns=list(ref.exclude_patterns),
                         include_patterns=list(ref.include_patterns) or None,
                         follow_paths=list(ref.follow_paths) or None)
    return ref.path, local


def _checksum_dir(ctx: OpContext, root: Path, selectors: Sequence[ContentSelector],
                  local: object | None, with_files: bool) -> tuple[str, dict[str, str] | None]:
    sels = [_selector(s) for s in selectors]
    if local is not None and hasattr(local, "checksum_many"):
        checksum = local.checksum_many(sels, memo=ctx.memo)
    else:
        checksum = contenthash.checksum_many(root, sels, memo=ctx.memo)
    if not with_files:
        return checksum, None
    files: dict[str, str] = {}
    for sel in sels:
        try:
            if local is not None and hasattr(local, "file_digests"):
                found = local.file_digests(sel, memo=ctx.memo)
            else:
                found = contenthash.file_digests(root, sel, memo=ctx.memo)
        except contenthash.ContentHashError:
            continue
        files.update(found)
        if len(files) > MAX_FILES_RECORDED:
            return checksum, None
    return checksum, files


def content_checksum(ctx: OpContext, ref: Ref, selectors: Sequence[ContentSelector],
                     with_files: bool = False) -> tuple[str, dict[str, str] | None]:
    if ref.kind == "local":
        root, local = _local_root(ctx, ref)
        return _checksum_dir(ctx, root, selectors, local, with_files)
    with ctx.open_ref(ref) as root:
        return _checksum_dir(ctx, root, selectors, None, with_files)
