"""Scenarios from BuildKit's Dockerfile COPY integration tests, run as the FileOp copy
actions the frontend produces (dockerfile_copy_test.go), plus GNU chmod as an oracle
for symbolic modes."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from solver.llb import pb
from solver.solve.fileops import apply_action, directory_factory, run_file_actions
from solver.solve.fileops_mode import ModeSet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def df_copy(src: str, dest: str, *, mode: int = -1, mode_str: str = "",
            owner: pb.ChownOpt | None = None) -> pb.FileActionCopy:
    """COPY as dockerfile2llb lowers it (src made absolute, dest kept with its slash)."""
    return pb.FileActionCopy(src=src, dest=dest, mode=mode, mode_str=mode_str, owner=owner, timestamp=-1,
                             follow_symlink=True, dir_copy_contents=True, create_dest_path=True,
                             allow_wildcard=True, allow_empty_wildcard=True)


def chain(copies: list[pb.FileActionCopy], n_inputs: int = 1, base: int = -1,
          source: int = 0) -> list[pb.FileAction]:
    """Several COPYs of one stage in one FileOp: action k changes the result of k-1."""
    return [pb.FileAction(input=base if k == 0 else n_inputs + k - 1, secondary_input=source,
                          output=0 if k == len(copies) - 1 else -1, action=action)
            for k, action in enumerate(copies)]


def put(root: Path, rel: str, data: str = "", mode: int = 0o600) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(data)
    os.chmod(p, mode)


@pytest.fixture()
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "context"
    c.mkdir()
    return c


@pytest.fixture()
def make(tmp_path: Path):
    return directory_factory(tmp_path / "snapshots")


def test_copy_wildcards_scenario(ctx: Path, make) -> None:
    put(ctx, "foo.go", "foo-contents")
    put(ctx, "bar.go", "bar-contents")
    put(ctx, "sub/dir1/dir2/foo", "foo-contents")
    copies = [
        df_copy("/*.go", "/gofiles/"),
        df_copy("/f*.go", "/foo2.go"),
        df_copy("/sub/*", "/subdest/"),
        df_copy("/sub/*/dir2/foo", "/subdest2/"),
        df_copy("/sub/*/dir2/foo", "/subdest3/bar"),
        df_copy("/.", "/all/"),
        df_copy("/sub/dir1/", "/subdest4"),
        df_copy("/sub/dir1/.", "/subdest5"),
        df_copy("/sub/dir1", "/subdest6"),
    ]
    out = run_file_actions(chain(copies), [ctx], make).outputs[0]
    expected = {
        "gofiles/foo.go": "foo-contents", "gofiles/bar.go": "bar-contents", "foo2.go": "foo-contents",
        "subdest/dir2/foo": "foo-contents", "subdest2/foo": "foo-contents", "subdest3/bar": "foo-contents",
        "all/foo.go": "foo-contents", "subdest4/dir2/foo": "foo-contents",
        "subdest5/dir2/foo": "foo-contents", "subdest6/dir2/foo": "foo-contents",
    }
    for rel, text in expected.items():
        assert (out / rel).read_text() == text, rel


def test_copy_override_files_scenario(ctx: Path, make) -> None:
    put(ctx, "sub/dir1/dir2/foo", "foo-contents")
    put(ctx, "files/foo.go", "foo.go-contents")
    copies = [df_copy("/sub", "/sub"), df_copy("/sub", "/sub"), df_copy("/files/foo.go", "/dest/foo.go"),
              df_copy("/files/foo.go", "/dest/foo.go"), df_copy("/files", "/dest")]
    out = run_file_actions(chain(copies), [ctx], make).outputs[0]
    assert (out / "sub/dir1/dir2/foo").read_text() == "foo-contents"
    assert (out / "dest/foo.go").read_text() == "foo.go-contents"


def test_copy_symlinks_scenario(ctx: Path, make) -> None:
    put(ctx, "bar", "bar-contents")
    os.symlink("bar", ctx / "foo")
    put(ctx, "sub/lfile", "lfile-contents")
    os.symlink("subfile", ctx / "sub/l0")
    put(ctx, "sub/subfile", "subfile-contents")
    os.symlink("second", ctx / "sub/l1")
    os.symlink("baz", ctx / "sub/second")
    put(ctx, "sub/baz", "baz-contents")
    out = run_file_actions(chain([df_copy("/foo", "/"), df_copy("/sub/l*", "/alllinks/")]), [ctx],
                           make).outputs[0]
    assert (out / "foo").read_text() == "bar-contents" and not (out / "foo").is_symlink()
    assert (out / "alllinks/l0").read_text() == "subfile-contents"
    assert (out / "alllinks/lfile").read_text() == "lfile-contents"
    assert (out / "alllinks/l1").read_text() == "baz-contents"


def test_copy_follow_all_symlinks_scenario(ctx: Path, make) -> None:
    put(ctx, "bar", "bar-contents")
    (ctx / "foo").mkdir()
    os.symlink("../bar", ctx / "foo/sub")
    out = run_file_actions(chain([df_copy("/foo", "/"), df_copy("/foo/sub", "/bar")]), [ctx],
                           make).outputs[0]
    assert os.readlink(out / "sub") == "../bar"  # directory contents keep their symlinks
    assert (out / "bar").read_text() == "bar-contents"


def test_copy_through_symlink_context_and_stage(ctx: Path, tmp_path: Path, make) -> None:
    os.symlink("sub", ctx / "link")
    put(ctx, "sub/foo", "contents")
    stage = tmp_path / "stage"
    put(stage, "out/sub/foo", "data")
    os.symlink("/out/sub", stage / "sub")
    os.symlink("out/sub", stage / "sub2")
    out = run_file_actions(
        [pb.FileAction(input=-1, secondary_input=0, output=-1, action=df_copy("/link/foo", "/")),
         pb.FileAction(input=2, secondary_input=1, output=-1, action=df_copy("/sub/foo", "/")),
         pb.FileAction(input=3, secondary_input=1, output=0, action=df_copy("/sub2/foo", "/bar"))],
        [ctx, stage], make).outputs[0]
    assert (out / "foo").read_text() == "data"  # the stage's /sub/foo overwrote the context's
    assert (out / "bar").read_text() == "data"


def test_copy_socket_becomes_regular_file(ctx: Path, tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ctx / "socket.sock"))
    dest = tmp_path / "dest"
    dest.mkdir()
    try:
        apply_action(df_copy("/.", "/"), dest, ctx)
    finally:
        sock.close()
    assert stat.S_ISREG(os.lstat(dest / "socket.sock").st_mode)


def _ids(p: Path) -> str:
    st = os.lstat(p)
    return f"{st.st_uid}:{st.st_gid}"


@pytest.mark.parametrize("chown", [None, (300, 400)])
def test_copy_chown_existing_dir_scenario(tmp_path: Path, make, chown: tuple[int, int] | None) -> None:
    source = tmp_path / "source"
    put(source, "file")
    put(source, "dir/subdir/nestedfile")
    for rel, ids in (("file", (100, 200)), ("dir", (100, 200)), ("dir/subdir", (101, 201)),
                     ("dir/subdir/nestedfile", (102, 202))):
        os.chown(source / rel, *ids)
    base = tmp_path / "base"
    (base / "existingdir/existingsubdir").mkdir(parents=True)
    put(base, "existingdir/existingfile")
    for rel, ids in (("existingdir", (500, 600)), ("existingdir/existingsubdir", (501, 601)),
                     ("existingdir/existingfile", (501, 601))):
        os.chown(base / rel, *ids)
    owner = None if chown is None else pb.ChownOpt(user=pb.UserOpt(user=chown[0]),
                                                   group=pb.UserOpt(user=chown[1]))
    copies = [df_copy("/file", "/", owner=owner), df_copy("/dir", "/dir", owner=owner),
              df_copy("/dir/.", "/existingdir", owner=owner)]
    actions = [pb.FileAction(input=0 if k == 0 else 1 + k, secondary_input=1,
                             output=0 if k == 2 else -1, action=a) for k, a in enumerate(copies)]
    out = run_file_actions(actions, [base, source], make).outputs[0]
    new = "300:400" if chown else None
    assert _ids(out / "file") == (new or "100:200")
    assert _ids(out / "dir") == (new or "0:0")  # created for the contents, as root
    assert _ids(out / "dir/subdir") == (new or "101:201")
    assert _ids(out / "dir/subdir/nestedfile") == (new or "102:202")
    assert _ids(out / "existingdir") == "500:600"
    assert _ids(out / "existingdir/existingsubdir") == "501:601"
    assert _ids(out / "existingdir/existingfile") == "501:601"
    assert _ids(out / "existingdir/subdir") == (new or "101:201")
    assert _ids(out / "existingdir/subdir/nestedfile") == (new or "102:202")


def test_copy_chmod_scenario(ctx: Path, tmp_path: Path) -> None:
    put(ctx, "foo", "foo-contents", 0o600)
    put(ctx, "bar", "bar-contents", 0o700)
    dest = tmp_path / "dest"
    dest.mkdir()
    for action in (df_copy("/foo", "/", mode=0o644), df_copy("/bar", "/baz", mode=0o777),
                   df_copy("/foo", "/foobis", mode=0), df_copy("/foo", "/parent/foo", mode=0o777),
                   df_copy("/foo", "/parent/sub/foo", mode=0o770),
                   df_copy("/foo", "/footer", mode=0o755)):
        apply_action(action, dest, ctx)
    perms = {rel: stat.S_IMODE(os.lstat(dest / rel).st_mode)
             for rel in ("foo", "baz", "foobis", "parent", "parent/sub", "footer")}
    # created parents stay 0755, as docker build's BuildKit (dockerd 20.10) leaves them;
    # BuildKit's current test expects 0777/0770 there (fsutil 183e7fb)
    assert perms == {"foo": 0o644, "baz": 0o777, "foobis": 0, "parent": 0o755, "parent/sub": 0o755,
                     "footer": 0o755}


# ----------------------------------------------------------------- chmod oracle


def _gnu_chmod(tmp: Path, mode: str, perm: int, is_dir: bool) -> int:
    target = tmp / "oracle"
    if is_dir:
        target.mkdir()
    else:
        target.write_text("")
    os.chmod(target, perm)
    subprocess.run(["chmod", mode, str(target)], check=True, preexec_fn=lambda: os.umask(0))
    result = stat.S_IMODE(os.lstat(target).st_mode)
    (target.rmdir if is_dir else target.unlink)()
    return result


@pytest.mark.parametrize("mode", ["go-w", "u=rw,g=r,o=r", "a+X", "u+rw,g+r,o-x,o+w", "+x", "u=rwx,go=u-w",
                                  "g=u", "o=g", "a-rwx", "u+x,g-w", "ug+rw", "a=", "u+s,g+s",
                                  "go=", "u-w+x", "g+X", "=r,u+w"])
@pytest.mark.parametrize("perm", [0o644, 0o124, 0o000, 0o751])
@pytest.mark.parametrize("is_dir", [False, True])
def test_mode_str_agrees_with_chmod(tmp_path: Path, mode: str, perm: int, is_dir: bool) -> None:
    expected = _gnu_chmod(tmp_path, mode, perm, is_dir)
    assert oct(ModeSet.parse(mode).apply(perm, is_dir)) == oct(expected)


@pytest.mark.parametrize("mode, perm, is_dir, buildkit, gnu", [
    ("o+t", 0o755, True, 0o755, 0o1755),  # BSD setmode ignores 't' for "other" only
    ("u+t", 0o644, False, 0o1644, 0o644),  # ... and GNU ignores it for "user" only
    ("a=rX", 0o755, False, 0o444, 0o555),  # dchapes-mode honours X only with '+'
    ("a=rX", 0o755, True, 0o444, 0o555),
])
def test_mode_str_follows_buildkit_where_gnu_chmod_differs(tmp_path: Path, mode: str, perm: int,
                                                           is_dir: bool, buildkit: int, gnu: int) -> None:
    assert _gnu_chmod(tmp_path, mode, perm, is_dir) == gnu
    assert ModeSet.parse(mode).apply(perm, is_dir) == buildkit
