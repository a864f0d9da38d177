"""Git remote URLs as BuildKit's ``util/gitutil.ParseURL`` reads them (``http``, ``https``,
``ssh`` and ``git`` URLs, and scp-like ``user@host:path``, an ssh remote), and git refs as
``dfgitutil.ParseGitRef`` (``parse_git_ref``).

Git refs: ``https://host/path.git`` and ``http://…/x.git`` (the ``.git`` suffix is what
tells them from an HTTP download), ``git://…`` and ``ssh://…`` URLs and scp-like
``git@host:path``, each with an optional ``#ref[:subdir]`` fragment and BuildKit's query
options (``?ref=``, ``tag=``, ``branch=``, ``subdir=``, ``checksum=``/``commit=``,
``keep-git-dir``, ``mtime``). ``github.com/org/repo`` (no scheme) is one only for build
contexts.
"""

from __future__ import annotations

import functools
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


_GO_HOST_KEY_ORDER = ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-dss",
                      "ssh-ed25519")


@functools.lru_cache(maxsize=64)  # one scan per host and process (a lowering runs twice)
def ssh_keyscan(host: str, timeout: int = 3) -> str:
    """The host key line Go's ``sshutil.SSHKeyScan`` gets for ``host[:port]`` (best effort,
    "" when it does not answer): the key of the type Go's ssh client prefers, as
    ``host type base64`` (``[host]:port …`` off port 22)."""
    import shutil
    import subprocess
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    name = name or host
    if shutil.which("ssh-keyscan") is None or not re.match(r"^[A-Za-z0-9.-]+\Z", name):
        return ""
    argv = ["ssh-keyscan", "-T", str(timeout), "-t", "ecdsa,rsa,dsa,ed25519"]
    if port and port != "22":
        argv += ["-p", port]
    try:
        out = subprocess.run([*argv, name], capture_output=True, text=True, timeout=timeout + 5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    keys = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            keys.setdefault(parts[1], " ".join(parts[:3]))
    return next((keys[t] for t in _GO_HOST_KEY_ORDER if t in keys), "")


def is_git_transport(text: str) -> bool:
    """gitutil's ``IsGitTransport``: a supported scheme, or an scp-like ssh remote."""
    proto = _PROTO.match(text)
    if proto:
        return proto.group(1).lower() in SUPPORTED
    return _SCP.match(text) is not None


class GitRefError(LLBookError):
    """A git URL whose options cannot be read (a conflicting or unknown query)."""


@dataclass(frozen=True)
class GitRef:
    remote: str
    ref: str = ""
    subdir: str = ""
    checksum: str = ""
    keep_git_dir: bool | None = None
    indistinguishable_from_local: bool = False  # github.com/org/repo (deprecated, contexts only)
    mtime: str = ""  # "checkout" or "commit" (build contexts)
    submodules: bool | None = None  # ?submodules=false skips them
    fetch_by_commit: bool = False  # ?fetch-by-commit: trust the checksum as the commit


def parse_git_ref(src: str, *, for_context: bool = False) -> GitRef | None:
    """The git source ``src`` names, or None when it is not a git URL (for ADD, a bare
    ``github.com/…`` is a local path; ``for_context`` accepts it as docker build does).
    Raises ``GitRefError`` for a git URL with bad query options."""
    if src.startswith("./") or src.startswith("../"):
        return None
    bare_github = src.startswith("github.com/")
    try:
        url = parse_url("https://" + src if bare_github else src)
    except UnknownProtocol:
        return None
    except LLBookError:
        return None
    if url.scheme in ("http", "https") and not url.path.endswith(".git") and not bare_github:
        return None
    if bare_github and not for_context:
        return None
    remote = url.remote.split("://", 1)[1] if bare_github else url.remote
    ref = _apply_query(GitRef(remote, url.ref, url.subdir, indistinguishable_from_local=bare_github), url.query)
    return ref


def _bool(key: str, values: tuple[str, ...]) -> bool:
    if not values or values[0] == "":
        return True
    lowered = values[0].lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise GitRefError(f"invalid {key} value: {values[0]!r}")


def _apply_query(ref: GitRef, query: tuple[tuple[str, tuple[str, ...]], ...]) -> GitRef:
    """BuildKit's ``loadQuery``: the URL's query options over its fragment."""
    fields = {"ref": ref.ref, "subdir": ref.subdir, "checksum": ref.checksum, "keep_git_dir": ref.keep_git_dir,
              "mtime": "", "submodules": None, "fetch_by_commit": False}
    tag = branch = ""
    for key, values in query:
        if len(values) > 1:
            raise GitRefError(f"query {key!r} has multiple values")
        if (not values or values[0] == "") and key not in ("submodules", "keep-git-dir", "fetch-by-commit"):
            raise GitRefError(f"query {key!r} has no value")
        value = values[0] if values else ""
        if key in ("ref", "subdir"):
            if fields[key] and fields[key] != value:
                raise GitRefError(f"{key} conflicts: {fields[key]!r} vs {value!r}")
            fields[key] = value
        elif key in ("checksum", "commit"):
            fields["checksum"] = value
        elif key == "tag":
            tag = value
        elif key == "branch":
            branch = value
        elif key == "keep-git-dir":
            fields["keep_git_dir"] = _bool(key, values)
        elif key == "submodules":
            fields["submodules"] = _bool(key, values)
        elif key == "fetch-by-commit":
            fields["fetch_by_commit"] = _bool(key, values)
        elif key == "mtime":
            if value not in ("checkout", "commit"):
                raise GitRefError(f'invalid mtime value: {value!r} (must be "checkout" or "commit")')
            fields["mtime"] = value
        else:
            raise GitRefError(f"unexpected query {key!r}")
    for value, prefix in ((tag, "refs/tags/"), (branch, "refs/heads/")):
        if not value:
            continue
        if prefix == "refs/heads/" and tag:
            raise GitRefError("branch conflicts with tag")
        full = value if value.startswith(prefix) else prefix + value
        if fields["ref"] and fields["ref"] != full:
            raise GitRefError(f"ref conflicts: {fields['ref']!r} vs {full!r}")
        fields["ref"] = full
    return GitRef(ref.remote, str(fields["ref"]), str(fields["subdir"]), str(fields["checksum"]),
                  fields["keep_git_dir"], ref.indistinguishable_from_local,  # type: ignore[arg-type]
                  str(fields["mtime"]), fields["submodules"], bool(fields["fetch_by_commit"]))  # type: ignore[arg-type]
