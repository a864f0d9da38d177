"""The overlayfs snapshotter (containerd's ``snapshots/overlay``, in Python).

Each snapshot directory has ``fs/`` (the upperdir: exactly this layer's changes) and, while
active, ``work/``. A committed snapshot is the chain of its own ``fs/`` and its parents'
(``lowerdir=`` lists them top first). A merge (LLB MergeOp) concatenates the chains of its
parents, later parents on top. An active snapshot without parents is a bind mount of its
``fs/``.

The mount data string of overlay must fit in a page, and the kernel stacks at most 500
lower layers. When a chain is too long its snapshot is flattened once: the chain is
applied into ``flat/`` beside it, and later chains stop there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from solver.snapshot.base import ACTIVE, Mount, SnapshotError
from solver.snapshot.fsutil import apply_layer, remove_tree
from solver.snapshot.layout import LayoutSnapshotter, Meta, parent_chain

MAX_LOWER_LAYERS = 500
_PARAMS = Path("/sys/module/overlay/parameters")


def kernel_overlay_options() -> tuple[str, ...]:
    """Options that turn off overlay features whose on-disk markers our differ does not read."""
    options = []
    for feature in ("index", "redirect_dir", "metacopy"):
        try:
            value = (_PARAMS / feature).read_text().strip()
        except OSError:
            continue
        if value in ("Y", "on", "follow"):
            options.append(f"{feature}=off")
    return tuple(options)


def upper_in_use(upper: Path) -> bool:
    """True when an overlay mount of this mount namespace uses ``upper`` as its upperdir."""
    needle = f"upperdir={upper}"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            return any(needle + "," in line or line.rstrip().endswith(needle) for line in f)
    except OSError:
        return False


class OverlaySnapshotter(LayoutSnapshotter):
    """Snapshots as overlayfs layers under ``root``."""

    driver = "overlay"

    def __init__(self, root: str | Path, *, userxattr: bool = False,
                 page_size: int | None = None) -> None:
        super().__init__(root)
        self.userxattr = userxattr
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self.extra_options = kernel_overlay_options() + (("userxattr",) if userxattr else ())

    # -- creating ---------------------------------------------------------------------------
    def _create(self, key: str, kind: str, parents: list[str]) -> list[Mount]:
        def populate(tmp: Path) -> None:
            (tmp / "fs").mkdir(mode=0o755)
            if kind == ACTIVE and parents:
                (tmp / "work").mkdir(mode=0o700)

        for parent in parents:
            self.layout.require_committed(parent)
        self._fit(parents, kind)  # flatten before the snapshot exists, so errors leave nothing
        self.layout.create_active(key, kind, parents, populate)
        return self.mounts(key)

    # -- mounts -----------------------------------------------------------------------------
    def mounts(self, key: str) -> list[Mount]:
        directory, meta = self.layout.require_active(key)
        lowers = self._parent_chain(meta.parents)
        fs = str(directory / "fs")
        if meta.kind == ACTIVE:
            if not lowers:
                return [Mount("bind", fs, ("rbind", "rw"))]
            return [Mount("overlay", "overlay", self._options(lowers, upper=fs,
                                                               work=str(directory / "work")))]
        if not lowers:
            return [Mount("bind", fs, ("rbind", "ro"))]
        if len(lowers) == 1:
            return [Mount("bind", lowers[0], ("rbind", "ro"))]
        return [Mount("overlay", "overlay", ("ro",) + self._options(lowers))]

    def _options(self, lowers: Sequence[str], upper: str | None = None,
                 work: str | None = None) -> tuple[str, ...]:
        options = list(self.extra_options)
        if upper is not None and work is not None:
            options += [f"workdir={work}", f"upperdir={upper}"]
        options.append("lowerdir=" + ":".join(lowers))
        return tuple(options)

    def _fits(self, lowers: Sequence[str]) -> bool:
        sample = self._options(lowers, upper="/" * 4 + "x" * 200, work="x" * 200)
        return len(",".join(sample)) < self.page_size - 1 and len(lowers) < MAX_LOWER_LAYERS

    def _fit(self, parents: Sequence[str], kind: str) -> None:
        """Flatten parents, longest chain first, until the mount options fit."""
        pending = sorted(parents, key=lambda p: -len(self._chain(p)))
        while not self._fits(self._parent_chain(parents)):
            if not pending:
                raise SnapshotError(f"overlay mount of {len(parents)} parents does not fit in "
                                    f"one page even after flattening")
            self.flatten(pending.pop(0))

    # -- chains -----------------------------------------------------------------------------
    def _chain(self, name: str) -> list[str]:
        directory, meta = self.layout.require_committed(name)
        if (directory / "flat").is_dir():
            return [str(directory / "flat")]
        return [str(directory / "fs")] + self._parent_chain(meta.parents)

    def _parent_chain(self, parents: Sequence[str]) -> list[str]:
        return parent_chain(parents, self._chain)

    def flatten(self, name: str) -> Path:
        """Apply the whole chain of ``name`` into ``flat/`` so later mounts use one layer."""
        directory, _ = self.layout.require_committed(name)
        flat = directory / "flat"
        if flat.is_dir():
            return flat
        chain = self._chain(name)
        tmp = self.layout.new_tmp_dir()
        try:
            tree = tmp / "flat"
            tree.mkdir()
            for layer in reversed(chain):
                apply_layer(layer, tree)
            try:
                os.rename(tree, flat)
            except OSError:
                if not flat.is_dir():
                    raise
        finally:
            remove_tree(tmp)
        return flat

    # -- committing and removing --------------------------------------------------------------
    def commit(self, name: str, key: str) -> None:
        def finalize(directory: Path, meta: Meta) -> None:
            if upper_in_use(directory / "fs"):
                raise SnapshotError(f"snapshot {key!r} is still mounted; unmount it before commit")
            remove_tree(directory / "work")

        self.layout.commit(name, key, finalize)

    # -- queries ----------------------------------------------------------------------------
    def diff_dir(self, name: str) -> Path:
        directory, _ = self.layout.require_committed(name)
        return directory / "fs"

    def parent_layers(self, name: str) -> list[Path]:
        _, meta = self.layout.require_committed(name)
        return [Path(p) for p in self._parent_chain(meta.parents)]

