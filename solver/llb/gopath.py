"""Go's `path` package (POSIX paths: Clean, Join, Base, Dir, Split), which LLB, the frontend,
the content checksums and the file ops rely on. One implementation for all of them."""

from __future__ import annotations


def clean(p: str) -> str:
    """Lexically shortest equivalent path, exactly as Go's `path.Clean`."""
    if p == "":
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    result = ("/" if rooted else "") + "/".join(out)
    return result or ("/" if rooted else ".")


def join(*parts: str) -> str:
    """Join non-empty parts with "/" and clean, as Go's `path.Join`."""
    joined = "/".join(p for p in parts if p)
    return clean(joined) if joined else ""


def is_abs(p: str) -> bool:
    return p.startswith("/")


def split(p: str) -> tuple[str, str]:
    """Go's `path.Split`: (dir with its trailing slash, file)."""
    i = p.rfind("/")
    return p[: i + 1], p[i + 1:]


def base(p: str) -> str:
    """Go's `path.Base`: the last element ("." for "", "/" for only slashes)."""
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p[p.rfind("/") + 1:]


def dir(p: str) -> str:  # noqa: A001 - Go's name
    """Go's `path.Dir`: all but the last element, cleaned."""
    return clean(split(p)[0])
