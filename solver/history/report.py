"""The text of build records as ``llbook history`` and ``%llb history`` show them: ls rows, inspect, diff."""

from __future__ import annotations

import datetime
from typing import Any

from solver.errors import LLBookError
from solver.history.diff import diff
from solver.history.record import CACHED, BuildRecord
from solver.history.store import HistoryStore

LS_HEADERS = ["BUILD ID", "NAME", "STATUS", "CREATED AT", "DURATION", "STEPS"]


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def ls_rows(records: list[BuildRecord]) -> list[list[str]]:
    """ID, NAME, STATUS, CREATED AT, DURATION, STEPS of each record."""
    rows = []
    for r in records:
        steps = [s for s in r.steps if s.kind != "local"]
        cached = sum(1 for s in steps if s.status == CACHED)
        rows.append([r.ref, r.name, r.status, when(r.started), secs(r.duration), f"{cached}/{len(steps)} cached"])
    return rows


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [headers, *rows])


def inspect_lines(record: BuildRecord) -> list[str]:
    """``docker buildx history inspect``'s fields, "Build Steps: N/M (x% cached)" and the materials."""
    steps = [s for s in record.steps if s.kind != "local"]
    cached = sum(1 for s in steps if s.status == CACHED)
    pct = 100 * cached // len(steps) if steps else 0
    lines = [f"Name:           {record.name}", f"Ref:            {record.ref}",
             f"Frontend:       {record.frontend}", f"Context:        {record.context or '-'}",
             f"Target:         {record.target or '-'}", f"Platform:       {record.platform or 'default'}",
             f"Started:        {when(record.started)}", f"Duration:       {secs(record.duration)}",
             f"Status:         {record.status}", f"Build Steps:    {cached}/{len(steps)} ({pct}% cached)"]
    lines += [f"{name + ':':15} {value}" for name, value in record.config.items() if value]
    if record.result_digest:
        lines.append(f"Result:         {record.result_digest}")
    if record.error:
        lines += ["", "Error:", f"  {record.error}"]
    if record.args:
        lines += ["", "Build Args:"] + [f"  {k}={v}" for k, v in sorted(record.args.items())]
    if record.secrets:
        lines += ["", "Secrets (ids only):"] + [f"  {s}" for s in record.secrets]
    if record.ssh:
        lines += ["", "SSH (ids only):"] + [f"  {s}" for s in record.ssh]
    materials = sorted({s.key_inputs.get("plaintext", {}).get("source", "") for s in record.steps} - {""})
    lines += ["", "Materials:"] + [f"  {m}" for m in materials]
    if record.exports:
        lines += ["", "Exports:"] + [f"  {e.get('type')} {e.get('dest') or ''} {e.get('manifest') or ''}".rstrip()
                                     for e in record.exports]
    lines += ["", "Steps:"]
    lines += [f"  {s.status.upper():9} {secs(s.duration):>7}  {s.name}" for s in record.steps]
    return lines


def diff_lines(store: HistoryStore | Any, refs: list[str]) -> list[str]:
    """The diff of two records (``^1`` and ``^0`` when no refs are given)."""
    if len(refs) not in (0, 2):
        raise LLBookError("history diff takes no refs (the last two builds) or two: A B")
    old_ref, new_ref = refs or ["^1", "^0"]
    return diff(store.resolve(old_ref), store.resolve(new_ref)).lines()
