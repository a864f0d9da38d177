"""'Why was this rebuilt?' as data: per cell, each vertex of its last run with the
solver's reasons (what changed, old → new), keyed by vertex digest so the views can link
an entry to its DAG vertex."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from collections.abc import Iterable
from typing import Any

from kernel_ext.widgets.model_types import CellSolve


@dataclass
class WhyReason:
    kind: str
    message: str
    old: str = ""
    new: str = ""
    files: list[str] = field(default_factory=list)


@dataclass
class WhyEntry:
    digest: str
    name: str
    cached: bool
    reasons: list[WhyReason]
    line: int | None = None


@dataclass
class WhyCell:
    cell: str  # "cell 2"
    entries: list[WhyEntry]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _reason(raw: dict[str, Any]) -> WhyReason:
    return WhyReason(kind=str(raw.get("kind", "")), message=str(raw.get("message", raw.get("kind", ""))),
                     old=_text(raw.get("old")), new=_text(raw.get("new")), files=list(raw.get("files", [])))


def why_cell(cell: CellSolve) -> WhyCell:
    """The reasons of one cell's last run (local context vertices left out)."""
    entries = []
    for v in (cell.result.vertices if cell.result else []):
        if v.kind == "local":
            continue
        reasons = [] if v.cached else [_reason(r) for r in v.reasons]
        entries.append(WhyEntry(v.digest, v.name, v.cached, reasons, v.line))
    return WhyCell(cell.filename, entries)


def why_cells(cells: Iterable[CellSolve]) -> list[WhyCell]:
    """The reasons of every cell that was solved."""
    return [why_cell(c) for c in cells if c.result is not None]


def reason_text(reason: WhyReason) -> str:
    return reason.message + (": " + ", ".join(reason.files) if reason.files else "")


def why_text(cells: list[WhyCell]) -> str:
    """Text form, one line per vertex, as ``%llb why`` prints it in a terminal."""
    lines = []
    for cell in cells:
        lines.append(f"{cell.cell}:")
        for e in cell.entries:
            reasons = "; ".join(reason_text(r) for r in e.reasons) or "no reason recorded"
            lines.append(f"  {e.name}: " + ("CACHED" if e.cached else f"rebuilt — {reasons}"))
    return "\n".join(lines)


def why_html(cells: list[WhyCell]) -> str:
    """Static form: one list per cell; rebuilt vertices with their reasons."""
    parts = []
    for cell in cells:
        items = []
        for e in cell.entries:
            if e.cached:
                items.append(f"<li><code>{html.escape(e.name)}</code> — CACHED</li>")
                continue
            reasons = "".join(f"<li>{html.escape(reason_text(r))}</li>" for r in e.reasons) or "<li>no reason recorded</li>"
            items.append(f"<li><code>{html.escape(e.name)}</code> — rebuilt<ul>{reasons}</ul></li>")
        parts.append(f"<div class='llbook-why'><b>{html.escape(cell.cell)}</b><ul>{''.join(items)}</ul></div>")
    return "".join(parts)
