"""Docker image references for the registry client and the exporters.

The parser is `solver.llb.reference` (one implementation, shared with LLB's image
sources); this module re-exports it under the names `source` has always used and adds
what only a registry client needs: blanks around a reference are ignored, a reference must
name a registry host (LLB keeps Go's `a_b/c`, a name without a domain), and `api_host`.

    >>> parse("busybox").string
    'docker.io/library/busybox:latest'
    >>> parse("127.0.0.1:5000/app@sha256:" + "a" * 64).domain
    '127.0.0.1:5000'
"""

from __future__ import annotations

from solver.llb import reference as _llb
from solver.llb.reference import (
    DEFAULT_DOMAIN, DEFAULT_TAG, NAME_TOTAL_LENGTH_MAX, InvalidReferenceError, Reference,
)

__all__ = [
    "DEFAULT_DOMAIN", "DEFAULT_TAG", "DOCKER_HUB_API_HOST", "LEGACY_DEFAULT_DOMAIN", "NAME_TOTAL_LENGTH_MAX",
    "OFFICIAL_REPO_PREFIX", "InvalidReferenceError", "Reference", "ReferenceError", "api_host", "familiar",
    "normalize", "parse",
]

DOCKER_HUB_API_HOST = "registry-1.docker.io"
LEGACY_DEFAULT_DOMAIN = _llb.LEGACY_DOMAIN
OFFICIAL_REPO_PREFIX = _llb.OFFICIAL_PREFIX

#: The error `parse` raises; the same class as `solver.llb.reference.InvalidReferenceError`.
ReferenceError = InvalidReferenceError  # noqa: A001 (the name callers catch)


def parse(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise `ref` (blanks around it ignored).

    With `default_tag`, a reference without tag and digest gets `latest`.
    A bare 64-hex image ID is refused, as Docker does.
    """
    parsed = _llb.parse(ref.strip(), default_tag=default_tag)
    if not parsed.domain:
        raise ReferenceError(ref, f"invalid registry host {parsed.path.split('/', 1)[0]!r}")
    return parsed


def normalize(ref: str) -> str:
    """`busybox` → `docker.io/library/busybox:latest`."""
    return parse(ref).string


def familiar(ref: str) -> str:
    """`docker.io/library/busybox:latest` → `busybox:latest`."""
    return parse(ref, default_tag=False).familiar


def api_host(domain: str) -> str:
    """The host that serves the distribution API for `domain` (Docker Hub's is special)."""
    return DOCKER_HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
