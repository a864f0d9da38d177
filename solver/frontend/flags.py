"""Builder flags of an instruction (``--name=value``), as BuildKit's ``BFlags`` parses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class FlagType(Enum):
    BOOL = "bool"
    STRING = "string"
    STRINGS = "strings"


class FlagError(ValueError):
    """A flag that is unknown, repeated or has a bad value."""


@dataclass
class ParsedFlags:
    """Values of the flags that were given; defaults for the others."""

    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def string(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)

    def boolean(self, name: str) -> bool:
        return self.values.get(name) == "true"

    def strings(self, name: str) -> list[str]:
        return list(self.lists.get(name, []))

    def given(self, name: str) -> bool:
        return name in self.used


def parse_flags(args: list[str], spec: dict[str, FlagType]) -> ParsedFlags:
    """Parse ``args`` (e.g. ``["--from=build", "--link"]``) against ``spec``."""
    out = ParsedFlags()
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("--"):
            raise FlagError(f"arg should start with -- : {arg}")
        flag_name, has_value, value = arg.partition("=")
        name = flag_name[2:]
        kind = spec.get(name)
        if kind is None:
            raise FlagError(f"unknown flag: {flag_name}")
        if name in out.used and kind is not FlagType.STRINGS:
            raise FlagError(f"duplicate flag specified: {flag_name}")
        out.used.add(name)
        _store(out, name, flag_name, kind, value, bool(has_value))
    return out


def _store(out: ParsedFlags, name: str, flag_name: str, kind: FlagType, value: str, has_value: bool) -> None:
    if kind is FlagType.BOOL:
        if has_value and value == "":
            raise FlagError(f"missing a value on flag: {flag_name}")
        lowered = value.lower()
        if lowered not in ("true", "", "false"):
            raise FlagError(f"expecting boolean value for flag {flag_name}, not: {value}")
        out.values[name] = "false" if lowered == "false" else "true"
        return
    if not has_value:
        raise FlagError(f"missing a value on flag: {flag_name}")
    if kind is FlagType.STRING:
        out.values[name] = value
    else:
        out.lists.setdefault(name, []).append(value)
