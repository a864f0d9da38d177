"""MergeOp and DiffOp execution.

- Merge: a new snapshot on the merge of the inputs' snapshots (later inputs on top);
  inputs that are not snapshots (the local context) are copied on top in order.
- Diff: a snapshot on scratch holding what ``upper`` adds or changes relative to
  ``lower`` (entries whose type, mode, owner, size, link target or content differ).
  Deletions are not represented (BuildKit shows them as whiteouts only when the diff
  is exported as a layer).
"""

from __future__ import annotations

import filecmp
import os
import stat
import subprocess
from pathlib import Path

from solver.llb import pb
from solver.snapshot.fsutil import HardlinkMap, copy_entry, copy_tree, make_dir_like
from solver.solve.ops_common import OpContext, OutputResult, VertexInfo, layer_result, new_layer
from solver.solve.ops_refs import open_ref
from solver.solve.result import Ref


def execute_merge(ctx: OpContext, info: VertexInfo, inputs: list[Ref]) -> list[OutputResult]:
    merge: pb.MergeOp = info.op.op
    refs = [inputs[m.input] if m.input >= 0 else Ref.scratch() for m in merge.inputs]
    snapshots = [r.snapshot for r in refs if r.kind == "snapshot" and r.snapshot]
    with new_layer(ctx, snapshots) as work:
        assert work.path is not None
        for ref in refs:
            if ref.kind == "local":
                with open_ref(ctx, ref) as src:
                    copy_into(src, work.path)
    return [layer_result(ctx, work)]


def copy_into(src: Path, dst: Path) -> None:
    """Copy the contents of ``src`` over the existing directory ``dst`` (metadata kept)."""
    proc = subprocess.run(["cp", "-a", "--", f"{src}/.", f"{dst}/"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(f"copy {src} -> {dst}: {proc.stderr.strip()}")


def _same(a: str, sa: os.stat_result, b: str, sb: os.stat_result) -> bool:
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        return False
    if (sa.st_mode, sa.st_uid, sa.st_gid) != (sb.st_mode, sb.st_uid, sb.st_gid):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        return sa.st_size == sb.st_size and filecmp.cmp(a, b, shallow=False)
    if stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
        return sa.st_rdev == sb.st_rdev
    return True


def copy_changes(lower: Path, upper: Path, out: Path, rel: str = "") -> None:
    """Copy into ``out`` every entry of ``upper`` that is new or different from ``lower``."""
    links = HardlinkMap()
    up_dir = os.path.join(upper, rel)
    for entry in sorted(os.scandir(up_dir), key=lambda e: e.name):
        child = os.path.join(rel, entry.name)
        up_path, low_path = entry.path, os.path.join(lower, child)
        up_st = entry.stat(follow_symlinks=False)
        try:
            low_st = os.lstat(low_path)
        except FileNotFoundError:
            low_st = None
        if stat.S_ISDIR(up_st.st_mode):
            if low_st is None or not stat.S_ISDIR(low_st.st_mode):
                _ensure_parents(upper, out, rel)
                copy_tree(up_path, os.path.join(out, child))
                continue
            copy_changes(lower, upper, out, child)
            continue
        if low_st is not None and _same(up_path, up_st, low_path, low_st):
            continue
        _ensure_parents(upper, out, rel)
        copy_entry(up_path, os.path.join(out, child), up_st, links)


def _ensure_parents(upper: Path, out: Path, rel: str) -> None:
    parts = [p for p in rel.split("/") if p]
    for i in range(len(parts)):
        sub = "/".join(parts[: i + 1])
        dst = os.path.join(out, sub)
        if not os.path.lexists(dst):
            src = os.path.join(upper, sub)
            make_dir_like(src, dst, os.lstat(src))


def execute_diff(ctx: OpContext, info: VertexInfo, inputs: list[Ref]) -> list[OutputResult]:
    diff: pb.DiffOp = info.op.op
    lower = inputs[diff.lower.input] if diff.lower and diff.lower.input >= 0 else Ref.scratch()
    upper = inputs[diff.upper.input] if diff.upper and diff.upper.input >= 0 else Ref.scratch()
    with new_layer(ctx, []) as work:
        assert work.path is not None
        with open_ref(ctx, lower) as low, open_ref(ctx, upper) as up:
            copy_changes(low, up, work.path)
    return [layer_result(ctx, work)]
