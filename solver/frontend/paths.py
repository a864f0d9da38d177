"""Path rules of the Dockerfile frontend (BuildKit ``util/system`` path helpers, Linux only)."""

from __future__ import annotations

from solver.llb import gopath


base = gopath.base  # Go's path.Base


def normalize_path(parent: str, new: str, keep_slash: bool) -> str:
    """``system.NormalizePath``: ``new`` against ``parent``, keeping a trailing slash on request."""
    if not new:
        new = "."
    joined = gopath.clean(new) if gopath.is_abs(new) else gopath.join(parent or "/", new)
    if keep_slash and (new.endswith("/") or new.endswith("/.")) and not joined.endswith("/"):
        joined += "/"
    return joined


def normalize_workdir(current: str, workdir: str) -> str:
    """``system.NormalizeWorkdir``: an absolute, clean working directory."""
    if not workdir:
        raise ValueError("cannot normalize empty path")
    if not gopath.is_abs(workdir):
        return gopath.join("/", current or "/", workdir)
    return gopath.clean(workdir)


def docker_workdir(current: str, workdir: str) -> str:
    """WORKDIR as docker build (dockerd 20.10's BuildKit 0.8 ``dispatchWorkdir``) keeps it:
    an absolute path as written (``/app/`` stays ``/app/`` in the config, the RUN cwd and
    history), a relative one joined to the current directory and cleaned. BuildKit 686a84b4
    (dockerfile 1.6) cleans absolute paths too (``normalize_workdir``)."""
    if not workdir:
        raise ValueError("cannot normalize empty path")
    if gopath.is_abs(workdir):
        return workdir
    return gopath.join("/", current or "/", workdir)


def relative_to_workdir(cwd: str, path: str) -> str:
    """A COPY destination resolved against the working directory, as docker build (BuildKit
    0.8's ``dispatchCopyFileOp``): joined and cleaned, a directory when it is ``.``, empty or
    ends with ``/``. (``x/.`` names the path ``x``; since dockerfile 1.6 it is a directory.)"""
    dest = gopath.join("/", path if gopath.is_abs(path) else gopath.join(cwd or "/", path))
    if (path in (".", "") or path.endswith("/")) and not dest.endswith("/"):
        dest += "/"
    return dest


def contains_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        if name[i] in "*?[":
            return True
        if name[i] == "\\":
            i += 1
        i += 1
    return False
