"""Resolve a FileOp ``ChownOpt`` to numeric ids, reading users and groups from a root.

Follows BuildKit's ``readUser`` (``solver/llbsolver/ops/user_linux.go``):

- no ``ChownOpt`` at all means "keep owners" (``None``);
- ``user`` by id sets both uid and gid to that id; by name looks the name up in
  ``/etc/passwd`` of the given root and takes its uid and primary gid;
- ``group`` by id sets the gid; by name looks it up in ``/etc/group``;
- a name that is not found (or a missing passwd/group file) leaves the id at 0, as
  BuildKit does; ``strict=True`` raises ``UserLookupError`` instead;
- the files are opened inside the root (symlinks resolved within it), must be regular
  files and at most 10 MiB.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from solver.llb import pb
from solver.errors import FileOpError
from solver.solve.fileops_attrs import Owner
from solver.solve.fileops_paths import root_path

PASSWD_PATH = "/etc/passwd"
GROUP_PATH = "/etc/group"
MAX_USER_FILE_BYTES = 10 << 20


class UserLookupError(FileOpError):
    """A user or group name that cannot be resolved, or an unreadable passwd/group file."""


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int


def _atoi(text: str) -> int:
    """Go's ``strconv.Atoi`` with the error ignored, as moby/sys/user's parseLine."""
    try:
        return int(text, 10) if text.strip() == text else 0
    except ValueError:
        return 0


def parse_passwd(text: str) -> list[PasswdEntry]:
    """``name:password:uid:gid:gecos:home:shell`` lines; blank lines are skipped."""
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = line.split(":")
        parts += [""] * (4 - len(parts))
        entries.append(PasswdEntry(parts[0], _atoi(parts[2]), _atoi(parts[3])))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """``name:password:gid:members`` lines; blank lines are skipped."""
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = line.split(":")
        parts += [""] * (3 - len(parts))
        entries.append(GroupEntry(parts[0], _atoi(parts[2])))
    return entries


def read_user_file(root: Path, path: str) -> str | None:
    """The text of ``path`` inside ``root``; None when it does not exist."""
    resolved = root_path(root, path)
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not hang
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UserLookupError(f"failed to open {path}: {exc.strerror}", path) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserLookupError(f"{path} is not a regular file", path)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_USER_FILE_BYTES + 1)
    if len(data) > MAX_USER_FILE_BYTES:
        raise UserLookupError(f'"{path}" exceeds {MAX_USER_FILE_BYTES} bytes', path)
    return data.decode("utf-8", errors="surrogateescape")


def lookup_user(root: Path, name: str) -> PasswdEntry | None:
    """The first ``/etc/passwd`` entry of ``root`` named ``name``."""
    text = read_user_file(root, PASSWD_PATH)
    if text is None:
        return None
    return next((e for e in parse_passwd(text) if e.name == name), None)


def lookup_group(root: Path, name: str) -> GroupEntry | None:
    """The first ``/etc/group`` entry of ``root`` named ``name``."""
    text = read_user_file(root, GROUP_PATH)
    if text is None:
        return None
    return next((e for e in parse_group(text) if e.name == name), None)


@dataclass(frozen=True)
class OwnerRoots:
    """Where the names of a ``ChownOpt`` are looked up: its user's and its group's input."""

    user: Path | None = None
    group: Path | None = None


def chown_inputs(chown: pb.ChownOpt | None) -> tuple[int | None, int | None]:
    """The FileOp index space inputs that ``chown`` reads names from (user, group)."""
    if chown is None:
        return None, None
    return _named_input(chown.user), _named_input(chown.group)


def _named_input(opt: pb.UserOpt | None) -> int | None:
    if opt is not None and isinstance(opt.user, pb.NamedUserOpt):
        return opt.user.input
    return None


def resolve_owner(chown: pb.ChownOpt | None, roots: OwnerRoots, *, strict: bool = False) -> Owner | None:
    """The numeric owner ``chown`` asks for, or None when there is no ``ChownOpt``."""
    if chown is None:
        return None
    uid = gid = 0
    if chown.user is not None and chown.user.user is not None:
        uid, gid = _resolve_user(chown.user.user, roots.user, strict)
    if chown.group is not None and chown.group.user is not None:
        gid = _resolve_group(chown.group.user, roots.group, strict, gid)
    return Owner(uid, gid)


def _resolve_user(user: pb.NamedUserOpt | int, root: Path | None, strict: bool) -> tuple[int, int]:
    if not isinstance(user, pb.NamedUserOpt):
        return int(user), int(user)
    if root is None:
        raise UserLookupError("invalid missing user mount", PASSWD_PATH)
    entry = lookup_user(root, user.name)
    if entry is None:
        if strict:
            raise UserLookupError(f"unable to find user {user.name}", PASSWD_PATH)
        return 0, 0
    return entry.uid, entry.gid


def _resolve_group(group: pb.NamedUserOpt | int, root: Path | None, strict: bool, user_gid: int) -> int:
    """The gid a group option names; an unknown name (or no group file) keeps the user's
    gid, as BuildKit's ``readUser`` does."""
    if not isinstance(group, pb.NamedUserOpt):
        return int(group)
    if root is None:
        raise UserLookupError("invalid missing group mount", GROUP_PATH)
    entry = lookup_group(root, group.name)
    if entry is None:
        if strict:
            raise UserLookupError(f"unable to find group {group.name}", GROUP_PATH)
        return user_gid
    return entry.gid
