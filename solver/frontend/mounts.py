"""``RUN --mount=...`` values (BuildKit ``instructions/commands_runmount.go``)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Callable

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_ALL_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size", "mode", "uid",
             "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")
_RAM_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")

Expander = Callable[[str], str]


class MountError(ValueError):
    """A ``--mount`` value that BuildKit would reject."""


@dataclass
class MountSpec:
    """One parsed ``--mount``."""

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    size: int = 0
    id: str = ""
    sharing: str = ""
    required: bool = False
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    env: str | None = None


def mount_from(value: str) -> str:
    """The ``from=`` of a mount, read without expansion (for the stage graph)."""
    for field in _fields(value):
        key, sep, val = field.partition("=")
        if sep and key.lower() == "from":
            if "$" in val[:-1]:
                raise MountError(f"'{key.lower()}' doesn't support variable expansion, define alias stage instead")
            return val
    return ""


def parse_mount(value: str, expand: Expander) -> MountSpec:
    """Parse and validate a mount with every value expanded by ``expand``."""
    m = MountSpec()
    ro_auto = True
    for field in _fields(value):
        key, sep, val = field.partition("=")
        key = key.lower()
        if not sep:
            ro_auto = _bare_key(m, key, field) and ro_auto
            continue
        ro_auto = _keyed(m, key, expand(val), field) and ro_auto
    _validate(m)
    if ro_auto:
        m.readonly = m.type not in ("cache", "tmpfs")
    _validate_secret(m)
    return m


def _fields(value: str) -> list[str]:
    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as err:
        raise MountError(f"failed to parse csv mounts: {err}") from None
    return rows[0] if rows else []


def _bare_key(m: MountSpec, key: str, field: str) -> bool:
    """Apply a key without value; return False when it fixes read-only/read-write."""
    if key in ("readonly", "ro"):
        m.readonly = True
        return False
    if key in ("readwrite", "rw"):
        m.readonly = False
        return False
    if key == "required":
        if m.type not in ("secret", "ssh"):
            raise MountError(f"unexpected key '{key}' for mount type '{m.type}'")
        m.required = True
        return True
    raise MountError(f"invalid field '{field}' must be a key=value pair")


def _keyed(m: MountSpec, key: str, value: str, field: str) -> bool:
    if key == "type":
        lowered = value.lower()
        if lowered not in MOUNT_TYPES:
            raise MountError(f'unsupported mount type "{value}"')
        m.type = lowered
    elif key == "from":
        m.from_ = value
    elif key in ("source", "src"):
        m.source = value
    elif key in ("target", "dst", "destination"):
        m.target = value
    elif key in ("readonly", "ro", "readwrite", "rw"):
        flag = _go_bool(value, key)
        m.readonly = flag if key in ("readonly", "ro") else not flag
        return False
    elif key == "required":
        if m.type not in ("secret", "ssh"):
            raise MountError(f"unexpected key '{key}' for mount type '{m.type}'")
        m.required = _go_bool(value, key)
    elif key == "size":
        if m.type != "tmpfs":
            raise MountError(f"unexpected key '{key}' for mount type '{m.type}'")
        m.size = ram_in_bytes(value, key)
    elif key == "id":
        m.id = value
    elif key == "sharing":
        if value.lower() not in SHARING_MODES:
            raise MountError(f'unsupported sharing value "{value}"')
        m.sharing = value.lower()
    elif key in ("mode", "uid", "gid"):
        setattr(m, key, _uint(value, key, 8 if key == "mode" else 10))
    elif key == "env":
        m.env = value
    else:
        raise MountError(f"unexpected key '{key}' in '{field}'")
    return True


def _go_bool(value: str, key: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise MountError(f"invalid value for {key}: {value}")


def _uint(value: str, key: str, base: int) -> int:
    try:
        number = int(value, base)
    except ValueError:
        number = -1
    if number < 0 or number > 0xFFFFFFFF or not value.isascii() or "_" in value or value.strip() != value:
        raise MountError(f"invalid value {value} for {key}")
    return number


def ram_in_bytes(value: str, key: str = "size") -> int:
    """docker/go-units ``RAMInBytes``: ``64m``, ``1GiB``, ``512``."""
    match = _RAM_RE.match(value)
    if not match:
        raise MountError(f"invalid value for {key}: {value}")
    try:
        number = float(match.group(1))
    except ValueError:
        raise MountError(f"invalid value for {key}: {value}") from None
    power = "kmgtp".find(match.group(2).lower()) + 1 if match.group(2) else 0
    return int(number * (1024 ** power))


def _validate(m: MountSpec) -> None:
    if m.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(m, name) is not None:
                raise MountError(f'{name} not allowed for "{m.type}" type mounts')


def _validate_secret(m: MountSpec) -> None:
    if m.type == "secret":
        if m.from_:
            raise MountError("secret mount should not have a from")
        if m.sharing:
            raise MountError("secret mount should not define sharing")
        if not m.source and not m.target and not m.id:
            raise MountError("invalid secret mount. one of source, target required")
        if m.source and m.id:
            raise MountError("both source and id can't be set")
    if m.sharing and m.type != "cache":
        raise MountError(f"invalid cache sharing set for {m.type} mount")
