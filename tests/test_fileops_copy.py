"""FileOp copy actions on real directories (BuildKit docopy + fsutil Copy semantics)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from solver.llb import pb
from solver.solve.fileops import apply_action
from solver.errors import FileOpError
from solver.solve.fileops_copy import copy_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def cp(src: str, dest: str, **kw: object) -> pb.FileActionCopy:
    """A copy action with the Go client's defaults (mode -1, timestamp -1)."""
    kw.setdefault("mode", -1)
    kw.setdefault("timestamp", -1)
    return pb.FileActionCopy(src=src, dest=dest, **kw)  # type: ignore[arg-type]


def dockerfile_cp(src: str, dest: str, **kw: object) -> pb.FileActionCopy:
    """What a Dockerfile COPY lowers to."""
    for key in ("follow_symlink", "dir_copy_contents", "create_dest_path", "allow_wildcard",
                "allow_empty_wildcard"):
        kw.setdefault(key, True)
    return cp(src, dest, **kw)


def write(root: Path, rel: str, text: str = "", mode: int = 0o644) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text or rel)
    os.chmod(p, mode)
    return p


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


def listing(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


# ----------------------------------------------------------------- destinations


def test_file_to_root_goes_inside(src: Path, dest: Path) -> None:
    write(src, "foo.txt", "contents", 0o755)
    apply_action(cp("/foo.txt", "/"), dest, src)
    assert (dest / "foo.txt").read_text() == "contents"
    assert stat.S_IMODE((dest / "foo.txt").stat().st_mode) == 0o755


def test_file_to_new_name_and_created_parents(src: Path, dest: Path) -> None:
    write(src, "foo.txt", "x")
    apply_action(cp("foo.txt", "foo2.txt"), dest, src)
    apply_action(cp("foo.txt", "a/b/c/foo2.txt", create_dest_path=True), dest, src)
    assert (dest / "foo2.txt").read_text() == "x"
    assert (dest / "a/b/c/foo2.txt").read_text() == "x"
    assert stat.S_IMODE((dest / "a/b").stat().st_mode) == 0o755


def test_dest_with_trailing_slash_is_a_directory(src: Path, dest: Path) -> None:
    write(src, "f", "x")
    apply_action(cp("/f", "/newdir/", create_dest_path=True), dest, src)
    assert (dest / "newdir" / "f").read_text() == "x"


def test_file_onto_existing_directory_goes_inside(src: Path, dest: Path) -> None:
    write(src, "f", "x")
    (dest / "existing").mkdir()
    apply_action(cp("/f", "/existing"), dest, src)
    assert (dest / "existing" / "f").read_text() == "x"


def test_file_overwrites_existing_file(src: Path, dest: Path) -> None:
    write(src, "f", "new", 0o600)
    write(dest, "f", "old", 0o777)
    apply_action(cp("/f", "/f"), dest, src)
    assert (dest / "f").read_text() == "new"
    assert stat.S_IMODE((dest / "f").stat().st_mode) == 0o600


def test_dir_without_copy_dir_contents_keeps_its_name(src: Path, dest: Path) -> None:
    write(src, "foo/bar/baz.txt")
    (dest / "target").mkdir()
    apply_action(cp("/foo", "/target"), dest, src)
    assert (dest / "target/foo/bar/baz.txt").exists()


def test_dir_with_copy_dir_contents_merges(src: Path, dest: Path) -> None:
    write(src, "foo/bar/baz.txt")
    write(dest, "target/old.txt")
    apply_action(cp("/foo", "/target", dir_copy_contents=True), dest, src)
    assert listing(dest / "target") == ["bar", "bar/baz.txt", "old.txt"]


def test_dir_to_missing_dest_becomes_that_dir(src: Path, dest: Path) -> None:
    write(src, "foo/a")
    apply_action(cp("/foo", "/newname", dir_copy_contents=True, create_dest_path=True), dest, src)
    assert listing(dest) == ["newname", "newname/a"]


def test_dot_suffix_copies_contents_without_wildcards(src: Path, dest: Path) -> None:
    write(src, "foo/a")
    (dest / "t").mkdir()
    apply_action(cp("/foo/.", "/t"), dest, src)
    assert listing(dest / "t") == ["a"]


def test_existing_dest_dir_keeps_its_metadata(src: Path, dest: Path) -> None:
    write(src, "dir/foo.txt", "foo", 0o644)
    write(src, "dir/bar.txt", "bar", 0o644)
    os.chmod(src / "dir", 0o755)
    write(dest, "dir/bar.txt", "old-bar", 0o600)
    os.chmod(dest / "dir", 0o700)
    for rel in ("dir", "dir/bar.txt"):
        os.chown(dest / rel, 1, 1)
    apply_action(cp("/dir", "/dir", dir_copy_contents=True), dest, src)
    st = os.lstat(dest / "dir")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 1, 1)
    st = os.lstat(dest / "dir/bar.txt")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert (dest / "dir/bar.txt").read_text() == "bar"
    assert (dest / "dir/foo.txt").exists()


def test_file_over_directory_is_an_error(src: Path, dest: Path) -> None:
    write(src, "d/x")
    write(src, "other/x", "file")
    write(dest, "out/x/inner")
    with pytest.raises(FileOpError, match="cannot replace to directory /out/x with file"):
        apply_action(cp("/other", "/out", dir_copy_contents=True), dest, src)


def test_directory_over_file_is_an_error(src: Path, dest: Path) -> None:
    write(src, "d/x/inner")
    write(dest, "out/x", "file")
    with pytest.raises(FileOpError, match="cannot copy to non-directory: /out/x"):
        apply_action(cp("/d", "/out", dir_copy_contents=True), dest, src)


def test_create_dest_path_false_needs_parent(src: Path, dest: Path) -> None:
    write(src, "f")
    with pytest.raises(FileOpError, match="failed to stat /missing/f"):
        apply_action(cp("/f", "/missing/f"), dest, src)


# ----------------------------------------------------------------- sources


def test_missing_source_names_the_path(src: Path, dest: Path) -> None:
    with pytest.raises(FileOpError, match='"/nope": not found') as info:
        apply_action(cp("/nope", "/"), dest, src)
    assert info.value.path == "/nope"


def test_wildcards(src: Path, dest: Path) -> None:
    for name in ("foo.txt", "foo.go", "bar.txt"):
        write(src, name)
    apply_action(cp("/foo*", "/", allow_wildcard=True), dest, src)
    assert listing(dest) == ["foo.go", "foo.txt"]


def test_wildcard_single_match_onto_file_name(src: Path, dest: Path) -> None:
    write(src, "bar.txt", "bar-contents")
    apply_action(cp("/bar*", "/foo.txt", allow_wildcard=True), dest, src)
    assert (dest / "foo.txt").read_text() == "bar-contents"


def test_wildcard_without_matches(src: Path, dest: Path) -> None:
    write(src, "a.txt")
    with pytest.raises(FileOpError, match='"/\\*.go": not found'):
        apply_action(cp("/*.go", "/", allow_wildcard=True), dest, src)
    apply_action(cp("/*.go", "/", allow_wildcard=True, allow_empty_wildcard=True), dest, src)
    assert listing(dest) == []


def test_wildcard_dirs_copy_contents_in_dockerfile_mode(src: Path, dest: Path) -> None:
    write(src, "d1/a")
    write(src, "d2/b")
    apply_action(dockerfile_cp("/d*", "/out/"), dest, src)
    assert listing(dest / "out") == ["a", "b"]


def test_follow_symlink_copies_target_content(src: Path, dest: Path) -> None:
    write(src, "testdir/foo.txt", "foo-contents", 0o644)
    os.symlink("foo.txt", src / "testdir/link2")
    os.symlink("/testdir", src / "link")
    apply_action(cp("link/link2", "foo", follow_symlink=True), dest, src)
    assert not (dest / "foo").is_symlink()
    assert (dest / "foo").read_text() == "foo-contents"


def test_without_follow_symlink_copies_the_link(src: Path, dest: Path) -> None:
    write(src, "testdir/foo.txt")
    os.symlink("foo.txt", src / "testdir/link2")
    os.symlink("/testdir", src / "link")
    apply_action(cp("link/link2", "foo"), dest, src)
    assert os.readlink(dest / "foo") == "foo.txt"


def test_follow_symlink_stays_in_source_root(src: Path, dest: Path) -> None:
    write(src, "etc/passwd", "not the host file")
    os.symlink("/etc/passwd", src / "pw")
    apply_action(cp("/pw", "/out", follow_symlink=True), dest, src)
    assert (dest / "out").read_text() == "not the host file"


def test_source_dotdot_is_confined(src: Path, dest: Path) -> None:
    write(src, "etc/passwd", "inside")
    apply_action(cp("../../etc/passwd", "/got"), dest, src)
    assert (dest / "got").read_text() == "inside"


def test_required_paths(src: Path, dest: Path) -> None:
    write(src, "a/b/c.txt")
    apply_action(dockerfile_cp("/", "/", include_patterns=["a/b/c.txt"], required_paths=["/a/b/c.txt"]),
                 dest, src)
    assert listing(dest) == ["a", "a/b", "a/b/c.txt"]
    with pytest.raises(FileOpError, match='"/a/x.txt": not found'):
        apply_action(dockerfile_cp("/", "/", include_patterns=["a/x.txt"], required_paths=["/a/x.txt"]),
                     dest, src)


# ----------------------------------------------------------------- preserved metadata


def test_preserves_mode_owner_times_symlinks(src: Path, dest: Path) -> None:
    f = write(src, "d/f", "x")
    os.chown(f, 123, 456)
    os.chmod(f, 0o4751)  # after chown, which clears set-id bits
    os.utime(f, ns=(1_000_000_000, 2_000_000_123))
    os.symlink("f", src / "d/ln")
    os.lchown(src / "d/ln", 7, 8)
    os.chmod(src / "d", 0o710)
    apply_action(cp("/d", "/d"), dest, src)
    st = os.lstat(dest / "d/f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4751, 123, 456)
    assert st.st_mtime_ns == 2_000_000_123
    assert os.readlink(dest / "d/ln") == "f"
    assert (os.lstat(dest / "d/ln").st_uid, os.lstat(dest / "d/ln").st_gid) == (7, 8)
    assert stat.S_IMODE(os.lstat(dest / "d").st_mode) == 0o710


def test_preserves_hardlinks_within_one_copy(src: Path, dest: Path) -> None:
    write(src, "d/a", "shared")
    os.link(src / "d/a", src / "d/b")
    apply_action(cp("/d", "/d"), dest, src)
    assert os.stat(dest / "d/a").st_ino == os.stat(dest / "d/b").st_ino
    assert os.stat(dest / "d/a").st_ino != os.stat(src / "d/a").st_ino


def test_preserves_xattrs(src: Path, dest: Path) -> None:
    f = write(src, "f")
    try:
        os.setxattr(f, "user.llbook", b"value")
    except OSError:
        pytest.skip("filesystem without user xattrs")
    apply_action(cp("/f", "/f"), dest, src)
    assert os.getxattr(dest / "f", "user.llbook") == b"value"


def test_copies_fifo(src: Path, dest: Path) -> None:
    os.mkfifo(src / "pipe", 0o640)
    apply_action(cp("/pipe", "/pipe"), dest, src)
    st = os.lstat(dest / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


# ----------------------------------------------------------------- chown, chmod, timestamps


def _by_id(uid: int, gid: int | None = None) -> pb.ChownOpt:
    return pb.ChownOpt(user=pb.UserOpt(user=uid), group=None if gid is None else pb.UserOpt(user=gid))


def test_chown_by_id_applies_to_everything_created(src: Path, dest: Path) -> None:
    write(src, "dir/foo.txt")
    (src / "dir/sub2").mkdir()
    apply_action(cp("/dir", "/dest/sub", dir_copy_contents=True, create_dest_path=True,
                    mode=0o700, owner=_by_id(100, 200)), dest, src)
    for rel in ("dest/sub/foo.txt", "dest/sub/sub2"):
        st = os.lstat(dest / rel)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (100, 200, 0o700), rel
    # the created destination and its created parent: owned as --chown says, but 0755 as in
    # docker build's BuildKit (dockerd 20.10); fsutil since 2025 would give them 0700
    for rel in ("dest", "dest/sub"):
        st = os.lstat(dest / rel)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (100, 200, 0o755), rel


def test_chown_user_only_sets_gid_too(src: Path, dest: Path) -> None:
    write(src, "f")
    apply_action(cp("/f", "/f", owner=_by_id(33)), dest, src)
    st = os.lstat(dest / "f")
    assert (st.st_uid, st.st_gid) == (33, 33)


def _named(user: str | None, group: str | None, idx: int = 0) -> pb.ChownOpt:
    return pb.ChownOpt(
        user=None if user is None else pb.UserOpt(user=pb.NamedUserOpt(name=user, input=idx)),
        group=None if group is None else pb.UserOpt(user=pb.NamedUserOpt(name=group, input=idx)))


@pytest.fixture()
def users_root(tmp_path: Path) -> Path:
    r = tmp_path / "users"
    write(r, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n\napp:x:1001:1002::/home/app:/bin/sh\n")
    write(r, "etc/group", "root:x:0:\nstaff:x:50:app\n")
    return r


def test_chown_by_name(src: Path, dest: Path, users_root: Path) -> None:
    write(src, "f")
    apply_action(cp("/f", "/f", owner=_named("app", None)), dest, src, user_lookup_root=users_root)
    st = os.lstat(dest / "f")
    assert (st.st_uid, st.st_gid) == (1001, 1002)
    apply_action(cp("/f", "/g", owner=_named("app", "staff")), dest, src, user_lookup_root=users_root)
    st = os.lstat(dest / "g")
    assert (st.st_uid, st.st_gid) == (1001, 50)


def test_chown_unknown_name_is_root_like_buildkit_or_error_when_strict(
        src: Path, dest: Path, users_root: Path) -> None:
    write(src, "f")
    os.chown(src / "f", 5, 5)
    apply_action(cp("/f", "/f", owner=_named("ghost", None)), dest, src, user_lookup_root=users_root)
    assert os.lstat(dest / "f").st_uid == 0
    with pytest.raises(FileOpError, match="unable to find user ghost"):
        apply_action(cp("/f", "/g", owner=_named("ghost", None)), dest, src,
                     user_lookup_root=users_root, strict_users=True)


def test_chown_passwd_lookup_is_confined(src: Path, dest: Path, tmp_path: Path) -> None:
    assert "daemon:x:1:" in Path("/etc/passwd").read_text()  # the host file names daemon
    r = tmp_path / "hostile"
    (r / "etc").mkdir(parents=True)
    os.symlink("/proc/self/root/etc/passwd", r / "etc/passwd")  # the host's file if followed
    write(src, "f")
    apply_action(cp("/f", "/f", owner=_named("daemon", None)), dest, src, user_lookup_root=r)
    assert os.lstat(dest / "f").st_uid == 0  # not found inside the root: BuildKit's 0
    os.unlink(r / "etc/passwd")
    os.symlink("../../../../../../../etc/passwd", r / "etc/passwd")  # clamps to itself: a loop
    with pytest.raises(FileOpError, match="too many links"):
        apply_action(cp("/f", "/g", owner=_named("daemon", None)), dest, src, user_lookup_root=r)


def test_octal_mode(src: Path, dest: Path) -> None:
    write(src, "d/f", mode=0o600)
    apply_action(cp("/d", "/d", mode=0o751), dest, src)
    assert stat.S_IMODE((dest / "d/f").stat().st_mode) == 0o751
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o751


def test_symbolic_mode_str(src: Path, dest: Path) -> None:
    write(src, "d/f", mode=0o664)
    os.chmod(src / "d", 0o775)
    apply_action(cp("/d", "/d", mode_str="u+x,g-w"), dest, src)
    assert stat.S_IMODE((dest / "d/f").stat().st_mode) == 0o744
    assert stat.S_IMODE((dest / "d").stat().st_mode) == 0o755


def test_bad_mode_str_fails_before_copying(src: Path, dest: Path) -> None:
    write(src, "f")
    with pytest.raises(FileOpError, match="invalid mode"):
        apply_action(cp("/f", "/f", mode_str="u+q"), dest, src)
    assert not (dest / "f").exists()


def test_timestamp_sets_mtime_of_everything_created(src: Path, dest: Path) -> None:
    write(src, "foo/bar/baz")
    ts = 1_600_000_000_000_000_000
    apply_action(cp("/foo", "/a/b/foo", dir_copy_contents=True, create_dest_path=True, timestamp=ts),
                 dest, src)
    for rel in ("a", "a/b", "a/b/foo", "a/b/foo/bar", "a/b/foo/bar/baz"):
        assert os.lstat(dest / rel).st_mtime_ns == ts, rel


def test_timestamp_minus_one_preserves_source_mtime(src: Path, dest: Path) -> None:
    f = write(src, "f")
    os.utime(f, ns=(5, 1_234_567_890_123))
    apply_action(cp("/f", "/f", timestamp=-1), dest, src)
    assert os.lstat(dest / "f").st_mtime_ns == 1_234_567_890_123


# ----------------------------------------------------------------- include / exclude (fsutil's table)


INCLUDE_EXCLUDE_CASES = [
    (["bar"], [], ["bar", "bar/foo", "bar/baz", "bar/baz/foo3"]),
    (["*"], [], ["bar", "bar/foo", "bar/baz", "bar/baz/foo3", "foo2"]),
    (["bar/foo"], [], ["bar", "bar/foo"]),
    (["bar", "!bar/foo"], [], ["bar", "bar/baz", "bar/baz/foo3"]),
    (["bar/foo", "foo*"], [], ["bar", "bar/foo", "foo2"]),
    (["b*"], [], ["bar", "bar/foo", "bar/baz", "bar/baz/foo3"]),
    (["bar/f*"], [], ["bar", "bar/foo"]),
    (["bar/g*"], [], []),
    (["b*/f*"], [], ["bar", "bar/foo"]),
    (["b*/foo"], [], ["bar", "bar/foo"]),
    (["b*/"], [], ["bar", "bar/foo", "bar/baz", "bar/baz/foo3"]),
    (["bar/*/foo3"], [], ["bar", "bar/baz", "bar/baz/foo3"]),
    ([], ["bar*", "!bar/baz"], ["bar", "bar/baz", "bar/baz/foo3", "foo2"]),
    ([], ["**", "!bar/baz"], ["bar", "bar/baz", "bar/baz/foo3"]),
    ([], ["**", "!bar/baz", "bar/baz/foo3"], ["bar", "bar/baz"]),
    (["bar"], ["bar/baz"], ["bar", "bar/foo"]),
    (["**/foo3"], [], ["bar", "bar/baz", "bar/baz/foo3"]),
    (["**/baz"], [], ["bar", "bar/baz", "bar/baz/foo3"]),
    (["**/bar"], [], ["bar", "bar/foo", "bar/baz", "bar/baz/foo3"]),
    (["bar"], ["**/foo3"], ["bar", "bar/foo", "bar/baz"]),
    ([], ["bar/baz"], ["bar", "bar/foo", "foo2"]),
]


@pytest.mark.parametrize("includes, excludes, expected", INCLUDE_EXCLUDE_CASES)
def test_include_exclude(src: Path, dest: Path, includes: list[str], excludes: list[str],
                         expected: list[str]) -> None:
    write(src, "bar/foo", mode=0o755)
    write(src, "bar/baz/foo3", mode=0o755)
    write(src, "foo2", mode=0o755)
    apply_action(cp("/", "/", include_patterns=includes, exclude_patterns=excludes), dest, src)
    probe = ["bar", "bar/foo", "bar/baz", "bar/baz/asdf", "bar/baz/asdf/x", "bar/baz/foo3", "foo2"]
    assert [p for p in probe if (dest / p).exists()] == expected


def test_delayed_parent_dirs_get_source_metadata(src: Path, dest: Path) -> None:
    write(src, "a/b/c.txt")
    os.chmod(src / "a", 0o711)
    os.chown(src / "a", 9, 9)
    os.utime(src / "a", ns=(0, 3_000_000_000))
    apply_action(cp("/", "/", include_patterns=["a/b/c.txt"]), dest, src)
    st = os.lstat(dest / "a")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_mtime_ns) == (0o711, 9, 3_000_000_000)


def test_delayed_parent_dirs_get_fixed_timestamp(src: Path, dest: Path) -> None:
    write(src, "a/b/c.txt")
    ts = 1_000_000_000_000_000_000
    apply_action(dockerfile_cp("/", "/", include_patterns=["a/b/c.txt"], timestamp=ts), dest, src)
    for rel in ("a", "a/b", "a/b/c.txt"):
        assert os.lstat(dest / rel).st_mtime_ns == ts, rel


# ----------------------------------------------------------------- alwaysReplaceExistingDestPaths


def test_always_replace_existing_dest_paths(src: Path, dest: Path) -> None:
    write(dest, "root/overwritedir/subfile")
    write(dest, "root/overwritefile")
    os.symlink("dir", dest / "root/overwritesymlink")
    write(dest, "root/dir/dirfile1")
    (dest / "root/dir/overwritesubdir").mkdir()
    write(dest, "root/dir/overwritesubfile")
    os.symlink("dirfile1", dest / "root/dir/overwritesymlink")

    write(src, "root/overwritedir")
    write(src, "root/overwritefile/foo")
    (src / "root/overwritesymlink").mkdir()
    write(src, "root/dir/dirfile2")
    write(src, "root/dir/overwritesubdir")
    (src / "root/dir/overwritesubfile").mkdir()
    (src / "root/dir/overwritesymlink").mkdir()

    apply_action(cp("/root", "/root", dir_copy_contents=True, always_replace_existing_dest_paths=True),
                 dest, src)
    files = {p for p in listing(dest) if (dest / p).is_file() and not (dest / p).is_symlink()}
    dirs = {p for p in listing(dest) if (dest / p).is_dir() and not (dest / p).is_symlink()}
    assert files == {"root/overwritedir", "root/overwritefile/foo", "root/dir/dirfile1",
                     "root/dir/dirfile2", "root/dir/overwritesubdir"}
    assert dirs == {"root", "root/overwritefile", "root/overwritesymlink", "root/dir",
                    "root/dir/overwritesubfile", "root/dir/overwritesymlink"}


# ----------------------------------------------------------------- hostile destinations


def test_dest_through_symlink_to_etc_stays_inside(src: Path, dest: Path) -> None:
    host_before = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    write(src, "hostname", "pwned")
    os.symlink("/etc", dest / "etc_link")
    apply_action(cp("/hostname", "/etc_link/hostname", create_dest_path=True), dest, src)
    assert (dest / "etc/hostname").read_text() == "pwned"
    if host_before is not None:
        assert Path("/etc/hostname").read_bytes() == host_before


def test_dest_final_symlink_to_outside_file_is_resolved_inside(src: Path, dest: Path, tmp_path: Path) -> None:
    outside = write(tmp_path, "outside.txt", "keep")
    write(src, "f", "new")
    os.symlink(str(outside), dest / "link")
    apply_action(cp("/f", "/link", create_dest_path=True), dest, src)
    assert outside.read_text() == "keep"
    assert (dest / str(outside).lstrip("/")).read_text() == "new"


def test_symlink_inside_dest_tree_is_replaced_not_written_through(src: Path, dest: Path,
                                                                 tmp_path: Path) -> None:
    outside = write(tmp_path, "victim", "keep")
    write(src, "d/victim", "new")
    (dest / "d").mkdir()
    os.symlink(str(outside), dest / "d/victim")
    apply_action(cp("/d", "/d", dir_copy_contents=True), dest, src)
    assert outside.read_text() == "keep"
    assert not (dest / "d/victim").is_symlink()
    assert (dest / "d/victim").read_text() == "new"


def test_directory_onto_symlinked_dir_in_dest_tree_is_refused(src: Path, dest: Path,
                                                              tmp_path: Path) -> None:
    outside_dir = tmp_path / "outside_dir"
    outside_dir.mkdir()
    write(src, "d/sub/f")
    (dest / "d").mkdir()
    os.symlink(str(outside_dir), dest / "d/sub")
    with pytest.raises(FileOpError, match="cannot copy to non-directory: /d/sub"):
        apply_action(cp("/d", "/d", dir_copy_contents=True), dest, src)
    assert list(outside_dir.iterdir()) == []


# ----------------------------------------------------------------- copy_tree (snapshot clones)


def test_copy_tree_clones_everything(src: Path, tmp_path: Path) -> None:
    write(src, "a/b", "x", 0o640)
    os.chown(src / "a/b", 3, 4)
    os.symlink("/abs/target", src / "abs")
    os.chmod(src, 0o750)
    out = tmp_path / "clone"
    out.mkdir()
    copy_tree(src, out)
    assert listing(out) == ["a", "a/b", "abs"]
    assert os.readlink(out / "abs") == "/abs/target"
    st = os.lstat(out / "a/b")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 3, 4)
    assert stat.S_IMODE(os.lstat(out).st_mode) == 0o750


# ----------------------------------------------------------------- property: nothing outside the root changes

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PART = st.sampled_from(["a", "b", "..", ".", "out", "link", "abs"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dest_links=st.dictionaries(st.sampled_from(["link", "a/link", "abs", "a/b"]),
                                  st.sampled_from(["OUTSIDE", "../../OUTSIDE", "/", "..", "a", "/a/b/../.."]),
                                  max_size=3),
       dest_path=st.lists(_PART, min_size=1, max_size=5).map("/".join),
       src_name=st.sampled_from(["f", "d", "ln"]))
def test_copy_never_writes_outside(tmp_path_factory: pytest.TempPathFactory, dest_links: dict[str, str],
                                   dest_path: str, src_name: str) -> None:
    base = tmp_path_factory.mktemp("conf")
    outside = base / "OUTSIDE"
    outside.mkdir()
    (outside / "sentinel").write_text("keep")
    src, dest = base / "src", base / "dest"
    write(src, "f", "data")
    write(src, "d/inner", "data")
    os.symlink("/../../OUTSIDE/sentinel", src / "ln")
    (dest / "a").mkdir(parents=True)
    for name, target in dest_links.items():
        if not os.path.lexists(dest / name):
            os.symlink(str(outside) if target == "OUTSIDE" else target, dest / name)
    try:
        apply_action(dockerfile_cp(f"/{src_name}", dest_path), dest, src)
    except FileOpError:
        pass
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel"]
    assert (outside / "sentinel").read_text() == "keep"
    assert sorted(p.name for p in base.iterdir()) == ["OUTSIDE", "dest", "src"]



@pytest.mark.parametrize("fallback", ["sendfile", "read-write"])
def test_copy_file_content_across_filesystems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              fallback: str) -> None:
    """copy_file_range fails across filesystems (EXDEV): sendfile, then read/write, copy."""
    import errno as errno_mod
    from solver.solve import fileops_primitives

    def exdev(*args: object) -> int:
        raise OSError(errno_mod.EXDEV, "cross-device")

    def einval(*args: object) -> int:
        raise OSError(errno_mod.EINVAL, "no sendfile here")

    monkeypatch.setattr(fileops_primitives.os, "copy_file_range", exdev)
    if fallback == "read-write":
        monkeypatch.setattr(fileops_primitives.os, "sendfile", einval)
    data = os.urandom(3 << 20) + b"tail"
    (tmp_path / "src").write_bytes(data)
    fileops_primitives.copy_file_content(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert (tmp_path / "dst").read_bytes() == data
