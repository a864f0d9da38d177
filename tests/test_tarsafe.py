"""Confined layer extraction: hostile tars change nothing outside the rootfs; whiteouts."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from solver.source.tarsafe import (ExtractOptions, TarExtractError, UnsafeTarError, WhiteoutMode,
                                   extract, member_parts)

IS_ROOT = os.geteuid() == 0


def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def f(name: str, data: bytes = b"x", mode: int = 0o644, **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_600_000_000
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def d(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 1_600_000_000
    return info, None


def sym(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info, None


def snapshot(path: Path) -> dict[str, tuple[int, int, bytes | str | None]]:
    """Every entry under `path` with type, size and content (to prove nothing changed)."""
    out: dict[str, tuple[int, int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                content: bytes | str | None = os.readlink(full)
            elif stat.S_ISREG(st.st_mode):
                content = full.read_bytes()
            else:
                content = None
            out[str(full.relative_to(path))] = (stat.S_IFMT(st.st_mode), st.st_size, content)
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """(rootfs, outside): `outside` is a sibling directory holding a victim file."""
    rootfs = tmp_path / "rootfs"
    outside = tmp_path / "outside"
    rootfs.mkdir()
    outside.mkdir()
    (outside / "victim").write_text("original")
    return rootfs, outside


def test_member_parts_cleans_and_rejects_escapes() -> None:
    assert member_parts("/etc/passwd") == ("etc", "passwd")
    assert member_parts("./a/./b/../c") == ("a", "c")
    with pytest.raises(UnsafeTarError):
        member_parts("../x")
    with pytest.raises(UnsafeTarError):
        member_parts("a/../../x")


def test_plain_layer_extracts_files_dirs_links(tmp_path: Path) -> None:
    root = tmp_path / "r"
    stats = extract(_tar(d("bin"), f("bin/tool", b"#!/bin/sh\n", 0o755), sym("bin/alias", "tool"),
                         hard("bin/hard", "bin/tool"), f("/etc/abs", b"abs")), root)
    assert (root / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert (root / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert os.readlink(root / "bin/alias") == "tool"
    assert (root / "bin/hard").stat().st_ino == (root / "bin/tool").stat().st_ino
    assert (root / "etc/abs").read_bytes() == b"abs"
    assert (root / "bin").stat().st_mtime == 1_600_000_000
    assert (stats.files, stats.dirs, stats.symlinks, stats.hardlinks) == (2, 1, 1, 1)


def test_dotdot_entry_is_refused_and_changes_nothing_outside(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    with pytest.raises(UnsafeTarError, match="climbs out"):
        extract(_tar(f("../outside/victim", b"pwned"), f("../outside/new", b"pwned")), rootfs)
    assert snapshot(outside) == before


def test_absolute_symlink_then_write_through_stays_inside(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    extract(_tar(sym("escape", str(outside)), f("escape/victim", b"pwned"), f("escape/new", b"pwned")), rootfs)
    assert snapshot(outside) == before
    # The absolute link is re-rooted: the write landed at <rootfs><outside>/victim.
    rerooted = rootfs / str(outside).lstrip("/")
    assert (rerooted / "victim").read_bytes() == b"pwned"
    assert os.readlink(rootfs / "escape") == str(outside)


def test_relative_symlink_climbing_out_is_clamped(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    extract(_tar(sym("up", "../../../../../../.."), f("up/outside/victim", b"pwned")), rootfs)
    assert snapshot(outside) == before
    assert (rootfs / "outside/victim").read_bytes() == b"pwned"


def test_symlink_chain_and_symlink_target_file_not_followed(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    # A symlink to an outside *file*, then a regular file with the same name: the link is
    # replaced, never written through.
    extract(_tar(sym("link", str(outside / "victim")), f("link", b"pwned"),
                 sym("a", "b"), sym("b", str(outside)), f("a/new", b"pwned")), rootfs)
    assert snapshot(outside) == before
    assert (rootfs / "link").read_bytes() == b"pwned"
    assert not (rootfs / "link").is_symlink()


def test_hardlink_to_outside_is_refused(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    with pytest.raises(UnsafeTarError):
        extract(_tar(hard("stolen", "../outside/victim")), rootfs)
    # Through a symlink to outside: the link target resolves inside the root, where there is
    # no such file, so the hard link is refused and nothing outside is linked.
    with pytest.raises(TarExtractError, match="does not exist"):
        extract(_tar(sym("out", str(outside)), hard("stolen", "out/victim")), rootfs)
    assert snapshot(outside) == before
    assert (outside / "victim").stat().st_nlink == 1


def test_symlink_replacing_parent_dir_stays_inside(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    extract(_tar(d("etc"), f("etc/ok", b"ok"), sym("etc", str(outside)), f("etc/victim", b"pwned"),
                 f("etc/passwd", b"pwned")), rootfs)
    assert snapshot(outside) == before
    assert (rootfs / "etc").is_symlink()
    assert (rootfs / str(outside).lstrip("/") / "victim").read_bytes() == b"pwned"


def test_symlink_replacing_parent_across_layers(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    extract(_tar(d("data"), f("data/a", b"1")), rootfs)
    extract(_tar(sym("data", "/../../.."+str(outside))), rootfs)
    extract(_tar(f("data/victim", b"pwned"), d("data/sub"), f("data/sub/x", b"pwned")), rootfs)
    assert snapshot(outside) == before


def test_parent_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TarExtractError, match="not a directory"):
        extract(_tar(f("a", b"file"), f("a/b", b"x")), tmp_path / "r")


def test_devices_are_skipped_unless_allowed(tmp_path: Path) -> None:
    info = tarfile.TarInfo("dev/null")
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor, info.mode = 1, 3, 0o666
    stats = extract(_tar((info, None)), tmp_path / "r")
    assert not (tmp_path / "r/dev/null").exists()
    assert any("device" in reason for _, reason in stats.skipped)
    if IS_ROOT:
        extract(_tar((info, None)), tmp_path / "r2", ExtractOptions(allow_devices=True))
        st = (tmp_path / "r2/dev/null").lstat()
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


@pytest.mark.skipif(not IS_ROOT, reason="ownership and trusted xattrs need root")
def test_owner_mode_and_xattrs_preserved_as_root(tmp_path: Path) -> None:
    info, data = f("usr/bin/suid", b"x", 0o4755, uid=1000, gid=1000)
    info.pax_headers = {"SCHILY.xattr.user.note": "hello"}
    extract(_tar(d("usr"), d("usr/bin"), (info, data)), tmp_path / "r")
    st = (tmp_path / "r/usr/bin/suid").stat()
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    assert st.st_mode & 0o7777 == 0o4755
    try:
        assert os.getxattr(tmp_path / "r/usr/bin/suid", "user.note") == b"hello"
    except OSError:
        pytest.skip("filesystem without user xattrs")


def _lower(root: Path) -> None:
    extract(_tar(d("etc"), f("etc/keep", b"k"), f("etc/gone", b"g"), d("var"), d("var/cache"),
                 f("var/cache/a", b"a"), d("var/cache/sub"), f("var/cache/sub/b", b"b")), root)


def test_whiteouts_apply_mode(tmp_path: Path) -> None:
    root = tmp_path / "r"
    _lower(root)
    stats = extract(_tar(f("etc/.wh.gone", b""), d("var/cache"), f("var/cache/new", b"n"),
                         f("var/cache/.wh..wh..opq", b""), f("etc/.wh.never-existed", b"")), root)
    assert (root / "etc/keep").exists()
    assert not (root / "etc/gone").exists()
    assert sorted(os.listdir(root / "var/cache")) == ["new"]  # same-layer entry survives opaque
    assert not (root / "etc/.wh.gone").exists()
    assert stats.whiteouts == 2 and stats.opaque_dirs == 1


def test_whiteout_cannot_delete_outside(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    before = snapshot(outside)
    extract(_tar(sym("o", str(outside)), f("o/.wh.victim", b""), f("o/.wh..wh..opq", b"")), rootfs)
    with pytest.raises(UnsafeTarError):
        extract(_tar(f("../outside/.wh.victim", b"")), rootfs)
    assert snapshot(outside) == before


@pytest.mark.skipif(not IS_ROOT, reason="overlay whiteout devices and trusted.* xattrs need root")
def test_whiteouts_overlay_mode(tmp_path: Path) -> None:
    root = tmp_path / "upper"
    extract(_tar(d("etc"), f("etc/.wh.gone", b""), d("var/cache"), f("var/cache/.wh..wh..opq", b""),
                 f("var/cache/new", b"n")), root, ExtractOptions(whiteouts=WhiteoutMode.OVERLAY))
    st = (root / "etc/gone").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not (root / "etc/.wh.gone").exists()
    assert os.getxattr(root / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (root / "var/cache/new").read_bytes() == b"n"
    assert not (root / "var/cache/.wh..wh..opq").exists()


def test_corrupt_and_odd_input_gives_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TarExtractError, match="corrupt layer tar"):
        extract(io.BytesIO(b"this is not a tar archive at all" * 40), tmp_path / "r")
    long_name = "d/" + "x" * 300
    with pytest.raises(TarExtractError, match="cannot extract tar entry"):
        extract(_tar(f(long_name, b"x")), tmp_path / "r2")


def test_existing_hardlinked_file_is_replaced_not_written_through(sandbox: tuple[Path, Path]) -> None:
    rootfs, outside = sandbox
    # A lower layer's file that is a hard link to a file outside (e.g. a bind-mounted host
    # file): a new layer's file of the same name must not change the outside inode.
    os.link(outside / "victim", rootfs / "linked")
    extract(_tar(f("linked", b"new content")), rootfs)
    assert (outside / "victim").read_text() == "original"
    assert (rootfs / "linked").read_bytes() == b"new content"


def test_non_root_owner_access(tmp_path: Path) -> None:
    extract(_tar(d("locked", 0o500), f("locked/secret", b"s", 0o000)), tmp_path / "r",
            ExtractOptions(owner_access=True, same_owner=False))
    assert (tmp_path / "r/locked").stat().st_mode & 0o700 == 0o700
    assert (tmp_path / "r/locked/secret").stat().st_mode & 0o600 == 0o600
    extract(_tar(d("exact", 0o500), f("exact/secret", b"s", 0o000)), tmp_path / "r",
            ExtractOptions(owner_access=False, same_owner=False))
    assert (tmp_path / "r/exact").stat().st_mode & 0o777 == 0o500
    assert (tmp_path / "r/exact/secret").stat().st_mode & 0o777 == 0o000
    os.chmod(tmp_path / "r/exact", 0o755)
