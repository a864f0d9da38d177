"""What a RUN's raw log bytes look like on a terminal: a small VT100 screen per vertex
(``LogScreen``, through pyte, as BuildKit renders each vertex's log through a vt100
emulator), control sequences stripped for views that cannot draw them (``strip_controls``),
and text cut to a number of terminal columns with ``wcwidth`` (``fit_columns``).
"""

from __future__ import annotations

import codecs
import re

import pyte
import wcwidth

# C0 controls other than tab and newline, and DEL.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def strip_controls(line: str) -> str:
    """One log line as a terminal would leave it, as plain text: ``\r`` overwrites, erase
    and cursor sequences act (through a one-row ``LogScreen``), colours and other escape
    sequences go, other control characters are dropped."""
    if "\r" in line or "\x1b" in line or "\b" in line or "\x9b" in line:
        screen = LogScreen(2 * len(line) + 2, 1)
        screen.feed(line.encode("utf-8", "surrogatepass"))
        return "".join(screen.lines())
    return _CONTROLS.sub("", line)


def columns(text: str) -> int:
    """Terminal columns of ``text`` (wide CJK characters count two, combining marks zero)."""
    width = wcwidth.wcswidth(text)
    return width if width >= 0 else sum(max(wcwidth.wcwidth(ch), 0) for ch in text)


def fit_columns(text: str, width: int, ellipsis: str = "…") -> str:
    """``text`` cut to at most ``width`` terminal columns, the cut marked by ``ellipsis``."""
    if columns(text) <= width:
        return text
    room = max(0, width - columns(ellipsis))
    out: list[str] = []
    used = 0
    for ch in text:
        w = max(wcwidth.wcwidth(ch), 0)
        if used + w > room:
            break
        out.append(ch)
        used += w
    return "".join(out) + ellipsis


def pad_columns(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` columns (``str.ljust`` counts characters)."""
    return text + " " * max(0, width - columns(text))


class LogScreen:
    """The tail of one vertex's log as a terminal shows it.

    Bytes are decoded incrementally (a UTF-8 character split between two chunks stays
    whole) and fed to a pyte screen: ``\\r`` returns to the line start, cursor movement
    and erasing act on the screen, colours and other attributes are dropped, and wide
    characters take two cells. Linefeed also returns the carriage (as a pty's onlcr).
    """

    def __init__(self, columns: int = 160, lines: int = 6) -> None:
        self.screen = pyte.Screen(columns, lines)
        self.screen.set_mode(pyte.modes.LNM)
        self.stream = pyte.Stream(self.screen)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.fed = False

    def feed(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if text:
            self.stream.feed(text)
            self.fed = True

    def lines(self) -> list[str]:
        """The screen's rows down to the cursor's, trailing blanks removed."""
        if not self.fed:
            return []
        rows = [row.rstrip() for row in self.screen.display[: self.screen.cursor.y + 1]]
        while rows and not rows[0]:
            rows.pop(0)
        if rows and not rows[-1] and self.screen.cursor.x == 0:
            rows.pop()  # the line a trailing newline opened
        return rows
