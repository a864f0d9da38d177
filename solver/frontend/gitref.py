"""Recognise git sources of ADD (a subset of BuildKit's ``dfgitutil.ParseGitRef``).

Supported: ``https://host/path.git``, ``http://…/.git``, ``git://…`` and ``ssh://…`` URLs,
with an optional ``#ref[:subdir]`` fragment. ``git@host:path`` (scp-like) is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class GitRef:
    remote: str
    ref: str = ""
    subdir: str = ""


def parse_git_ref(src: str) -> GitRef | None:
    """The git source ``src`` names, or None when it is not a git URL."""
    scheme = src.split("://", 1)[0].lower() if "://" in src else ""
    if scheme not in ("http", "https", "git", "ssh"):
        return None
    remote, _, fragment = src.partition("#")
    try:
        path = urlsplit(remote).path
    except ValueError:
        return None
    if scheme in ("http", "https") and not path.endswith(".git"):
        return None
    ref, _, subdir = fragment.partition(":")
    return GitRef(remote, ref, subdir)
