"""The lint subrequest's ``result.json`` (BuildKit's ``frontend/subrequests/lint.LintResults``),
which ``buildx build --call=check,format=json`` prints as it is.

Go's ``encoding/json`` of the protobuf structs: zero fields with ``omitempty`` are left out
(``sourceIndex`` 0, a character 0), an empty warning list is ``null``, ``data`` is base64.
The source's ``definition`` (the LLB of the daemon's local Dockerfile source) is left out:
there is no daemon source here."""

from __future__ import annotations

import base64
from pathlib import PurePath
from typing import Any

from solver.frontend.checks.checker import CheckResult
from solver.frontend.checks.linter import CheckWarning
from solver.frontend.subrequests import to_json


def _position(line: int) -> dict[str, int]:
    return {"line": line} if line else {}


def _location(start: int, end: int) -> dict[str, Any]:
    """``pb.Location`` with source index 0 (omitted) and one range, none without a line."""
    if start <= 0:
        return {}
    return {"ranges": [{"start": _position(start), "end": _position(end or start)}]}


def _warning(warning: CheckWarning) -> dict[str, Any]:
    out: dict[str, Any] = {"ruleName": warning.rule}
    if warning.description:
        out["description"] = warning.description
    if warning.url:
        out["url"] = warning.url
    if warning.message:
        out["detail"] = warning.message
    out["location"] = _location(warning.start_line, warning.end_line)
    return out


def lint_results(result: CheckResult) -> dict[str, Any]:
    """``LintResults``: warnings in the order the frontend found them, the one source, the build error."""
    source = {"filename": PurePath(result.filename).name or "Dockerfile",
              "data": base64.b64encode(result.source.encode("utf-8", "surrogateescape")).decode(),
              "language": "Dockerfile"}
    out: dict[str, Any] = {"warnings": [_warning(w) for w in result.warnings] or None, "sources": [source]}
    if result.error is not None:
        line = result.error.line or 0
        out["buildError"] = {"message": result.error.message, "location": _location(line, line)}
    return out


def lint_json(result: CheckResult) -> str:
    """``json.MarshalIndent(results, "", "  ")``, as the frontend puts it in ``result.json``."""
    return to_json(lint_results(result))
