"""Which checks run and whether they fail the build: the ``# check=`` directive, per-instruction
``# check=`` comments and the ``BUILDKIT_DOCKERFILE_CHECK`` build arg (BuildKit's ``ParseLintOptions``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

CHECK_BUILD_ARG = "BUILDKIT_DOCKERFILE_CHECK"
_COMMENT_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVE_NAMES = frozenset({"syntax", "escape", "check"})
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class CheckOptionError(ValueError):
    """A ``check`` value that BuildKit would refuse."""


@dataclass(frozen=True)
class CheckOptions:
    """``skip=…;experimental=…;error=…`` as BuildKit's ``linter.Config``."""

    skip_all: bool = False
    skip: frozenset[str] = field(default_factory=frozenset)
    experimental_all: bool = False
    experimental: frozenset[str] = field(default_factory=frozenset)
    error: bool = False

    def merged(self, other: "CheckOptions") -> "CheckOptions":
        """``WithMergedConfig``: skips and experimental rules add up; ``error`` stays."""
        return CheckOptions(skip_all=self.skip_all or other.skip_all, skip=self.skip | other.skip,
                            experimental_all=self.experimental_all or other.experimental_all,
                            experimental=self.experimental | other.experimental, error=self.error)

    def enabled(self, name: str, *, experimental: bool) -> bool:
        if experimental:
            return self.experimental_all or name in self.experimental
        return not self.skip_all and name not in self.skip


def _rule_list(value: str) -> tuple[bool, frozenset[str]]:
    value = value.strip()
    if value == "all":
        return True, frozenset()
    return False, frozenset(part.strip() for part in value.split(","))


def _go_bool(text: str, part: str) -> bool:
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise CheckOptionError(f'failed to parse check option "{part}": strconv.ParseBool: parsing "{text}": '
                           "invalid syntax")


def parse_check_options(text: str) -> CheckOptions:
    """Parse a ``check`` value such as ``skip=JSONArgsRecommended,StageNameCasing;error=true``."""
    text = text.strip()
    if not text:
        return CheckOptions()
    values: dict[str, object] = {}
    for part in text.split(";", 2):
        key, sep, value = part.partition("=")
        if not sep:
            raise CheckOptionError(f'invalid check option "{part}"')
        key = key.strip()
        if key == "skip":
            values["skip_all"], values["skip"] = _rule_list(value)
        elif key == "experimental":
            values["experimental_all"], values["experimental"] = _rule_list(value)
        elif key == "error":
            values["error"] = _go_bool(value.strip(), part)
        else:
            raise CheckOptionError(f'invalid check option "{key}"')
    return CheckOptions(**values)  # type: ignore[arg-type]


def _first_word(value: str) -> str:
    """BuildKit reads a check value up to its first space, so ``# check=skip=all // why`` works."""
    return value.split(" ", 1)[0]


def directive_options(directives: Mapping[str, str], build_args: Mapping[str, str]) -> CheckOptions:
    """The file's options: the build arg replaces the ``# check=`` directive when given."""
    if CHECK_BUILD_ARG in build_args:
        try:
            return parse_check_options(build_args[CHECK_BUILD_ARG])
        except CheckOptionError as err:
            raise CheckOptionError(f"failed to parse build-arg:{CHECK_BUILD_ARG}: {err}") from None
    try:
        return parse_check_options(_first_word(directives.get("check", "")))
    except CheckOptionError as err:
        raise CheckOptionError(f"failed to parse check options: {err}") from None


def comment_options(comments: Iterable[str]) -> CheckOptions | None:
    """Options from the first ``check=`` comment above an instruction; None when there is none
    or it does not parse (``WithMergedConfigFromComments``)."""
    for comment in comments:
        match = _COMMENT_DIRECTIVE.match(comment.lstrip())
        if not match or match.group(1).lower() != "check":
            continue
        try:
            return parse_check_options(_first_word(match.group(2)))
        except CheckOptionError:
            return None
    return None
