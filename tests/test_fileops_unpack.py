"""ADD's archive unpacking (attemptUnpackDockerCompatibility), including hostile archives."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from solver.llb import pb
from solver.solve.fileops import apply_action
from solver.errors import FileOpError
from solver.solve.fileops_unpack import ArchiveBreakoutError, detect_compression, is_archive

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown and mknod need root")

MTIME = 1_500_000_000


def entry(name: str, data: bytes | None = b"", *, kind: bytes = tarfile.REGTYPE, mode: int = 0o644,
          linkname: str = "", uid: int = 0, gid: int = 0, mtime: int = MTIME,
          pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    if pax:
        info.pax_headers = pax
    if kind == tarfile.REGTYPE:
        info.size = len(data or b"")
    return info, data


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


COMPRESSORS = {
    "none": lambda b: b,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


def add(name: str, dest: str = "/out/", **kw: object) -> pb.FileActionCopy:
    """What a Dockerfile ADD of a local file lowers to."""
    return pb.FileActionCopy(src=name, dest=dest, mode=-1, timestamp=-1, follow_symlink=True,
                             dir_copy_contents=True, create_dest_path=True, allow_wildcard=True,
                             allow_empty_wildcard=True, attempt_unpack_docker_compatibility=True,
                             **kw)  # type: ignore[arg-type]


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    r = tmp_path / "src"
    r.mkdir()
    return r


@pytest.fixture()
def dest(tmp_path: Path) -> Path:
    r = tmp_path / "dest"
    r.mkdir()
    return r


SIMPLE = [
    entry("dir/", kind=tarfile.DIRTYPE, mode=0o750, uid=10, gid=20),
    entry("dir/file.txt", b"hello", mode=0o640, uid=10, gid=20),
    entry("dir/link", kind=tarfile.SYMTYPE, linkname="file.txt"),
    entry("dir/hard", kind=tarfile.LNKTYPE, linkname="dir/file.txt", mode=0o640, uid=10, gid=20),
]


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_unpacks_every_compression(src: Path, dest: Path, compression: str) -> None:
    data = COMPRESSORS[compression](make_tar(SIMPLE))
    (src / "a.tar").write_bytes(data)
    assert detect_compression(data[:10]) == compression
    apply_action(add("/a.tar"), dest, src)
    out = dest / "out"
    assert stat.S_IMODE(os.lstat(out).st_mode) == 0o755
    assert (out / "dir/file.txt").read_bytes() == b"hello"
    st = os.lstat(out / "dir/file.txt")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (0o640, 10, 20, MTIME)
    assert os.readlink(out / "dir/link") == "file.txt"
    assert os.stat(out / "dir/hard").st_ino == st.st_ino
    dst = os.lstat(out / "dir")
    assert (stat.S_IMODE(dst.st_mode), int(dst.st_mtime)) == (0o750, MTIME)


def test_chown_owns_the_made_destination_not_the_entries(src: Path, dest: Path) -> None:
    """docker build (BuildKit 0.8 in dockerd 20.10): ADD --chown of an archive chowns the
    destination it creates; the entries keep the archive's owners."""
    (src / "a.tar.gz").write_bytes(gzip.compress(make_tar(SIMPLE)))
    owner = pb.ChownOpt(user=pb.UserOpt(user=1000), group=pb.UserOpt(user=1001))
    apply_action(add("/a.tar.gz", owner=owner), dest, src)
    st = os.lstat(dest / "out")
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    st = os.lstat(dest / "out/dir/file.txt")
    assert (st.st_uid, st.st_gid) == (10, 20)


def test_non_archive_is_copied(src: Path, dest: Path) -> None:
    (src / "fake.tar.gz").write_bytes(b"not an archive at all")
    (src / "empty.tar").write_bytes(b"")
    apply_action(add("/fake.tar.gz"), dest, src)
    apply_action(add("/empty.tar"), dest, src)
    assert (dest / "out/fake.tar.gz").read_bytes() == b"not an archive at all"
    assert (dest / "out/empty.tar").read_bytes() == b""


def test_without_attempt_unpack_archive_is_copied(src: Path, dest: Path) -> None:
    (src / "a.tar").write_bytes(make_tar(SIMPLE))
    action = add("/a.tar")
    action.attempt_unpack_docker_compatibility = False
    apply_action(action, dest, src)
    assert (dest / "out/a.tar").is_file()


def test_symlink_to_archive_in_source_is_unpacked(src: Path, dest: Path) -> None:
    (src / "real.tar").write_bytes(make_tar(SIMPLE))
    os.symlink("real.tar", src / "alias.tar")
    apply_action(add("/alias.tar"), dest, src)
    assert (dest / "out/dir/file.txt").exists()


def test_is_archive() -> None:
    assert not is_archive(Path("/nonexistent/x.tar"))


def test_whiteout_files_are_plain_files(src: Path, dest: Path) -> None:
    (dest / "out").mkdir()
    (dest / "out/keep").write_text("x")
    (src / "a.tar").write_bytes(make_tar([entry(".wh.keep", b"")]))
    apply_action(add("/a.tar"), dest, src)
    assert (dest / "out/keep").exists() and (dest / "out/.wh.keep").exists()


def test_pax_xattrs_and_times(src: Path, dest: Path) -> None:
    pax = {"SCHILY.xattr.user.llbook": "v", "mtime": "1500000000.123456789"}
    (src / "a.tar").write_bytes(make_tar([entry("f", b"x", pax=pax)]))
    apply_action(add("/a.tar"), dest, src)
    assert os.lstat(dest / "out/f").st_mtime_ns == 1_500_000_000_123_456_789
    try:
        assert os.getxattr(dest / "out/f", "user.llbook") == b"v"
    except OSError:
        pytest.skip("filesystem without user xattrs")


def test_replaces_existing_entries(src: Path, dest: Path) -> None:
    (dest / "out/x").mkdir(parents=True)
    (dest / "out/x/inner").write_text("old")
    (dest / "out/y").write_text("old")
    (src / "a.tar").write_bytes(make_tar([entry("x", b"file now"), entry("y/", kind=tarfile.DIRTYPE)]))
    apply_action(add("/a.tar"), dest, src)
    assert (dest / "out/x").read_text() == "file now"
    assert (dest / "out/y").is_dir()


def test_devices_and_fifos(src: Path, dest: Path) -> None:
    fifo = entry("p", None, kind=tarfile.FIFOTYPE, mode=0o600)
    null = entry("null", None, kind=tarfile.CHRTYPE, mode=0o666)
    null[0].devmajor, null[0].devminor = 1, 3
    (src / "a.tar").write_bytes(make_tar([fifo, null]))
    apply_action(add("/a.tar"), dest, src)
    assert stat.S_ISFIFO(os.lstat(dest / "out/p").st_mode)
    st = os.lstat(dest / "out/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


# ----------------------------------------------------------------- hostile archives


def test_dotdot_entry_fails_and_writes_nothing_outside(src: Path, dest: Path, tmp_path: Path) -> None:
    (src / "evil.tar").write_bytes(make_tar([entry("ok", b"1"), entry("../../evil", b"pwned")]))
    with pytest.raises(ArchiveBreakoutError, match="invalid entry name '../../evil'"):
        apply_action(add("/evil.tar"), dest, src)
    assert not (tmp_path / "evil").exists()
    assert not (dest / "evil").exists()


def test_nested_dotdot_that_stays_inside_is_fine(src: Path, dest: Path) -> None:
    (src / "a.tar").write_bytes(make_tar([entry("a/../b", b"1")]))
    apply_action(add("/a.tar"), dest, src)
    assert (dest / "out/b").read_text() == "1"


def test_absolute_entry_is_made_relative(src: Path, dest: Path) -> None:
    (src / "a.tar").write_bytes(make_tar([entry("/abs/file", b"1")]))
    apply_action(add("/a.tar"), dest, src)
    assert (dest / "out/abs/file").read_text() == "1"
    assert stat.S_IMODE(os.lstat(dest / "out/abs").st_mode) == 0o755  # implied directory


def test_symlink_entry_cannot_redirect_later_entries(src: Path, dest: Path, tmp_path: Path) -> None:
    host_passwd = Path("/etc/passwd").read_bytes()
    outside = tmp_path / "outside"
    outside.mkdir()
    entries = [
        entry("etc_link", None, kind=tarfile.SYMTYPE, linkname="/etc"),
        entry("etc_link/passwd", b"pwned"),
        entry("up", None, kind=tarfile.SYMTYPE, linkname="../../../../../../.."),
        entry("up/escaped", b"pwned"),
        entry("abs", None, kind=tarfile.SYMTYPE, linkname=str(outside)),
        entry("abs/f", b"pwned"),
    ]
    (src / "a.tar").write_bytes(make_tar(entries))
    apply_action(add("/a.tar"), dest, src)
    out = dest / "out"
    assert Path("/etc/passwd").read_bytes() == host_passwd
    assert (out / "etc/passwd").read_bytes() == b"pwned"
    assert (out / "escaped").read_bytes() == b"pwned"
    assert list(outside.iterdir()) == []
    assert (out / str(outside).lstrip("/") / "f").read_bytes() == b"pwned"


def test_existing_dest_symlink_cannot_redirect_entries(src: Path, dest: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "out").mkdir()
    os.symlink(str(outside), dest / "out/d")
    (src / "a.tar").write_bytes(make_tar([entry("d/f", b"x"), entry("d", b"file")]))
    apply_action(add("/a.tar"), dest, src)
    assert list(outside.iterdir()) == []
    assert (dest / "out/d").read_text() == "file"  # the entry replaced the symlink


def test_hardlink_escape_fails(src: Path, dest: Path) -> None:
    (src / "a.tar").write_bytes(make_tar([entry("h", None, kind=tarfile.LNKTYPE, linkname="../../etc/passwd")]))
    with pytest.raises(ArchiveBreakoutError, match="invalid hardlink target"):
        apply_action(add("/a.tar"), dest, src)


def test_absolute_hardlink_is_relative_to_the_root(src: Path, dest: Path) -> None:
    entries = [entry("a", b"data"), entry("h", None, kind=tarfile.LNKTYPE, linkname="/a")]
    (src / "a.tar").write_bytes(make_tar(entries))
    apply_action(add("/a.tar"), dest, src)
    assert os.stat(dest / "out/h").st_ino == os.stat(dest / "out/a").st_ino


def test_hardlink_to_symlink_does_not_follow_it(src: Path, dest: Path) -> None:
    entries = [entry("s", None, kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
               entry("h", None, kind=tarfile.LNKTYPE, linkname="s")]
    (src / "a.tar").write_bytes(make_tar(entries))
    apply_action(add("/a.tar"), dest, src)
    assert os.path.islink(dest / "out/h")
    assert os.lstat(dest / "out/h").st_ino == os.lstat(dest / "out/s").st_ino


def test_unpack_dest_through_symlink_stays_inside(src: Path, dest: Path) -> None:
    os.symlink("/etc", dest / "etc_link")
    (src / "a.tar").write_bytes(make_tar([entry("llbook-unpacked", b"x")]))
    apply_action(add("/a.tar", dest="/etc_link/"), dest, src)
    assert (dest / "etc/llbook-unpacked").exists()
    assert not Path("/etc/llbook-unpacked").exists()


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_truncated_archive_is_an_error(src: Path, dest: Path, compression: str) -> None:
    data = COMPRESSORS[compression](make_tar([entry("f", os.urandom(64 * 1024))]))
    (src / "a.tar").write_bytes(data[:len(data) // 2] if compression == "gzip" else data[:3000])
    with pytest.raises(FileOpError, match="failed to unpack /a.tar"):
        apply_action(add("/a.tar"), dest, src)


# ----------------------------------------------------------------- BuildKit's ADD scenarios (dockerfile_add_test.go)


def test_add_archive_with_implied_parent_dir(src: Path, dest: Path) -> None:
    tar = make_tar([entry("etc/dnf/", kind=tarfile.DIRTYPE, mode=0o755),
                    entry("etc/dnf/dnf.conf", b"content0")])
    (src / "t.tar.gz").write_bytes(gzip.compress(tar))
    apply_action(add("/t.tar.gz", dest="/"), dest, src)
    assert (dest / "etc/dnf/dnf.conf").read_bytes() == b"content0"
    assert stat.S_IMODE(os.lstat(dest / "etc").st_mode) == 0o755


def test_add_archive_through_absolute_symlink(src: Path, dest: Path) -> None:
    rootfs = make_tar([entry("run/", kind=tarfile.DIRTYPE, mode=0o755),
                       entry("var/", kind=tarfile.DIRTYPE, mode=0o755),
                       entry("var/run", None, kind=tarfile.SYMTYPE, linkname="/run", mode=0o777)])
    payload = make_tar([entry(name, kind=tarfile.DIRTYPE, mode=0o755) for name in (
        "var/run/act/", "var/run/act/actions/", "var/run/act/actions/broad/",
        "var/run/act/actions/broad/.git/")] + [
        entry("var/run/act/actions/broad/.git/HEAD", b"ref: refs/heads/main\n"),
        entry("var/run/act/actions/broad/.git/HEAD.link", None, kind=tarfile.LNKTYPE,
              linkname="var/run/act/actions/broad/.git/HEAD")])
    (src / "rootfs.tar").write_bytes(rootfs)
    (src / "payload.tar").write_bytes(payload)
    apply_action(add("/rootfs.tar", dest="/"), dest, src)
    apply_action(add("/payload.tar", dest="/"), dest, src)
    head = dest / "run/act/actions/broad/.git/HEAD"
    assert head.read_bytes() == b"ref: refs/heads/main\n"
    assert os.path.samefile(head, dest / "run/act/actions/broad/.git/HEAD.link")
    assert os.readlink(dest / "var/run") == "/run"


def test_add_chown_archive(src: Path, dest: Path) -> None:
    (src / "t.tar").write_bytes(make_tar([entry("foo", b"content0")]))
    owner = pb.ChownOpt(user=pb.UserOpt(user=100), group=pb.UserOpt(user=200))
    apply_action(add("/t.tar", dest="/out/", owner=owner), dest, src)
    assert (os.lstat(dest / "out").st_uid, os.lstat(dest / "out").st_gid) == (100, 200)
    foo = os.lstat(dest / "out/foo")  # the archive's owner, as docker build keeps it
    assert (foo.st_uid, foo.st_gid) == (0, 0)


def test_add_archive_wildcard(src: Path, dest: Path) -> None:
    (src / "t.tar").write_bytes(make_tar([entry("foo", b"content0")]))
    (src / "b.tar").write_bytes(make_tar([entry("bar", b"content1")]))
    apply_action(add("/*.tar", dest="/dest"), dest, src)
    assert (dest / "dest/foo").read_bytes() == b"content0"
    assert (dest / "dest/bar").read_bytes() == b"content1"
