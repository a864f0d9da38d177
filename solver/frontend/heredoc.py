"""Heredocs in RUN/COPY/ADD (BuildKit ``parser.ParseHeredoc`` and friends)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from solver.frontend.shell_words import Lexer, WordError

# Go's regexp: \s is [\t\n\f\r ], $ is end of text.
_HEREDOC_RE = re.compile(r"^([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


@dataclass(frozen=True)
class Heredoc:
    """One ``<<NAME`` document: its terminator, options and body."""

    name: str
    file_descriptor: int = 0
    expand: bool = True  # False when any part of the delimiter word is quoted
    chomp: bool = False  # "<<-": leading tabs are removed
    content: str = ""


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word introduces, or None. Raises ValueError on a malformed word."""
    match = _HEREDOC_RE.match(word)
    if not match:
        return None
    fd = int(match.group(1)) if match.group(1) else 0
    chomp = match.group(2) == "-"
    rest = match.group(3)
    if not rest:
        return None
    try:
        words = Lexer(skip_unset_env=True).process_words(rest, {})
        if len(words) != 1:
            return None
        raw = Lexer(skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    except WordError as err:
        raise ValueError(str(err)) from None
    if len(raw) != len(words):
        raise ValueError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    expand = _quote_count(words[0]) == _quote_count(raw[0])
    return Heredoc(name=words[0], file_descriptor=fd, expand=expand, chomp=chomp)


def _quote_count(word: str) -> int:
    return word.count("'") + word.count('"')


def heredocs_from_line(line: str) -> list[Heredoc]:
    """Every heredoc introduced on an instruction line, in order."""
    lexer = Lexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lexer.process_words(line, {})
    except WordError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs


def read_heredoc_bodies(lines: list[str], pos: int, docs: list[Heredoc]) -> tuple[list[Heredoc] | None, int]:
    """Read the bodies of ``docs`` from physical line ``pos`` on.

    Returns (documents with content, index of the last line consumed), or (None, index)
    when a terminator is missing.
    """
    out: list[Heredoc] = []
    last = pos - 1
    for doc in docs:
        body: list[str] = []
        terminated = False
        while last + 1 < len(lines):
            last += 1
            line = lines[last]
            candidate = line.rstrip("\r\n")
            if doc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == doc.name:
                terminated = True
                break
            body.append(line)
        if not terminated:
            return None, last
        out.append(replace(doc, content="".join(body)))
    return out, last


def chomp_content(content: str) -> str:
    """Remove leading tabs from every line (``ChompHeredocContent``)."""
    return _LEADING_TABS.sub("", content)
