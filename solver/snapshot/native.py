"""The native (copy) snapshotter, for machines where overlayfs cannot be mounted.

``prepare`` copies the parent's full tree into the new snapshot's ``fs/``. ``commit`` walks
the tree against its parent's and writes the layer's changes in overlay form into
``diff/`` (whiteouts as 0/0 char devices, or ``.wh.`` files where mknod is not allowed),
so exports and ``LayerDiff`` work as for overlay. Added and changed regular files in
``diff/`` are hardlinks into ``fs/``: a committed snapshot never changes, so they cost no
extra space.
"""

from __future__ import annotations

import filecmp
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from solver.snapshot.base import ACTIVE, VIEW, Mount
from solver.snapshot.diff import LowerView
from solver.snapshot.fsutil import (
    HardlinkMap,
    apply_layer,
    copy_entry,
    copy_tree,
    make_dir_like,
    make_whiteout,
    read_xattrs,
    remove_tree,
    set_dir_times,
)
from solver.snapshot.layout import LayoutSnapshotter, Meta, parent_chain


class NativeSnapshotter(LayoutSnapshotter):
    """Snapshots as full directory copies under ``root``."""

    driver = "native"

    # -- creating ---------------------------------------------------------------------------
    def _create(self, key: str, kind: str, parents: list[str]) -> list[Mount]:
        def populate(tmp: Path) -> None:
            if kind == VIEW and len(parents) <= 1:
                (tmp / "fs").mkdir(mode=0o755)  # empty; a one-parent view binds the parent
            else:
                self._materialize(parents, tmp / "fs")

        self.layout.create_active(key, kind, parents, populate)
        return self.mounts(key)

    def _materialize(self, parents: list[str], target: Path) -> None:
        if not parents:
            target.mkdir(mode=0o755)
            return
        copy_tree(self._fs(parents[0]), target)
        bottom = set(self._diff_chain(parents[0]))
        for layer in reversed(self._parent_diff_chain(parents)):
            if layer not in bottom:
                apply_layer(layer, target)

    # -- mounts -----------------------------------------------------------------------------
    def mounts(self, key: str) -> list[Mount]:
        directory, meta = self.layout.require_active(key)
        if meta.kind == ACTIVE:
            return [Mount("bind", str(directory / "fs"), ("rbind", "rw"))]
        if len(meta.parents) == 1:
            return [Mount("bind", str(self._fs(meta.parents[0])), ("rbind", "ro"))]
        return [Mount("bind", str(directory / "fs"), ("rbind", "ro"))]

    # -- chains -----------------------------------------------------------------------------
    def _fs(self, name: str) -> Path:
        directory, _ = self.layout.require_committed(name)
        return directory / "fs"

    def _diff_chain(self, name: str) -> list[str]:
        directory, meta = self.layout.require_committed(name)
        return [str(directory / "diff")] + self._parent_diff_chain(meta.parents)

    def _parent_diff_chain(self, parents: Sequence[str]) -> list[str]:
        return parent_chain(parents, self._diff_chain)

    def _lower_view(self, parents: Sequence[str]) -> LowerView:
        if len(parents) == 1:
            return LowerView([self._fs(parents[0])])
        return LowerView(self._parent_diff_chain(parents))

    # -- committing and removing --------------------------------------------------------------
    def commit(self, name: str, key: str) -> None:
        def finalize(directory: Path, meta: Meta) -> None:
            tmp = directory / "diff.tmp"
            remove_tree(tmp)
            write_native_diff(directory / "fs", self._lower_view(meta.parents), tmp)
            remove_tree(directory / "diff")
            os.rename(tmp, directory / "diff")

        self.layout.commit(name, key, finalize)

    # -- queries ----------------------------------------------------------------------------
    def diff_dir(self, name: str) -> Path:
        directory, _ = self.layout.require_committed(name)
        return directory / "diff"

    def parent_layers(self, name: str) -> list[Path]:
        _, meta = self.layout.require_committed(name)
        return [Path(p) for p in self._lower_view(meta.parents).layers]


# -- the double walk that writes a layer in overlay form ------------------------------------

@dataclass
class _DiffWriter:
    upper: str
    lower: LowerView
    out: str
    links: HardlinkMap = field(default_factory=HardlinkMap)
    made: list[tuple[str, os.stat_result]] = field(default_factory=list)

    def ensure_dir(self, rel: str) -> str:
        """Create ``out/rel`` and its ancestors with the upper tree's metadata."""
        target = os.path.join(self.out, rel) if rel else self.out
        if os.path.isdir(target):
            return target
        if rel:
            self.ensure_dir(os.path.dirname(rel))
        src = os.path.join(self.upper, rel) if rel else self.upper
        st = os.lstat(src)
        make_dir_like(src, target, st)
        self.made.append((target, st))
        return target

    def copy_subtree(self, rel: str) -> None:
        src = os.path.join(self.upper, rel)
        st = os.lstat(src)
        if not stat.S_ISDIR(st.st_mode):
            self.ensure_dir(os.path.dirname(rel))
            copy_entry(src, os.path.join(self.out, rel), st, self.links, link_files=True)
            return
        self.ensure_dir(rel)
        for name in sorted(os.listdir(src)):
            self.copy_subtree(os.path.join(rel, name))

    def walk(self, rel: str) -> None:
        upper_dir = os.path.join(self.upper, rel) if rel else self.upper
        ups = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(upper_dir)}
        lows = self.lower.listdir("/" + rel)
        for name in sorted(set(ups) | set(lows)):
            child = os.path.join(rel, name) if rel else name
            up, low = ups.get(name), lows.get(name)
            if up is None:
                make_whiteout(os.path.join(self.ensure_dir(rel), name))
            elif low is None:
                self.copy_subtree(child)
            elif stat.S_ISDIR(up.st_mode) and stat.S_ISDIR(low.st.st_mode):
                if not _same_meta(os.path.join(self.upper, child), up, low.host_path, low.st):
                    self.ensure_dir(child)
                self.walk(child)
            elif not _same_entry(os.path.join(self.upper, child), up, low.host_path, low.st):
                self.copy_subtree(child)

    def finish(self) -> None:
        for target, st in reversed(self.made):
            set_dir_times(target, st)


def write_native_diff(upper: str | Path, lower: LowerView, out: str | Path) -> None:
    """Write into the new directory ``out`` the changes of tree ``upper`` over ``lower``."""
    writer = _DiffWriter(str(upper), lower, str(out))
    writer.ensure_dir("")
    writer.walk("")
    writer.finish()


def _same_meta(up_path: str, up: os.stat_result, low_path: str, low: os.stat_result) -> bool:
    return (stat.S_IFMT(up.st_mode) == stat.S_IFMT(low.st_mode)
            and stat.S_IMODE(up.st_mode) == stat.S_IMODE(low.st_mode)
            and (up.st_uid, up.st_gid) == (low.st_uid, low.st_gid)
            and up.st_mtime_ns == low.st_mtime_ns
            and read_xattrs(up_path) == read_xattrs(low_path))


def _same_entry(up_path: str, up: os.stat_result, low_path: str, low: os.stat_result) -> bool:
    if not _same_meta(up_path, up, low_path, low) or up.st_size != low.st_size:
        return False
    if stat.S_ISLNK(up.st_mode):
        return os.readlink(up_path) == os.readlink(low_path)
    if stat.S_ISCHR(up.st_mode) or stat.S_ISBLK(up.st_mode):
        return up.st_rdev == low.st_rdev
    if stat.S_ISREG(up.st_mode) and up.st_mtime_ns % 1_000_000_000 == 0:
        return filecmp.cmp(up_path, low_path, shallow=False)  # coarse clock: look inside
    return True
