"""``%llb history``: the build records of the session's cells (solver.history), as ``llbook history`` shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from solver.history import HistoryError, HistoryStore
from solver.history.report import LS_HEADERS, diff_lines, inspect_lines, ls_rows


@dataclass(frozen=True)
class HistoryTable:
    headers: list[str]
    rows: list[list[str]]
    title: str


def store_of(session: Any) -> HistoryStore:
    """The history of the session's cache directory (where ``llbook history --cache-dir`` reads)."""
    return HistoryStore.of(session.cache_dir)


def _records(session: Any, everything: bool) -> list[Any]:
    return [r for r in store_of(session).records() if everything or r.session == session.session_id]


def _ref(session: Any, ref: str, everything: bool) -> str:
    """An id (prefix) as it is; ``^N`` counts the session's builds (every build with ``everything``)."""
    if not ref.startswith("^"):
        return ref
    records = _records(session, everything)
    try:
        offset = int(ref[1:] or "0")
    except ValueError:
        raise HistoryError(f"history ref {ref!r}: expected ^N with a number N") from None
    if not 0 <= offset < len(records):
        whose = "" if everything else " of this session"
        raise HistoryError(f"history ref {ref}: there are {len(records)} builds{whose} (see %llb history)")
    return records[offset].ref


def ls_table(session: Any, everything: bool = False) -> HistoryTable:
    """The session's builds, latest first (``everything``: every record in the cache dir)."""
    whose = "all builds in" if everything else f"builds of session {session.session_id} in"
    return HistoryTable(LS_HEADERS, ls_rows(_records(session, everything)), f"{whose} {store_of(session).root}")


def inspect_text(session: Any, ref: str = "^0", everything: bool = False) -> str:
    return "\n".join(inspect_lines(store_of(session).resolve(_ref(session, ref, everything))))


def diff_text(session: Any, refs: list[str], everything: bool = False) -> str:
    """``llbook history diff A B`` over the same store, the same lines; no refs: the
    session's last two builds (``^1 ^0``)."""
    refs = refs if len(refs) != 0 else ["^1", "^0"]
    return "\n".join(diff_lines(store_of(session), [_ref(session, r, everything) for r in refs]))
