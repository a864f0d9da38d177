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


def _local_checksum(ctx: OpContext, ref: Ref, selectors: Sequence[ContentSelector],
                    with_files: bool) -> tuple[str, dict[str, str] | None]:
    from solver.solve import ops_local
    sels = [_selector(s) for s in selectors]
    checksum = ops_local.checksum(ctx, ref, sels)
    if not with_files:
        return checksum, None
    files: dict[str, str] = {}
    for sel in sels:
        try:
            files.update(ops_local.file_digests(ctx, ref, sel))
        except (contenthash.ContentHashError, FileNotFoundError):
            continue
        if len(files) > MAX_FILES_RECORDED:
            return checksum, None
    return checksum, files


def _checksum_dir(ctx: OpContext, root: Path, selectors: Sequence[ContentSelector],
                  with_files: bool) -> tuple[str, dict[str, str] | None]:
    # No stat memo here: a snapshot is mounted at a fresh temporary path each time, so its
    # entries would never hit again and would only grow the persisted memo.
    sels = [_selector(s) for s in selectors]
    checksum = contenthash.checksum_many(root, sels)
    if not with_files:
        return checksum, None
    files: dict[str, str] = {}
    for sel in sels:
        try:
            files.update(contenthash.file_digests(root, sel))
        except (contenthash.ContentHashError, FileNotFoundError):
            continue
        if len(files) > MAX_FILES_RECORDED:
            return checksum, None
    return checksum, files


def content_checksum(ctx: OpContext, ref: Ref, selectors: Sequence[ContentSelector],
                     with_files: bool = False) -> tuple[str, dict[str, str] | None]:
    if ref.kind == "local":
        return _local_checksum(ctx, ref, selectors, with_files)
    with ctx.open_ref(ref) as root:
        return _checksum_dir(ctx, root, selectors, with_files)
