"""What the checks need from the raw Dockerfile lines: the comments above each instruction and
continuations broken by empty lines (BuildKit's ``parser.Parse`` keeps both while it reads)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from solver.frontend.parser import ParsedDockerfile, is_comment, split_physical_lines
from solver.frontend.textutil import lstrip_go_space


@dataclass(frozen=True)
class EmptyContinuation:
    """An instruction whose continuation had an empty line; ``line`` is where the instruction's text ends."""

    start_line: int
    line: int


def _continues(line: str, escape: str) -> bool:
    e = re.escape(escape)
    return re.search(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$", line) is not None


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n") if line.endswith("\n") else line


def comments_before(text: str, parsed: ParsedDockerfile) -> dict[int, list[str]]:
    """Start line → the comments read since the previous instruction (``Node.PrevComment``).

    An empty ``#`` line forgets the comments above it; parser directives are not comments."""
    lines = split_physical_lines(text.removeprefix("\ufeff"))
    inside: dict[int, int] = {node.start_line: node.end_line for node in parsed.nodes}
    directive_lines = len(parsed.directives)
    out: dict[int, list[str]] = {}
    comments: list[str] = []
    number = 1
    while number <= len(lines):
        if number in inside:
            out[number] = comments
            comments = []
            number = inside[number] + 1
            continue
        raw = _trim_newline(lines[number - 1])
        if is_comment(raw) and number > directive_lines:
            comment = raw[1:].strip()
            comments = [] if not comment else [*comments, comment]
        number += 1
    return out


def empty_continuations(text: str, parsed: ParsedDockerfile) -> list[EmptyContinuation]:
    """Instructions whose continuation lines include an empty one (a warning, an error in future BuildKit)."""
    lines = [_trim_newline(line) for line in split_physical_lines(text.removeprefix("\ufeff"))]
    found: list[EmptyContinuation] = []
    for node in parsed.nodes:
        index = node.start_line - 1
        if not _continues(lstrip_go_space(lines[index]), parsed.escape):
            continue
        empty = False
        while index + 1 < len(lines):
            index += 1
            line = lines[index]
            if is_comment(line):
                continue
            if not lstrip_go_space(line):
                empty = True
                continue
            if not _continues(line, parsed.escape):
                break
        if empty:
            found.append(EmptyContinuation(node.start_line, index + 1))
    return found
