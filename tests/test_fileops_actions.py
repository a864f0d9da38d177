"""mkdir, mkfile, rm and symlink actions (BuildKit's file backend semantics)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from solver.llb import pb
from solver.solve.fileops import apply_action
from solver.errors import FileOpError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")

TS = 1_700_000_000_123_456_789


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


def mode_of(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


# ----------------------------------------------------------------- mkdir


def test_mkdir_mode_owner_timestamp(root: Path) -> None:
    owner = pb.ChownOpt(user=pb.UserOpt(user=11), group=pb.UserOpt(user=22))
    apply_action(pb.FileActionMkDir(path="/d", mode=0o750, owner=owner, timestamp=TS), root)
    st = os.lstat(root / "d")
    assert (mode_of(root / "d"), st.st_uid, st.st_gid, st.st_mtime_ns) == (0o750, 11, 22, TS)


def test_mkdir_mode_ignores_umask(root: Path) -> None:
    old = os.umask(0o077)
    try:
        apply_action(pb.FileActionMkDir(path="/d", mode=0o775, timestamp=-1), root)
        apply_action(pb.FileActionMkDir(path="/p/q", mode=0o775, make_parents=True, timestamp=-1), root)
    finally:
        os.umask(old)
    assert mode_of(root / "d") == 0o775
    assert mode_of(root / "p") == 0o775 and mode_of(root / "p/q") == 0o775


def test_mkdir_without_parents_fails_on_missing_parent(root: Path) -> None:
    with pytest.raises(FileOpError, match="mkdir /a/b: No such file or directory"):
        apply_action(pb.FileActionMkDir(path="/a/b", mode=0o755, timestamp=-1), root)


def test_mkdir_make_parents_and_existing_is_ok(root: Path) -> None:
    action = pb.FileActionMkDir(path="a/b/c", mode=0o700, make_parents=True, timestamp=TS)
    apply_action(action, root)
    apply_action(action, root)
    for rel in ("a", "a/b", "a/b/c"):
        assert mode_of(root / rel) == 0o700
        assert os.lstat(root / rel).st_mtime_ns == TS
    apply_action(pb.FileActionMkDir(path="/a", mode=0o755, timestamp=-1), root)  # exists: no error
    assert mode_of(root / "a") == 0o700


def test_mkdir_through_symlink_to_etc_stays_inside(root: Path) -> None:
    os.symlink("/etc", root / "etc_link")
    apply_action(pb.FileActionMkDir(path="/etc_link/llbook-test-dir", mode=0o755, make_parents=True,
                                    timestamp=-1), root)
    assert (root / "etc/llbook-test-dir").is_dir()
    assert not Path("/etc/llbook-test-dir").exists()


def test_mkdir_dotdot_confined(root: Path) -> None:
    apply_action(pb.FileActionMkDir(path="../../../x", mode=0o755, timestamp=-1), root)
    assert (root / "x").is_dir()


# ----------------------------------------------------------------- mkfile


def test_mkfile_data_mode_owner_timestamp(root: Path) -> None:
    owner = pb.ChownOpt(user=pb.UserOpt(user=5))
    apply_action(pb.FileActionMkFile(path="f", mode=0o640, data=b"hello", owner=owner, timestamp=TS), root)
    st = os.lstat(root / "f")
    assert (root / "f").read_bytes() == b"hello"
    assert (mode_of(root / "f"), st.st_uid, st.st_gid, st.st_mtime_ns) == (0o640, 5, 5, TS)


def test_mkfile_over_existing_file_keeps_mode_like_write_file(root: Path) -> None:
    (root / "f").write_text("old")
    os.chmod(root / "f", 0o600)
    apply_action(pb.FileActionMkFile(path="/f", mode=0o755, data=b"new", timestamp=-1), root)
    assert (root / "f").read_bytes() == b"new"
    assert mode_of(root / "f") == 0o600


def test_mkfile_missing_parent_is_an_error(root: Path) -> None:
    with pytest.raises(FileOpError, match="/nodir/f"):
        apply_action(pb.FileActionMkFile(path="/nodir/f", mode=0o644, data=b"", timestamp=-1), root)


def test_mkfile_through_symlinks_stays_inside(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    os.symlink(str(outside), root / "link")
    (root / str(outside.parent).lstrip("/")).mkdir(parents=True)
    (root / "etc").mkdir()
    os.symlink("/etc", root / "etc_link")
    apply_action(pb.FileActionMkFile(path="/link", mode=0o644, data=b"x", timestamp=-1), root)
    apply_action(pb.FileActionMkFile(path="/etc_link/passwd", mode=0o644, data=b"y", timestamp=-1), root)
    assert outside.read_text() == "keep"
    assert (root / str(outside).lstrip("/")).read_bytes() == b"x"
    assert (root / "etc/passwd").read_bytes() == b"y"


# ----------------------------------------------------------------- rm


def test_rm_file_and_tree(root: Path) -> None:
    (root / "d/sub").mkdir(parents=True)
    (root / "d/sub/f").write_text("x")
    (root / "f").write_text("x")
    apply_action(pb.FileActionRm(path="/d"), root)
    apply_action(pb.FileActionRm(path="f"), root)
    assert list(root.iterdir()) == []


def test_rm_not_found(root: Path) -> None:
    with pytest.raises(FileOpError, match="/nope: no such file or directory"):
        apply_action(pb.FileActionRm(path="/nope"), root)
    apply_action(pb.FileActionRm(path="/nope", allow_not_found=True), root)


def test_rm_root_is_refused(root: Path) -> None:
    with pytest.raises(FileOpError, match="invalid empty path"):
        apply_action(pb.FileActionRm(path="/"), root)


def test_rm_wildcard(root: Path) -> None:
    for name in ("a.log", "b.log", "keep.txt"):
        (root / name).write_text(name)
    apply_action(pb.FileActionRm(path="/*.log", allow_wildcard=True), root)
    assert sorted(p.name for p in root.iterdir()) == ["keep.txt"]
    apply_action(pb.FileActionRm(path="/*.none", allow_wildcard=True), root)  # nothing matched: fine


def test_rm_removes_symlink_not_its_target(root: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f").write_text("keep")
    os.symlink(str(victim), root / "link")
    apply_action(pb.FileActionRm(path="/link", allow_not_found=True), root)
    assert not os.path.lexists(root / "link")
    assert (victim / "f").read_text() == "keep"


def test_rm_through_parent_symlink_stays_inside(root: Path) -> None:
    host_had_passwd = Path("/etc/passwd").exists()
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("inside")
    os.symlink("/etc", root / "etc_link")
    apply_action(pb.FileActionRm(path="/etc_link/passwd"), root)
    assert not (root / "etc/passwd").exists()
    assert Path("/etc/passwd").exists() == host_had_passwd
    with pytest.raises(FileOpError, match="no such file"):
        apply_action(pb.FileActionRm(path="/etc_link/passwd"), root)  # not the host's file


def test_rm_dangling_symlink_needs_allow_not_found(root: Path) -> None:
    os.symlink("/missing", root / "dangling")
    with pytest.raises(FileOpError, match="/dangling"):
        apply_action(pb.FileActionRm(path="/dangling"), root)
    apply_action(pb.FileActionRm(path="/dangling", allow_not_found=True), root)
    assert not os.path.lexists(root / "dangling")


# ----------------------------------------------------------------- symlink


def test_symlink_created_verbatim_with_owner_and_time(root: Path) -> None:
    owner = pb.ChownOpt(user=pb.UserOpt(user=3), group=pb.UserOpt(user=4))
    apply_action(pb.FileActionSymlink(oldpath="/etc/passwd", newpath="/ln", owner=owner, timestamp=TS), root)
    st = os.lstat(root / "ln")
    assert os.readlink(root / "ln") == "/etc/passwd"
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (3, 4, TS)


def test_symlink_existing_is_an_error(root: Path) -> None:
    (root / "x").write_text("")
    with pytest.raises(FileOpError, match="symlink /x: File exists"):
        apply_action(pb.FileActionSymlink(oldpath="y", newpath="x", timestamp=-1), root)


def test_symlink_newpath_through_symlink_stays_inside(root: Path) -> None:
    (root / "etc").mkdir()
    os.symlink("/etc", root / "etc_link")
    apply_action(pb.FileActionSymlink(oldpath="target", newpath="/etc_link/llbook-ln", timestamp=-1), root)
    assert os.readlink(root / "etc/llbook-ln") == "target"
    assert not os.path.lexists("/etc/llbook-ln")


def test_invalid_action_type(root: Path) -> None:
    with pytest.raises(FileOpError, match="invalid action type"):
        apply_action(pb.FileAction(input=0, secondary_input=-1, output=0, action=None), root)


@pytest.mark.parametrize("path", ["..", "../..", "a/../..", "../victim", "..\\..", "a\\..\\..", "..\\victim"])
def test_rm_parent_traversal_does_not_escape_root(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    victim = tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    (victim / "data").write_text("data")
    with pytest.raises(FileOpError):
        apply_action(pb.FileActionRm(path=path), root)
    if path not in ("..", "../..", "a/../.."):  # these name the root itself: always refused
        apply_action(pb.FileActionRm(path=path, allow_not_found=True, allow_wildcard=True), root)
    assert (victim / "data").read_text() == "data"
    assert root.is_dir()


def test_mkdir_parents_through_a_file_names_the_path_inside(root: Path) -> None:
    (root / "file").write_text("")
    with pytest.raises(FileOpError) as info:
        apply_action(pb.FileActionMkDir(path="/file/sub", mode=0o755, make_parents=True, timestamp=-1), root)
    assert str(info.value) == "mkdir /file/sub: Not a directory"
    assert str(root) not in str(info.value)
