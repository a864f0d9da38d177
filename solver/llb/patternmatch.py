"""Docker's path patterns: moby/patternmatcher and Go's path.Match, as include/exclude selectors mean them.

A faithful port of the Go pieces that decide which paths a pattern selects:

- ``github.com/moby/patternmatcher`` (``PatternMatcher``): patterns with ``*``, ``?``,
  ``[...]``, ``**``, ``\\`` escapes and ``!`` exceptions, evaluated in order so that a
  later pattern overrides an earlier one, and a match on a parent directory also
  matches everything below it;
- Go's ``path.Match`` (``path_match``, ``filepath_match``), which the content checksums
  use for wildcard selectors.

These semantics decide content checksums, hence cache keys, so they live beside the
other Go behaviours that digests depend on (``gopath``). Paths are slash-separated and
relative to the context root.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable

from solver.errors import LLBookError
from solver.llb import gopath

__all__ = [
    "BadPatternError",
    "MatchInfo",
    "Pattern",
    "PatternMatcher",
    "clean_path",
    "contains_wildcards",
    "filepath_match",
    "path_match",
]


class BadPatternError(LLBookError, ValueError):
    """A pattern that Go's ``path.Match`` (or patternmatcher) rejects as malformed."""


# --------------------------------------------------------------------------- Go path


clean_path = gopath.clean  # Go's path.Clean


def contains_wildcards(name: str) -> bool:
    """True when ``name`` has an unescaped ``*``, ``?`` or ``[`` (BuildKit's rule)."""
    i = 0
    while i < len(name):
        ch = name[i]
        if ch in "*?[":
            return True
        if ch == "\\":
            i += 1
        i += 1
    return False


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    """Split off leading stars and the chunk up to the next unbracketed star."""
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: str) -> tuple[str, str]:
    """One possibly escaped character of a class range, and the rest of the chunk."""
    if not chunk or chunk[0] in "-]":
        raise BadPatternError("syntax error in pattern")
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPatternError("syntax error in pattern")
    ch, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPatternError("syntax error in pattern")
    return ch, rest


def _match_class(chunk: str, ch: str | None) -> tuple[bool, str]:
    """Match ``ch`` against the class at the start of ``chunk`` (after '['); return (ok, rest)."""
    negated = False
    if chunk.startswith("^"):
        negated = True
        chunk = chunk[1:]
    matched = False
    n_range = 0
    while True:
        if chunk.startswith("]") and n_range > 0:
            chunk = chunk[1:]
            break
        lo, chunk = _get_esc(chunk)
        hi = lo
        if chunk[0] == "-":
            hi, chunk = _get_esc(chunk[1:])
        if ch is not None and lo <= ch <= hi:
            matched = True
        n_range += 1
    return matched != negated, chunk


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """Go's ``matchChunk``: match ``chunk`` at the start of ``s``; raise on bad syntax."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        head = chunk[0]
        if head == "[":
            ch = None if failed else s[0]
            if not failed:
                s = s[1:]
            ok, chunk = _match_class(chunk[1:], ch)
            if not ok:
                failed = True
        elif head == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPatternError("syntax error in pattern")
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return "", False
    return s, True


def _check_rest(pattern: str) -> None:
    """Raise when what is left of a pattern is malformed (Go checks before returning false)."""
    while pattern:
        _, chunk, pattern = _scan_chunk(pattern)
        _match_chunk(chunk, "")


def path_match(pattern: str, name: str) -> bool:
    """Go's ``path.Match``: shell pattern over a whole slash path; ``*`` never crosses '/'.

    Raises ``BadPatternError`` for malformed patterns, as Go returns ``ErrBadPattern``.
    """
    return _match(pattern, name, check_rest=True)


def filepath_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` on Linux: like ``path_match``, but a pattern is only
    checked as far as matching got (the rest of a failed pattern is not validated)."""
    return _match(pattern, name, check_rest=False)


def _match(pattern: str, name: str, check_rest: bool) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and chunk == "":
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (rest == "" or pattern):
            name = rest
            continue
        if star:
            advanced = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest, ok = _match_chunk(chunk, name[i + 1:])
                if ok:
                    if not pattern and rest:
                        i += 1
                        continue
                    name = rest
                    advanced = True
                    break
                i += 1
            if advanced:
                continue
        if check_rest:
            _check_rest(pattern)
        return False
    return name == ""


# ------------------------------------------------------------------ patternmatcher


class MatchType(Enum):
    """How a compiled pattern is evaluated (patternmatcher's ``matchType``)."""

    EXACT = 1
    PREFIX = 2
    SUFFIX = 3
    REGEXP = 4


_REGEX_ESCAPED = set(".+()|{}$")


_CLASS_ESCAPES = set("dDsSwWafnrtv")
_OUTSIDE_ESCAPES = _CLASS_ESCAPES | set("AbB")


def _translate_escape(ch: str, in_class: bool) -> str:
    """One ``\\c`` escape of a Go (RE2) regexp, in Python syntax."""
    if not ch.isalnum() or not ch.isascii():
        return "\\" + ch
    if ch == "z" and not in_class:
        return r"\Z"
    if ch in (_CLASS_ESCAPES if in_class else _OUTSIDE_ESCAPES):
        return "\\" + ch
    # RE2 rejects other letters here; hex, octal and \p{..} escapes are not supported.
    raise re.error(f"invalid escape sequence \\{ch}")


def _go_regex_to_python(regex: str) -> str:
    """Rewrite the regexp patternmatcher builds (RE2 syntax) for Python's ``re``.

    Escapes follow RE2's rules (``\\b`` is invalid in a class, ``\\z`` is the end), and
    the final unescaped ``$`` becomes ``\\Z``: Go's ``$`` only matches at the very end.
    """
    out: list[str] = []
    in_class = False
    class_start = 0
    i = 0
    while i < len(regex):
        ch = regex[i]
        if ch == "\\" and i + 1 < len(regex):
            out.append(_translate_escape(regex[i + 1], in_class))
            i += 2
            continue
        if in_class:
            if ch == "]" and i > class_start:
                in_class = False
            out.append(ch)
        elif ch == "[":
            in_class = True
            class_start = i + 1
            if regex.startswith("^", class_start):
                class_start += 1
            out.append(ch)
        elif ch == "$" and i == len(regex) - 1:
            out.append(r"\Z")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Compiled:
    match_type: MatchType
    regex: re.Pattern[str] | None
    error: str = ""  # Go compiles lazily: a bad regexp fails when a path is matched


def _compile_pattern(pattern: str) -> _Compiled:
    """patternmatcher's ``Pattern.compile`` for the '/' separator."""
    reg = "^"
    detected = MatchType.EXACT
    i = 0
    pos = 0
    n = len(pattern)
    while pos < n:
        ch = pattern[pos]
        pos += 1
        if ch == "*":
            if pos < n and pattern[pos] == "*":
                pos += 1
                if pos < n and pattern[pos] == "/":
                    pos += 1
                if pos >= n:
                    if detected == MatchType.EXACT:
                        detected = MatchType.PREFIX
                    else:
                        reg += ".*"
                        detected = MatchType.REGEXP
                else:
                    reg += "(.*/)?"
                    detected = MatchType.REGEXP
                if i == 0:
                    detected = MatchType.SUFFIX
            else:
                reg += "[^/]*"
                detected = MatchType.REGEXP
        elif ch == "?":
            reg += "[^/]"
            detected = MatchType.REGEXP
        elif ch in _REGEX_ESCAPED:
            reg += "\\" + ch
        elif ch == "\\":
            if pos < n:
                reg += "\\" + pattern[pos]
                pos += 1
                detected = MatchType.REGEXP
            else:
                reg += "\\"
        elif ch in "[]":
            reg += ch
            detected = MatchType.REGEXP
        else:
            reg += ch
        i += 1
    if detected != MatchType.REGEXP:
        return _Compiled(detected, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "[[" is a plain '[' for Go too
            return _Compiled(detected, re.compile(_go_regex_to_python(reg + "$")))
    except re.error as exc:
        return _Compiled(detected, None, f"syntax error in pattern {pattern!r}: {exc}")


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern of a ``PatternMatcher`` (without its leading '!')."""

    cleaned: str
    exclusion: bool
    dirs: tuple[str, ...]
    _compiled: _Compiled = field(repr=False, compare=False)

    @classmethod
    def parse(cls, raw: str) -> "Pattern | None":
        """Trim, clean and compile one pattern; None for a blank one."""
        text = raw.strip()
        if text == "":
            return None
        text = clean_path(text)
        exclusion = text.startswith("!")
        if exclusion:
            if len(text) == 1:
                raise BadPatternError('illegal exclusion pattern: "!"')
            text = text[1:]
        filepath_match(text, ".")  # Go validates syntax with filepath.Match(p, ".")
        return cls(text, exclusion, tuple(text.split("/")), _compile_pattern(text))

    def __str__(self) -> str:
        return self.cleaned

    def match(self, path: str) -> bool:
        """Does ``path`` (slash-separated, relative) match this pattern itself?"""
        kind = self._compiled.match_type
        if kind == MatchType.EXACT:
            return path == self.cleaned
        if kind == MatchType.PREFIX:
            return path.startswith(self.cleaned[:-2])
        if kind == MatchType.SUFFIX:
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        regex = self._compiled.regex
        if regex is None:
            raise BadPatternError(self._compiled.error or "syntax error in pattern")
        return regex.match(path) is not None

    def without_trailing_glob(self) -> str:
        """The pattern with one trailing ``/**`` or ``/*`` removed (fsutil's helper)."""
        text = self.cleaned
        if text.endswith("/**"):
            text = text[:-3]
        if text.endswith("/*"):
            text = text[:-2]
        return text


@dataclass(frozen=True)
class MatchInfo:
    """Per-pattern match results of a parent directory, passed down to its children."""

    parent_matched: tuple[bool, ...] = ()


def _parent_prefixes(path: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b"]: every ancestor, shortest first ([] for a top-level path)."""
    parent = clean_path(path.rsplit("/", 1)[0]) if "/" in path else "."
    if parent == ".":
        return []
    dirs = parent.split("/")
    return ["/".join(dirs[: i + 1]) for i in range(len(dirs))]


class PatternMatcher:
    """An ordered list of patterns; later patterns override earlier ones."""

    def __init__(self, patterns: Iterable[str]) -> None:
        parsed = (Pattern.parse(p) for p in patterns)
        self._patterns: tuple[Pattern, ...] = tuple(p for p in parsed if p is not None)

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        return self._patterns

    @property
    def exclusions(self) -> bool:
        """True when any pattern is a ``!`` exception."""
        return any(p.exclusion for p in self._patterns)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def matches_or_parent_matches(self, file: str) -> bool:
        """Does ``file`` or one of its parent directories match (net of exceptions)?"""
        matched = False
        parents = _parent_prefixes(file)
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue
            match = pattern.match(file) or any(pattern.match(p) for p in parents)
            if match:
                matched = not pattern.exclusion
        return matched

    def matches_using_parent_results(
        self, file: str, parent: MatchInfo = MatchInfo()
    ) -> tuple[bool, MatchInfo]:
        """Match ``file`` reusing the results of its parent directory.

        With the empty ``MatchInfo`` this behaves like ``matches_or_parent_matches``.
        """
        parent_matched = parent.parent_matched
        if parent_matched and len(parent_matched) != len(self._patterns):
            raise ValueError("wrong number of values in parent match info")
        matched = False
        results: list[bool] = []
        for i, pattern in enumerate(self._patterns):
            match = bool(parent_matched) and parent_matched[i]
            if not match:
                if pattern.exclusion != matched:
                    results.append(False)
                    continue
                match = pattern.match(file)
                if not match and not parent_matched:
                    match = any(pattern.match(p) for p in _parent_prefixes(file))
            results.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, MatchInfo(tuple(results))
