"""Git remote URLs as BuildKit's ``util/gitutil.ParseURL`` reads them: ``http``, ``https``,
``ssh`` and ``git`` URLs, and scp-like ``user@host:path`` (an ssh remote)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from solver.errors import LLBookError

SUPPORTED = ("http", "https", "ssh", "git")
_PROTO = re.compile(r"^([a-zA-Z0-9]+)://")
_SCP = re.compile(r"^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$", re.S)


class UnknownProtocol(LLBookError):
    """Not a URL of a git transport (gitutil's ``ErrUnknownProtocol``)."""


@dataclass(frozen=True)
class GitURL:
    """A parsed remote: what git fetches (``remote``) and BuildKit's fragment options."""

    scheme: str
    host: str  # with the port, without user info
    path: str
    remote: str  # the URL without fragment and query
    ref: str = ""
    subdir: str = ""
    has_fragment: bool = False
    query: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _opts(fragment: str) -> tuple[str, str]:
    ref, _, subdir = fragment.partition(":")
    subdir = ("/" + subdir).rstrip("/")
    parts = [p for p in subdir.split("/") if p not in ("", ".")]
    out: list[str] = []
    for p in parts:  # path.Join("/", subdir) with ".." resolved at the root
        if p == "..":
            if out:
                out.pop()
        else:
            out.append(p)
    return ref, "/".join(out)


def _query(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    values = parse_qs(raw, keep_blank_values=True)
    return tuple((k, tuple(v)) for k, v in values.items())


def parse_url(text: str) -> GitURL:
    """``text`` as a git remote; raises ``UnknownProtocol`` (no scheme, not scp-like) or
    ``LLBookError`` (a scheme git does not speak, a malformed URL)."""
    proto = _PROTO.match(text)
    if proto:
        scheme = proto.group(1).lower()
        if scheme not in SUPPORTED:
            raise LLBookError(f"invalid protocol: {scheme}")
        try:
            parts = urlsplit(text)
            _ = parts.port
        except ValueError as error:
            raise LLBookError(f"invalid git URL {text!r}: {error}") from None
        ref, subdir = _opts(parts.fragment)
        remote = urlunsplit(parts._replace(query="", fragment=""))
        return GitURL(scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, remote, ref, subdir,
                      bool(parts.fragment), _query(parts.query))
    match = _SCP.match(text)
    if match is None:
        raise UnknownProtocol(f"unknown protocol: {text}")
    user, host, path, query, fragment = match.groups()
    ref, subdir = _opts(fragment or "")
    return GitURL("ssh", host, path, f"{user}@{host}:{path}", ref, subdir, bool(fragment), _query(query or ""))


def is_git_transport(text: str) -> bool:
    """gitutil's ``IsGitTransport``: a supported scheme, or an scp-like ssh remote."""
    proto = _PROTO.match(text)
    if proto:
        return proto.group(1).lower() in SUPPORTED
    return _SCP.match(text) is not None
