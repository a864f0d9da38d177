"""Docker image references: the one parser (distribution/reference `ParseNormalizedNamed`,
`TagNameOnly`, `FamiliarString`), used by `llb` and, through `solver.source.reference`,
by the registry client and the exporters.

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path-component ["/" path-component]*
    domain    := host [":" port]

A name without a domain belongs to Docker Hub (`docker.io`), and a one-component Hub
name lives under `library/`. `normalize("busybox")` → `docker.io/library/busybox:latest`;
a digest is kept and a name-only reference gets `:latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from solver.errors import LLBookError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*))"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_TAG_RE = re.compile(rf"^{_TAG}$")
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


class InvalidReferenceError(LLBookError):
    """An image reference that Docker would reject: `ref` is the text, `reason` Docker's words."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Reference:
    """A parsed, normalised image reference: a domain (empty only where Go's parser finds none,
    e.g. `a_b/c`), a path, a tag and/or a digest or neither."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`domain/path`, e.g. `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def string(self) -> str:
        """The full normalised form, e.g. `docker.io/library/busybox:latest`."""
        return self.name + self._suffix()

    @property
    def object(self) -> str:
        """What to ask a registry for: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar_name(self) -> str:
        """The short name Docker prints: `busybox`, `user/app`, `127.0.0.1:5000/app`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        short = self.path.removeprefix(OFFICIAL_PREFIX)
        return short if short != self.path and "/" not in short else self.path

    @property
    def familiar(self) -> str:
        """Familiar name with tag and digest, e.g. `busybox:latest`."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"{self.name}:{tag}", f"invalid tag format: {tag!r}")
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        if not _DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"{self.name}@{digest}", f"invalid digest format: {digest!r}")
        return replace(self, digest=digest)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.string


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
    """Parse like `reference.ParseNormalizedNamed` (no default tag)."""
    if _HEX64.match(ref):
        raise InvalidReferenceError(
            ref, f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(ref)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReferenceError(ref, f"invalid reference format: repository name ({remote}) must be lowercase")
    match = _REFERENCE.match(f"{domain}/{remainder}")
    if not match:
        raise InvalidReferenceError(ref, f"invalid reference format: {ref!r}")
    name = match.group("name")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReferenceError(ref, f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    # as Go's anchoredNameRegexp: a first component that is no valid host (`a_b/c`) is
    # part of the path, and the reference has no domain
    return Reference(match.group("domain") or "", match.group("path"), match.group("tag"), match.group("digest"))


def parse(ref: str, *, default_tag: bool = True) -> Reference:
    """`parse_normalized`, then (with `default_tag`) `TagNameOnly`: `latest` when there is neither tag nor digest."""
    parsed = parse_normalized(ref)
    if default_tag and not parsed.tag and not parsed.digest:
        parsed = replace(parsed, tag=DEFAULT_TAG)
    return parsed


def normalize(ref: str) -> str:
    """Full reference string with `:latest` added to a name-only reference."""
    return parse(ref).string


def familiar(ref: str) -> str:
    """`docker.io/library/busybox:latest` → `busybox:latest`."""
    return parse_normalized(ref).familiar
