"""User and group resolution against a rootfs's /etc/passwd and /etc/group (no root needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from solver.executor.base import ProcessSpec, UserNotFoundError, ExecutorError, MountSpec
from solver.executor.rootpath import first_missing, resolve_in_root
from solver.executor.user import ResolvedUser, resolve_user
from helpers_rootfs import private_tmp_dir

@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """Outside pytest's basetemp, which concurrent pytest sessions may prune."""
    yield from private_tmp_dir()


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "# comment\n"
                                "app:x:1000:1000:app:/home/app:/bin/sh\n"
                                "svc:x:200:300::/srv:/bin/false\n")
    (etc / "group").write_text("root:x:0:\nstaff:x:50:app,svc\napp:x:1000:\nwheel:x:10:app\nsvcgrp:x:300:\n")
    return tmp_path


@pytest.mark.parametrize("spec,expected", [
    ("", ResolvedUser(0, 0, (), "/root")),
    ("root", ResolvedUser(0, 0, (), "/root")),
    ("app", ResolvedUser(1000, 1000, (50, 10), "/home/app")),
    ("1000", ResolvedUser(1000, 1000, (50, 10), "/home/app")),
    ("1000:50", ResolvedUser(1000, 50, (), "/home/app")),
    ("app:staff", ResolvedUser(1000, 50, (), "/home/app")),
    ("app:777", ResolvedUser(1000, 777, (), "/home/app")),
    ("4242", ResolvedUser(4242, 0, (), "/")),
    ("4242:4243", ResolvedUser(4242, 4243, (), "/")),
    ("svc", ResolvedUser(200, 300, (50,), "/srv")),
])
def test_resolution(rootfs: Path, spec: str, expected: ResolvedUser) -> None:
    assert resolve_user(rootfs, spec) == expected


def test_missing_names_are_errors_naming_them(rootfs: Path) -> None:
    with pytest.raises(UserNotFoundError, match="unable to find user ghost"):
        resolve_user(rootfs, "ghost")
    with pytest.raises(UserNotFoundError, match="unable to find group nogroup"):
        resolve_user(rootfs, "app:nogroup")


def test_passwd_through_symlink_stays_in_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "passwd").write_text("u:x:7:8::/h:/bin/sh\n")
    (tmp_path / "etc" / "passwd").symlink_to("/real/passwd")  # absolute: resolved in the root
    assert resolve_user(tmp_path, "u") == ResolvedUser(7, 8, (), "/h")
    (tmp_path / "etc" / "group").symlink_to("../../../../../../real/group")  # cannot climb out
    assert resolve_in_root(tmp_path, "/etc/group") == tmp_path / "real" / "group"
    (tmp_path / "etc" / "loop").symlink_to("/etc/loop")
    with pytest.raises(ExecutorError, match="too many levels"):
        resolve_in_root(tmp_path, "/etc/loop")
    assert first_missing(tmp_path, "/a/b/c") == tmp_path / "a"
    assert first_missing(tmp_path, "/etc/passwd") is None


def test_process_and_mount_specs_validate() -> None:
    with pytest.raises(ExecutorError):
        ProcessSpec([])
    with pytest.raises(ExecutorError):
        ProcessSpec(["true"], network="bridge")
    with pytest.raises(ExecutorError):
        MountSpec("relative", "/x")
    assert ProcessSpec(["true"], valid_exit_codes=(0, 3)).exit_ok(3)
    assert not ProcessSpec(["true"]).exit_ok(3)
    assert ProcessSpec(["true"], env=["PATH=/x"]).env_with_defaults() == ["PATH=/x"]
