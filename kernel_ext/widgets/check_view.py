"""A cell's build-check warnings under its progress: rule, message and the cell's offending
lines with the range highlighted, as text (buildx's ``>>>`` excerpt) and as HTML."""

from __future__ import annotations

import html
from collections.abc import Sequence

from kernel_ext.widgets.model_types import CellWarning
from solver.frontend.checks import source_excerpt


_LINE_STYLE = "font-family:monospace;white-space:pre"
_HIT_STYLE = _LINE_STYLE + ";background:#fff8c5;font-weight:bold"  # inline too: nbconvert has no CSS


def _heading(count: int) -> str:
    return "1 warning found:" if count == 1 else f"{count} warnings found:"


def warnings_text(warnings: Sequence[CellWarning]) -> str:
    """"N warnings found:", then each warning with the cell's lines around it."""
    if not warnings:
        return ""
    out = [_heading(len(warnings))]
    for warning in warnings:
        out.append(f" - {warning.short}")
        if warning.url:
            out.append(f"   More info: {warning.url}")
        out.append(source_excerpt(warning.cell_text, warning.cell, warning.line, warning.end_line).rstrip("\n"))
    return "\n".join(out)


def _excerpt_html(warning: CellWarning) -> str:
    lines = warning.cell_text.split("\n")
    first, last = max(1, warning.line - 2), min(len(lines), warning.end_line + 2)
    rows = []
    for number in range(first, last + 1):
        hit = warning.line <= number <= warning.end_line
        cls = "llbook-check-line llbook-check-hit" if hit else "llbook-check-line"
        style = _HIT_STYLE if hit else _LINE_STYLE
        rows.append(f"<div class='{cls}' style='{style}' data-line='{number}'><span class='llbook-check-lineno'>{number}</span> "
                    f"{html.escape(lines[number - 1]) or '&nbsp;'}</div>")
    return "<div class='llbook-check-excerpt'>" + "".join(rows) + "</div>"


def warnings_html(warnings: Sequence[CellWarning]) -> str:
    """The same as ``warnings_text`` as HTML; the offending lines carry ``llbook-check-hit``."""
    if not warnings:
        return ""
    items = []
    for warning in warnings:
        rule = html.escape(warning.rule)
        name = f"<a href='{html.escape(warning.url)}' target='_blank'>{rule}</a>" if warning.url else rule
        items.append(f"<li class='llbook-check' data-rule='{rule}'><b>{name}</b>: {html.escape(warning.message)} "
                     f"<span class='llbook-check-where'>({html.escape(warning.cell)}, line {warning.line})</span>"
                     f"{_excerpt_html(warning)}</li>")
    return (f"<div class='llbook-checks'><div class='llbook-checks-title'>{_heading(len(warnings))}</div>"
            f"<ul>{''.join(items)}</ul></div>")


class CheckReport:
    """``%llb check``: the session's warnings by cell, as text (buildx's check report) and HTML."""

    def __init__(self, warnings: Sequence[CellWarning], error: str = "") -> None:
        self.warnings, self.error = list(warnings), error

    def _count(self) -> str:
        count = len(self.warnings)
        if not count:
            return "Check complete, no warnings found."
        return "Check complete, " + ("1 warning has been found!" if count == 1
                                     else f"{count} warnings have been found!")

    def __repr__(self) -> str:
        out = [self._count()]
        for w in self.warnings:
            out.append(f"\nWARNING: {w.rule}" + (f" - {w.url}" if w.url else "") + f"\n{w.message}")
            out.append(source_excerpt(w.cell_text, w.cell, w.line, w.end_line).rstrip("\n"))
        if self.error:
            out.append("\n" + self.error)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        error = f"<pre class='llbook-export-error'>{html.escape(self.error)}</pre>" if self.error else ""
        return f"<div><b>{html.escape(self._count())}</b>{warnings_html(self.warnings)}{error}</div>"
