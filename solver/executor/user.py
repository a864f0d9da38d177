"""User and group resolution from a root filesystem's /etc/passwd and /etc/group.

BuildKit's rules (``executor/oci/user.go`` on top of runc's ``user.GetExecUser``):
- "" is root (0:0); "uid:gid" with both numeric is used as is, without reading files;
- a name must be in /etc/passwd, a numeric uid need not be (its gid is then 0);
- "user:group": a group name must be in /etc/group, a numeric gid need not be;
- additional groups are the groups listing the user as a member, only when no group
  was given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from solver.executor.base import UserNotFoundError
from solver.executor.rootpath import resolve_in_root


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = field(default_factory=tuple)
    home: str = "/"


def _read(rootfs: Path, path: str) -> list[list[str]]:
    try:
        text = resolve_in_root(rootfs, path).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def read_passwd(rootfs: Path) -> list[PasswdEntry]:
    out = []
    for row in _read(rootfs, "/etc/passwd"):
        if len(row) >= 4 and _int(row[2]) is not None and _int(row[3]) is not None:
            row += [""] * (7 - len(row))
            out.append(PasswdEntry(row[0], int(row[2]), int(row[3]), row[5] or "/", row[6]))
    return out


def read_group(rootfs: Path) -> list[GroupEntry]:
    out = []
    for row in _read(rootfs, "/etc/group"):
        if len(row) >= 3 and _int(row[2]) is not None:
            members = tuple(m for m in (row[3] if len(row) > 3 else "").split(",") if m)
            out.append(GroupEntry(row[0], int(row[2]), members))
    return out


def _find_user(entries: list[PasswdEntry], spec: str) -> PasswdEntry | None:
    uid = _int(spec)
    for entry in entries:
        if entry.name == spec or (uid is not None and entry.uid == uid):
            return entry
    return None


def resolve_user(rootfs: str | Path, user: str) -> ResolvedUser:
    """Resolve ``user`` (name, uid, uid:gid, name:group...) against ``rootfs``."""
    root = Path(rootfs)
    if not user:
        return ResolvedUser(0, 0, (), _home_of(root, 0))
    user_part, _, group_part = user.partition(":")
    if _int(user_part) is not None and _int(group_part) is not None:
        return ResolvedUser(int(user_part), int(group_part), (), _home_of(root, int(user_part)))
    entry = _find_user(read_passwd(root), user_part)
    if entry is None and _int(user_part) is None:
        raise UserNotFoundError(f"unable to find user {user_part}: no matching entries in passwd file")
    uid = entry.uid if entry else int(user_part)
    gid = entry.gid if entry else 0
    home = entry.home if entry else "/"
    groups = read_group(root)
    if group_part:
        return ResolvedUser(uid, _group_id(groups, group_part), (), home)
    extra: tuple[int, ...] = ()
    if entry is not None:
        extra = tuple(g.gid for g in groups if entry.name in g.members)
    return ResolvedUser(uid, gid, extra, home)


def _group_id(groups: list[GroupEntry], spec: str) -> int:
    gid = _int(spec)
    for group in groups:
        if group.name == spec or (gid is not None and group.gid == gid):
            return group.gid
    if gid is None:
        raise UserNotFoundError(f"unable to find group {spec}: no matching entries in group file")
    return gid


def _home_of(root: Path, uid: int) -> str:
    entry = _find_user(read_passwd(root), str(uid))
    return entry.home if entry else "/"
