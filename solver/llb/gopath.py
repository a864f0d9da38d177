"""Go's `path.Clean` and `path.Join` (POSIX paths), which LLB path handling relies on."""

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
