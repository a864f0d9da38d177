"""Overlay snapshotter on real overlay mounts: chains, whiteouts, opaque dirs, diffs,
merged views, flattening and crash safety."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_rootfs import private_tmp_dir
from solver.snapshot.base import SnapshotError, SnapshotExistsError, SnapshotInUseError, SnapshotNotFoundError
from solver.snapshot.diff import ADDED, MODIFIED, REMOVED, FileType, walk_oci
from solver.snapshot.mount import Mount, mount_all, mounted, unmount
from solver.snapshot.overlay import OverlaySnapshotter

pytestmark = pytest.mark.root


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's basetemp, which concurrent pytest sessions may prune."""
    yield from private_tmp_dir()


def _mount_count(mentioning: str | Path = "/") -> int:
    """Mounts that mention ``mentioning`` (the test's own directory: other processes may
    mount and unmount meanwhile)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if str(mentioning) in line)


def _overlay_works(tmp: Path) -> bool:
    for sub in ("l", "u", "w", "m"):
        (tmp / sub).mkdir()
    try:
        mount_all([Mount("overlay", "overlay", (f"lowerdir={tmp/'l'}", f"upperdir={tmp/'u'}",
                                                  f"workdir={tmp/'w'}"))], tmp / "m")
    except Exception:
        return False
    unmount(tmp / "m")
    return True


@pytest.fixture
def sn(tmp_path: Path) -> OverlaySnapshotter:
    if os.geteuid() != 0:
        pytest.skip("overlay mounts need root")
    probe = tmp_path / "probe"
    probe.mkdir()
    if not _overlay_works(probe):
        pytest.skip("the kernel refuses overlay mounts here")
    return OverlaySnapshotter(tmp_path / "snapshots")


def build_base(sn, name: str = "base") -> None:
    with mounted(sn.prepare("k-" + name)) as root:
        (root / "etc").mkdir()
        (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (root / "keep").write_text("keep")
        (root / "gone").write_text("bye")
        (root / "d").mkdir()
        (root / "d" / "old1").write_text("1")
        (root / "d" / "old2").write_text("2")
        (root / "d" / "sub").mkdir()
        (root / "d" / "sub" / "deep").write_text("deep")
        (root / "ln").symlink_to("keep")
    sn.commit(name, "k-" + name)


def do_changes(root: Path) -> None:
    (root / "gone").unlink()  # removed -> whiteout
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n")
    (root / "new").write_bytes(b"x" * 1234)  # added
    os.chmod(root / "new", 0o4750)
    subprocess.run(["rm", "-rf", str(root / "d")], check=True)  # replaced dir -> opaque
    (root / "d").mkdir()
    (root / "d" / "old1").write_text("one")
    (root / "d" / "fresh").write_text("fresh")


def test_prepare_commit_chain_whiteout_opaque_and_diff(sn: OverlaySnapshotter) -> None:
    before = _mount_count(sn.root)
    build_base(sn)
    with mounted(sn.prepare("k1", "base")) as root:
        assert (root / "keep").read_text() == "keep"
        do_changes(root)
    sn.commit("l1", "k1")
    assert _mount_count(sn.root) == before == 0
    upper = sn.diff_dir("l1")
    st = os.lstat(upper / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # kernel whiteout
    assert os.getxattr(upper / "d", "trusted.overlay.opaque") == b"y"
    assert not (upper / "keep").exists()
    assert sn.parent("l1") == "base" and sn.parents("l1") == ["base"]

    diff = sn.layer_diff("l1")
    by = diff.by_path()
    assert by["/gone"].kind == REMOVED and by["/gone"].size == 3
    assert by["/new"].kind == ADDED and by["/new"].size == 1234 and by["/new"].mode == 0o4750
    assert by["/new"].type is FileType.FILE
    assert by["/etc/passwd"].kind == MODIFIED
    assert by["/etc"].kind == MODIFIED and by["/etc"].type is FileType.DIR
    assert by["/d"].kind == MODIFIED
    assert by["/d/old1"].kind == MODIFIED and by["/d/old1"].size == 3
    assert by["/d/fresh"].kind == ADDED
    assert by["/d/old2"].kind == REMOVED and by["/d/sub"].kind == REMOVED
    assert "/d/sub/deep" not in by and "/keep" not in by and "/ln" not in by
    assert diff.size == sum(c.size for c in diff.changes if c.kind != REMOVED)

    base_diff = sn.layer_diff("base")
    assert {c.kind for c in base_diff.changes} == {ADDED}
    assert base_diff.by_path()["/ln"].linkname == "keep"


def test_walk_oci_names(sn: OverlaySnapshotter) -> None:
    build_base(sn)
    with mounted(sn.prepare("k1", "base")) as root:
        do_changes(root)
    sn.commit("l1", "k1")
    names = [e.name for e in walk_oci(sn.diff_dir("l1"))]
    assert ".wh.gone" in names
    assert names.index("d") < names.index("d/.wh..wh..opq") < names.index("d/fresh")
    kinds = {e.name: e.kind for e in walk_oci(sn.diff_dir("l1"))}
    assert kinds[".wh.gone"] == "whiteout" and kinds["d/.wh..wh..opq"] == "opaque"
    assert kinds["new"] == "entry"
    top = [n for n in names if "/" not in n]
    assert top == sorted(top)


def test_view_is_read_only_and_merged(sn: OverlaySnapshotter) -> None:
    build_base(sn)
    with mounted(sn.prepare("k1", "base")) as root:
        do_changes(root)
    sn.commit("l1", "k1")
    with mounted(sn.view("v", "l1")) as root:
        assert not (root / "gone").exists()
        assert (root / "new").stat().st_size == 1234
        assert sorted(os.listdir(root / "d")) == ["fresh", "old1"]
        with pytest.raises(OSError) as err:
            (root / "x").write_text("no")
        assert err.value.errno == errno.EROFS
    sn.remove("v")


def test_merged_view_of_independent_chains(sn: OverlaySnapshotter) -> None:
    with mounted(sn.prepare("ka")) as root:
        (root / "a").write_text("a")
        (root / "same").write_text("from a")
    sn.commit("A", "ka")
    with mounted(sn.prepare("kb")) as root:
        (root / "b").write_text("b")
        (root / "same").write_text("from b")
    sn.commit("B", "kb")
    with mounted(sn.prepare("kb2", "B")) as root:
        (root / "b2").write_text("b2")
    sn.commit("B2", "kb2")
    with mounted(sn.view_merged("m", ["A", "B2"])) as root:
        assert sorted(os.listdir(root)) == ["a", "b", "b2", "same"]
        assert (root / "same").read_text() == "from b"
    with mounted(sn.prepare_merged("mk", ["B2", "A"])) as root:
        assert (root / "same").read_text() == "from a"
        (root / "on-top").write_text("x")
    sn.commit("M", "mk")
    assert sn.parents("M") == ["B2", "A"] and sn.parent("M") is None
    assert [c.path for c in sn.layer_diff("M").changes] == ["/on-top"]


def test_long_chain_is_flattened(tmp_path: Path, sn: OverlaySnapshotter) -> None:
    small = OverlaySnapshotter(tmp_path / "small", page_size=800)
    parent = None
    for i in range(8):
        with mounted(small.prepare(f"k{i}", parent)) as root:
            (root / f"f{i}").write_text(str(i))
            if i == 3:
                (root / "f1").unlink()
        small.commit(f"L{i}", f"k{i}")
        parent = f"L{i}"
    assert any((small.layout.committed_dir(f"L{i}") / "flat").is_dir() for i in range(8))
    with mounted(small.view("v", "L7")) as root:
        assert sorted(os.listdir(root)) == ["f0", "f2", "f3", "f4", "f5", "f6", "f7"]
    by = small.layer_diff("L7").by_path()
    assert list(by) == ["/f7"]


def test_exists_remove_and_in_use(sn: OverlaySnapshotter) -> None:
    build_base(sn)
    assert sn.exists("base") and not sn.exists("nope")
    with pytest.raises(SnapshotExistsError):
        sn.prepare("k-base-again", None) and sn.prepare("k-base-again", None)
    sn.prepare("child", "base")
    with pytest.raises(SnapshotInUseError):
        sn.remove("base")
    sn.remove("child")
    sn.remove("base")
    assert not sn.exists("base")
    with pytest.raises(SnapshotNotFoundError):
        sn.prepare("x", "base")
    assert sn.usage is not None


def test_commit_refuses_a_mounted_snapshot(sn: OverlaySnapshotter) -> None:
    build_base(sn)
    with mounted(sn.prepare("k", "base")) as root:
        (root / "x").write_text("x")
        with pytest.raises(SnapshotError, match="still mounted"):
            sn.commit("c", "k")
    sn.commit("c", "k")
    assert sn.exists("c")


def test_mounted_unmounts_on_exception(sn: OverlaySnapshotter) -> None:
    build_base(sn)
    before = _mount_count(sn.root)
    with pytest.raises(RuntimeError):
        with mounted(sn.prepare("k", "base")) as root:
            assert (root / "keep").exists() and _mount_count(sn.root) == before + 1
            raise RuntimeError("boom")
    assert _mount_count(sn.root) == before
    with pytest.raises(KeyboardInterrupt):
        with mounted(sn.view("v", "base")):
            raise KeyboardInterrupt
    assert _mount_count(sn.root) == before


CRASH = """
import os, sys
from pathlib import Path
from solver.snapshot.overlay import OverlaySnapshotter
sn = OverlaySnapshotter(sys.argv[1])
def populate(tmp):
    (tmp / "fs").mkdir()
    (tmp / "fs" / "half").write_text("x")
    os._exit(9)  # the process dies in the middle of building the snapshot
sn.layout.create_active("crashing", "active", [], populate)
"""


def test_crash_leaves_no_visible_half_snapshot(sn: OverlaySnapshotter) -> None:
    build_base(sn)
    proc = subprocess.run([sys.executable, "-c", CRASH, str(sn.root)], cwd=Path(__file__).parents[1])
    assert proc.returncode == 9
    names = [i.name for i in sn.list()]
    assert names == ["base"]
    assert sn.layout.find_active("crashing") is None
    removed = sn.remove_orphans()
    assert len(removed) == 1 and "tmp" in removed[0]
    assert os.listdir(sn.root / "tmp") == []
    sn.prepare("crashing", "base")  # the key is free
    assert [i.name for i in sn.list()] == ["crashing", "base"]
    assert sn.usage("base") > 0
