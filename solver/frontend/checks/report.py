"""Check results as text and metadata, in the shapes buildx prints and writes them: the
"N warnings found" list after a build, the ``--call=check`` report, source excerpts
(BuildKit's ``errdefs.Source.Print``) and ``buildx.build.warnings`` entries."""

from __future__ import annotations

import base64
from typing import Any

from solver.frontend.checks.checker import CheckResult
from solver.frontend.checks.linter import CheckWarning


def source_excerpt(source: str, filename: str, start: int, end: int) -> str:
    """The lines around ``start``..``end`` with the range marked ``>>>``."""
    lines = source.split("\n")
    if start > len(lines) or start < 1:
        return ""
    end = min(max(end, start), len(lines))
    first, last = start, end
    pad = 4 if end == start else 2
    done = 0
    while done < pad:
        if first > 1:
            first -= 1
            done += 1
        if last != len(lines):
            last += 1
            done += 1
        done += 1
    out = [f"{filename}:{start}", "-" * 20]
    for number in range(first, last + 1):
        marker = ">>>" if start <= number <= end else "   "
        out.append(f" {number:3d} | {marker} {lines[number - 1]}")
    out.append("-" * 20)
    return "\n".join(out) + "\n"


def _warning_block(warning: CheckWarning, source: str) -> str:
    head = f"\nWARNING: {warning.rule}" + (f" - {warning.url}" if warning.url else "")
    return f"{head}\n{warning.message}\n" + source_excerpt(source, warning.filename, warning.start_line,
                                                           warning.end_line)


def format_check_report(result: CheckResult) -> str:
    """What ``--call=check`` prints: a count, each warning with its excerpt, then the error if any."""
    count = len(result.warnings)
    out: list[str] = []
    if count:
        noun = "1 warning has been found!" if count == 1 else f"{count} warnings have been found!"
        out.append(f"Check complete, {noun}\n")
    out.extend(_warning_block(w, result.source) for w in result.warnings)
    if result.error is not None:
        if count:
            out.append("\n")
        out.append(result.error.message + "\n")
        if result.error.line:
            out.append(source_excerpt(result.source, result.error.filename, result.error.line,
                                      result.error.line))
    elif not count:
        out.append("Check complete, no warnings found.\n")
    return "".join(out)


def format_build_warnings(warnings: list[CheckWarning], source: str) -> str:
    """What buildx prints after a build (expanded as with ``--debug``): count, then each warning."""
    if not warnings:
        return ""
    count = "1 warning found" if len(warnings) == 1 else f"{len(warnings)} warnings found"
    out = [f"\n {count}:\n"]
    for warning in warnings:
        out.append(f" - {warning.short}\n{warning.description}\n")
        if warning.url:
            out.append(f"More info: {warning.url}\n")
        out.append(source_excerpt(source, warning.filename, warning.start_line, warning.end_line) + "\n")
    return "".join(out)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def warnings_metadata(warnings: list[CheckWarning], source: str, vertex: str = "") -> list[dict[str, Any]]:
    """``buildx.build.warnings``: client.VertexWarning as JSON (bytes fields in base64)."""
    out: list[dict[str, Any]] = []
    for warning in warnings:
        entry: dict[str, Any] = {"level": 1, "short": _b64(warning.short), "detail": [_b64(warning.description)]}
        if vertex:
            entry = {"vertex": vertex, **entry}
        if warning.url:
            entry["url"] = warning.url
        entry["sourceInfo"] = {"filename": warning.filename, "data": _b64(source), "language": "Dockerfile"}
        entry["range"] = [{"start": {"line": warning.start_line}, "end": {"line": warning.end_line}}]
        out.append(entry)
    return out
