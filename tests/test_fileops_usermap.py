"""Owner names of a ChownOpt resolved from a root's /etc/passwd and /etc/group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from solver.llb import pb
from solver.solve.fileops_attrs import Owner
from solver.solve.usermap import (
    MAX_USER_FILE_BYTES,
    OwnerRoots,
    UserLookupError,
    chown_inputs,
    parse_group,
    parse_passwd,
    resolve_owner,
)


def named(name: str, idx: int = 0) -> pb.UserOpt:
    return pb.UserOpt(user=pb.NamedUserOpt(name=name, input=idx))


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n  \n  app:x:1000:1001:App:/home/app:/bin/sh  \n"
        "bad:x:notanumber:7\nshort:x:5\napp:x:2000:2000::/:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nstaff:x:50:app,other\nnogid:x\n")
    return tmp_path


def test_parse_passwd_like_moby_sys_user() -> None:
    entries = parse_passwd("a:x:1:2:g:/h:/s\n\n b:x:zz:3 \nc\n")
    assert [(e.name, e.uid, e.gid) for e in entries] == [("a", 1, 2), ("b", 0, 3), ("c", 0, 0)]


def test_parse_group() -> None:
    assert [(g.name, g.gid) for g in parse_group("g:x:9:u1,u2\nh::x\n")] == [("g", 9), ("h", 0)]


def test_no_chown_opt_keeps_owners(root: Path) -> None:
    assert resolve_owner(None, OwnerRoots(root, root)) is None


def test_by_id(root: Path) -> None:
    assert resolve_owner(pb.ChownOpt(user=pb.UserOpt(user=7)), OwnerRoots()) == Owner(7, 7)
    assert resolve_owner(pb.ChownOpt(user=pb.UserOpt(user=7), group=pb.UserOpt(user=8)), OwnerRoots()) \
        == Owner(7, 8)
    assert resolve_owner(pb.ChownOpt(group=pb.UserOpt(user=8)), OwnerRoots()) == Owner(0, 8)
    assert resolve_owner(pb.ChownOpt(), OwnerRoots()) == Owner(0, 0)


def test_by_name_first_entry_wins(root: Path) -> None:
    chown = pb.ChownOpt(user=named("app"))
    assert resolve_owner(chown, OwnerRoots(root, root)) == Owner(1000, 1001)
    chown = pb.ChownOpt(user=named("app"), group=named("staff"))
    assert resolve_owner(chown, OwnerRoots(root, root)) == Owner(1000, 50)


def test_unknown_names(root: Path) -> None:
    chown = pb.ChownOpt(user=named("ghost"), group=named("nogroup"))
    assert resolve_owner(chown, OwnerRoots(root, root)) == Owner(0, 0)
    with pytest.raises(UserLookupError, match="unable to find user ghost"):
        resolve_owner(chown, OwnerRoots(root, root), strict=True)
    with pytest.raises(UserLookupError, match="unable to find group nogroup"):
        resolve_owner(pb.ChownOpt(group=named("nogroup")), OwnerRoots(root, root), strict=True)


def test_unknown_group_keeps_the_users_gid(root: Path) -> None:
    """BuildKit's readUser sets GID from the user first and only overwrites it when the
    group is found (docker build: --chown=app:nosuchgroup gives app's uid and gid)."""
    chown = pb.ChownOpt(user=named("app"), group=named("nosuchgroup"))
    assert resolve_owner(chown, OwnerRoots(root, root)) == Owner(1000, 1001)
    chown = pb.ChownOpt(user=pb.UserOpt(user=7), group=named("nosuchgroup"))
    assert resolve_owner(chown, OwnerRoots(root, root)) == Owner(7, 7)
    (root / "etc/group").unlink()
    assert resolve_owner(pb.ChownOpt(user=named("app"), group=named("staff")), OwnerRoots(root, root)) \
        == Owner(1000, 1001)


def test_missing_files_mean_not_found(tmp_path: Path) -> None:
    assert resolve_owner(pb.ChownOpt(user=named("app")), OwnerRoots(tmp_path, tmp_path)) == Owner(0, 0)


def test_missing_root_is_an_error() -> None:
    with pytest.raises(UserLookupError, match="invalid missing user mount"):
        resolve_owner(pb.ChownOpt(user=named("app")), OwnerRoots())
    with pytest.raises(UserLookupError, match="invalid missing group mount"):
        resolve_owner(pb.ChownOpt(group=named("g")), OwnerRoots())


def test_non_regular_and_oversized_files(tmp_path: Path) -> None:
    (tmp_path / "etc/passwd").mkdir(parents=True)
    with pytest.raises(UserLookupError, match="/etc/passwd is not a regular file"):
        resolve_owner(pb.ChownOpt(user=named("app")), OwnerRoots(tmp_path, tmp_path))
    os.mkfifo(tmp_path / "etc/group")
    with pytest.raises(UserLookupError, match="/etc/group is not a regular file"):
        resolve_owner(pb.ChownOpt(group=named("g")), OwnerRoots(tmp_path, tmp_path))
    (tmp_path / "etc/passwd").rmdir()
    with open(tmp_path / "etc/passwd", "wb") as fh:
        fh.truncate(MAX_USER_FILE_BYTES + 1)
    with pytest.raises(UserLookupError, match="exceeds"):
        resolve_owner(pb.ChownOpt(user=named("app")), OwnerRoots(tmp_path, tmp_path))


def test_chown_inputs() -> None:
    assert chown_inputs(None) == (None, None)
    assert chown_inputs(pb.ChownOpt(user=named("a", 2), group=pb.UserOpt(user=5))) == (2, None)
    assert chown_inputs(pb.ChownOpt(user=pb.UserOpt(user=1), group=named("g", 0))) == (None, 0)
