"""Docker image references: parsing, normalisation and the familiar (short) form.

Follows the grammar of `github.com/distribution/reference`:

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path-component ["/" path-component]*
    domain    := host [":" port]

A name without a domain belongs to Docker Hub (`docker.io`), and a one-component Hub
name lives under `library/`. A reference with neither tag nor digest gets `latest`.

    >>> parse("busybox").string
    'docker.io/library/busybox:latest'
    >>> parse("127.0.0.1:5000/app@sha256:" + "a" * 64).domain
    '127.0.0.1:5000'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from solver.errors import LLBookError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_SHA256_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_ANCHORED_ID_RE = re.compile(r"^[0-9a-f]{64}$")


class ReferenceError(LLBookError):
    """An image reference that does not follow the Docker reference grammar."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(f"invalid image reference {ref!r}: {reason}")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: always has a domain; a tag and/or a digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`domain/path`, e.g. `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    @property
    def string(self) -> str:
        """The full normalised form, e.g. `docker.io/library/busybox:latest`."""
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar_name(self) -> str:
        """The short name Docker prints: `busybox`, `user/app`, `127.0.0.1:5000/app`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        if self.path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in self.path[len(OFFICIAL_REPO_PREFIX):]:
            return self.path[len(OFFICIAL_REPO_PREFIX):]
        return self.path

    @property
    def familiar(self) -> str:
        """Familiar name with tag and digest, e.g. `busybox:latest`."""
        text = self.familiar_name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_tag(self, tag: str) -> "Reference":
        if not _TAG_RE.match(tag):
            raise ReferenceError(f"{self.name}:{tag}", f"invalid tag {tag!r}")
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> "Reference":
        if not _DIGEST_RE.match(digest):
            raise ReferenceError(f"{self.name}@{digest}", f"invalid digest {digest!r}")
        return replace(self, digest=digest)

    def __str__(self) -> str:
        return self.string


def _split_domain(name: str) -> tuple[str, str]:
    """Split `name` into (domain, remainder) with Docker's rules for the Hub default."""
    slash = name.find("/")
    first = name[:slash] if slash >= 0 else ""
    is_domain = slash >= 0 and (
        any(c in first for c in ".:") or first == "localhost" or first.lower() != first
    )
    if not is_domain:
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[slash + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _split_tag_digest(ref: str) -> tuple[str, str | None, str | None]:
    name, digest = ref, None
    if "@" in ref:
        name, digest = ref.split("@", 1)
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def parse(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise `ref`.

    With `default_tag`, a reference without tag and digest gets `latest`.
    A bare 64-hex image ID is refused, as Docker does.
    """
    text = ref.strip()
    if not text:
        raise ReferenceError(ref, "empty reference")
    if _ANCHORED_ID_RE.match(text):
        raise ReferenceError(ref, "a 64-hex image ID is not a repository name")
    name, tag, digest = _split_tag_digest(text)
    if tag is not None and not _TAG_RE.match(tag):
        raise ReferenceError(ref, f"invalid tag {tag!r}")
    if digest is not None and not _DIGEST_RE.match(digest):
        raise ReferenceError(ref, f"invalid digest {digest!r}")
    domain, path = _split_domain(name)
    if not _DOMAIN_RE.match(domain):
        raise ReferenceError(ref, f"invalid registry host {domain!r}")
    if not _PATH_RE.match(path):
        raise ReferenceError(ref, f"invalid repository name {path!r} (must be lowercase)")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(ref, f"repository name longer than {NAME_TOTAL_LENGTH_MAX} characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize(ref: str) -> str:
    """`busybox` → `docker.io/library/busybox:latest`."""
    return parse(ref).string


def familiar(ref: str) -> str:
    """`docker.io/library/busybox:latest` → `busybox:latest`."""
    return parse(ref, default_tag=False).familiar


def is_sha256_digest(value: str) -> bool:
    return bool(_SHA256_RE.match(value))


def api_host(domain: str) -> str:
    """The host that serves the distribution API for `domain` (Docker Hub's is special)."""
    return DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
