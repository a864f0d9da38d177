"""Native (copy) snapshotter: full copies that keep metadata, overlay-form diffs, the same
LayerDiff as overlay for the same operations, merges and crash safety."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_rootfs import private_tmp_dir
from solver.snapshot.base import SnapshotError
from solver.snapshot.diff import ADDED, REMOVED, walk_oci
from solver.snapshot.mount import mounted
from solver.snapshot.native import NativeSnapshotter
from solver.snapshot.overlay import OverlaySnapshotter
from test_snapshot_overlay import _overlay_works, build_base, do_changes


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's basetemp, which concurrent pytest sessions may prune."""
    yield from private_tmp_dir()


@pytest.fixture
def native(tmp_path: Path) -> NativeSnapshotter:
    return NativeSnapshotter(tmp_path / "native")


def test_prepare_copies_everything(native: NativeSnapshotter) -> None:
    with mounted(native.prepare("k")) as root:
        (root / "f").write_text("data")
        if os.geteuid() == 0:
            os.chown(root / "f", 1000, 50)  # before chmod: chown clears setgid
        os.chmod(root / "f", 0o2755)
        os.link(root / "f", root / "hard")
        (root / "sym").symlink_to("/etc/nowhere")
        os.mkfifo(root / "fifo")
        os.setxattr(root / "f", "user.note", b"hello")
        if os.geteuid() == 0:
            os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    native.commit("base", "k")
    with mounted(native.prepare("k2", "base")) as root:
        st = os.lstat(root / "f")
        assert stat.S_IMODE(st.st_mode) == 0o2755
        assert st.st_ino == os.lstat(root / "hard").st_ino
        assert os.readlink(root / "sym") == "/etc/nowhere"
        assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
        assert os.getxattr(root / "f", "user.note") == b"hello"
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (1000, 50)
            assert os.lstat(root / "null").st_rdev == os.makedev(1, 3)
        (root / "f").write_text("changed")  # must not reach the parent
    assert (native.layout.committed_dir("base") / "fs" / "f").read_text() == "data"


def test_native_diff_in_overlay_form(native: NativeSnapshotter) -> None:
    build_base(native)
    with mounted(native.prepare("k1", "base")) as root:
        do_changes(root)
    native.commit("l1", "k1")
    diff_dir = native.diff_dir("l1")
    if os.geteuid() == 0:
        st = os.lstat(diff_dir / "gone")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    else:
        assert (diff_dir / ".wh.gone").exists()
    assert not (diff_dir / "keep").exists()
    names = [e.name for e in walk_oci(diff_dir)]
    assert ".wh.gone" in names and "d/.wh.old2" in names and "d/.wh.sub" in names
    by = native.layer_diff("l1").by_path()
    assert by["/gone"].kind == REMOVED and by["/new"].kind == ADDED


def _changes(sn, name: str):
    return sorted(sn.layer_diff(name).changes, key=lambda c: c.path)


def test_same_layer_diff_as_overlay(tmp_path: Path, native: NativeSnapshotter) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlay mounts need root")
    probe = tmp_path / "probe"
    probe.mkdir()
    if not _overlay_works(probe):
        pytest.skip("the kernel refuses overlay mounts here")
    overlay = OverlaySnapshotter(tmp_path / "overlay")
    for sn in (overlay, native):
        build_base(sn)
        with mounted(sn.prepare("k1", "base")) as root:
            do_changes(root)
        sn.commit("l1", "k1")
    assert _changes(overlay, "base") == _changes(native, "base")
    assert _changes(overlay, "l1") == _changes(native, "l1")
    assert len(_changes(native, "l1")) >= 8


def test_merge_applies_chains_in_order(native: NativeSnapshotter) -> None:
    with mounted(native.prepare("kb")) as root:
        (root / "shared").write_text("base")
        (root / "x").write_text("x")
    native.commit("B", "kb")
    with mounted(native.prepare("ka", "B")) as root:
        (root / "a").write_text("a")
    native.commit("A", "ka")
    with mounted(native.prepare("kc", "B")) as root:
        (root / "x").unlink()
        (root / "c").write_text("c")
    native.commit("C", "kc")
    with mounted(native.view_merged("m", ["A", "C"])) as root:
        assert sorted(os.listdir(root)) == ["a", "c", "shared"]
    with mounted(native.prepare_merged("mk", ["A", "C"])) as root:
        (root / "top").write_text("t")
    native.commit("M", "mk")
    assert [c.path for c in native.layer_diff("M").changes] == ["/top"]


def test_root_owned_by_one_driver(tmp_path: Path, native: NativeSnapshotter) -> None:
    with pytest.raises(SnapshotError):
        OverlaySnapshotter(native.root)


CRASH = """
import os, sys
from solver.snapshot.native import NativeSnapshotter
from solver.snapshot.mount import mounted
sn = NativeSnapshotter(sys.argv[1])
with mounted(sn.prepare("k", "base")) as root:
    (root / "more").write_text("x")
real_rename = os.rename
def finalize(directory, meta):
    (directory / "diff").mkdir()
    (directory / "diff" / "partial").write_text("x")
    os._exit(9)  # dies while writing the layer diff, before the commit's rename
sn.layout.commit("l1", "k", finalize)
"""


def test_crash_during_commit_leaves_no_committed_snapshot(native: NativeSnapshotter) -> None:
    build_base(native)
    proc = subprocess.run([sys.executable, "-c", CRASH, str(native.root)],
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 9
    assert not native.exists("l1")
    assert [i.name for i in native.list() if i.kind == "committed"] == ["base"]
    native.remove_orphans(include_active=True)
    assert [i.name for i in native.list()] == ["base"]
    native.remove("base")  # no child markers are left behind
    assert native.list() == []


UNPRIVILEGED = """
import os, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from solver.snapshot.mount import mounted
from solver.snapshot.native import NativeSnapshotter
from solver.snapshot.diff import walk_oci
sn = NativeSnapshotter(Path(sys.argv[2]) / "snapshots")
with mounted(sn.prepare("k0")) as root:
    (root / "d").mkdir()
    (root / "d" / "a").write_text("a")
    (root / "d" / "b").write_text("b")
    (root / "gone").write_text("x")
sn.commit("base", "k0")
with mounted(sn.prepare("k1", "base")) as root:
    (root / "gone").unlink()
    (root / "d" / "a").unlink()
    (root / "new").write_text("n")
sn.commit("l1", "k1")
print(sorted(os.listdir(sn.diff_dir("l1"))))
print(sorted((c.path, c.kind) for c in sn.layer_diff("l1").changes))
print([e.name for e in walk_oci(sn.diff_dir("l1"))])
with mounted(sn.view("v", "l1")) as root:
    print(sorted(os.listdir(root)), sorted(os.listdir(root / "d")))
"""


def test_native_works_without_privileges(tmp_path: Path) -> None:
    """The binder case: no root, no trusted xattrs, maybe no mknod (then .wh. files)."""
    import shutil
    import tempfile

    python = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(python):
        pytest.skip("needs root (to drop to uid 1000 with setpriv) and a system python3")
    base = Path(tempfile.mkdtemp(prefix="llbook-unpriv-"))
    try:
        os.chown(base, 1000, 1000)
        os.chmod(base, 0o755)
        repo = str(Path(__file__).resolve().parents[1])
        proc = subprocess.run(["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups",
                               python, "-c", UNPRIVILEGED, repo, str(base)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        # Linux >= 5.8 lets anyone mknod a 0/0 whiteout; older kernels get the .wh. file
        assert lines[0] in ("['.wh.gone', 'd', 'new']", "['d', 'gone', 'new']")
        assert lines[1] == ("[('/d', 'modified'), ('/d/a', 'removed'), ('/gone', 'removed'), "
                            "('/new', 'added')]")
        assert lines[2] == "['.wh.gone', 'd', 'd/.wh.a', 'new']"
        assert lines[3] == "['d', 'new'] ['b']"
    finally:
        shutil.rmtree(base, ignore_errors=True)
