"""Docker image reference normalisation (distribution/reference `ParseNormalizedNamed` + `TagNameOnly`).

`normalize("busybox")` → `docker.io/library/busybox:latest`; a digest is kept and a
name-only reference gets `:latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from solver.errors import LLBookError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
NAME_TOTAL_LENGTH_MAX = 255


class InvalidReferenceError(LLBookError):
    """An image reference that Docker would reject."""


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised image reference."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's `splitDockerDomain`: the first component is a domain only if it looks like one."""
    i = name.find("/")
    if i == -1 or (not any(c in name[:i] for c in ".:") and name[:i] != "localhost"
                   and name[:i].lower() == name[:i]):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_normalized(ref: str) -> Reference:
    """Parse like `reference.ParseNormalizedNamed`."""
    if _HEX64.match(ref):
        raise InvalidReferenceError(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(ref)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReferenceError(f"invalid reference format: repository name ({remote}) must be lowercase")
    match = _REFERENCE.match(f"{domain}/{remainder}")
    if not match:
        raise InvalidReferenceError(f"invalid reference format: {ref!r}")
    name = match.group("name")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReferenceError(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    dom, _, path = name.partition("/")
    return Reference(dom, path, match.group("tag") or "", match.group("digest") or "")


def normalize(ref: str) -> str:
    """Full reference string with `:latest` added to a name-only reference."""
    parsed = parse_normalized(ref)
    if not parsed.tag and not parsed.digest:
        parsed = Reference(parsed.domain, parsed.path, "latest")
    return str(parsed)
