"""BuildKit's Dockerfile word processing (``frontend/dockerfile/shell/lex.go``).

``Lexer.process_word`` expands one word (``$V``, ``${V:-x}``, quotes, escapes) and
``Lexer.process_words`` additionally splits the result into words the way BuildKit does
for instructions that have no exec form.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from solver.errors import shorten

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Nested ${...} levels one word may hold. Each level costs a few Python frames; the bound
# keeps a hostile word (thousands of levels) an error instead of a RecursionError.
MAX_NESTING = 100


@functools.lru_cache(maxsize=64)
def _plain_run(escape_token: str, stop: str) -> re.Pattern[str]:
    """A run of characters the main loop copies as they are: no whitespace, no ``$``,
    ``<``, quote, escape token or stop character (a hostile megabyte word in one step)."""
    return re.compile("[^\\s$<'\"" + re.escape(escape_token) + re.escape(stop) + "]+")


class WordError(ValueError):
    """A word that cannot be expanded; the message follows BuildKit's wording."""


@dataclass
class _Words:
    """Accumulates split words (``wordsStruct`` in lex.go)."""

    buf: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    in_word: bool = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf.clear()
            self.in_word = False
        return self.words


class _Scanner:
    """Rune scanner with one character of look-ahead."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


@dataclass
class Lexer:
    """Word expansion with BuildKit's options (names follow ``shell.Lex``)."""

    escape_token: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand ``word`` into one string (ProcessWord)."""
        return _ShellWord(self, word, env).run()[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` and split it into words (ProcessWords)."""
        return _ShellWord(self, word, env).run()[1]

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> tuple[str, set[str], set[str]]:
        """Expand ``word``; also return the names that were found and not found."""
        sw = _ShellWord(self, word, env)
        result = sw.run()[0]
        return result, sw.matched, sw.unmatched


class _ShellWord:
    def __init__(self, lex: Lexer, source: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.source = source
        self.env = env
        self.scanner = _Scanner(source)
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.depth = 0

    def run(self) -> tuple[str, list[str]]:
        try:
            return self._process_stop_on(_EOF, self.raw_escapes)
        except WordError as err:
            raise WordError(f"failed to process {_go_quote(shorten(self.source))}: {err}") from None

    # -- main loop -------------------------------------------------------------------
    def _handlers(self) -> dict[str, Callable[[], str]]:
        handlers: dict[str, Callable[[], str]] = {"$": self._dollar, "<": self._possible_heredoc}
        if not self.lex.skip_process_quotes:
            handlers["'"] = self._single_quote
            handlers['"'] = self._double_quote
        return handlers

    def _process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        if self.depth >= MAX_NESTING:
            raise WordError(f"substitutions nested more than {MAX_NESTING} levels deep")
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        self.depth += 1
        try:
            return self._loop(stop)
        finally:
            self.raw_escapes = saved
            self.depth -= 1

    def _loop(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        handlers = self._handlers()
        sc = self.scanner
        plain = _plain_run(self.lex.escape_token, stop)
        while sc.peek() != _EOF:
            run = plain.match(sc.text, sc.pos)
            if run is not None:
                sc.pos = run.end()
                result.append(run.group())
                words.add_raw_string(run.group())
                continue
            ch = sc.peek()
            if stop and ch == stop:
                sc.next()
                return "".join(result), words.result()
            handler = handlers.get(ch)
            if handler is not None:
                text = handler()
                result.append(text)
                if ch == "$":
                    words.add_string(text)
                else:
                    words.add_raw_string(text)
                continue
            ch = sc.next()
            if ch == self.lex.escape_token:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = sc.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop:
            raise WordError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    # -- quotes ----------------------------------------------------------------------
    def _single_quote(self) -> str:
        sc = self.scanner
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == _EOF:
                raise WordError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        sc = self.scanner
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            peek = sc.peek()
            if peek == _EOF:
                raise WordError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = sc.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self._dollar())
                continue
            ch = sc.next()
            if ch == self.lex.escape_token:
                if self.raw_escapes:
                    out.append(ch)
                nxt = sc.peek()
                if nxt == _EOF:
                    continue
                if nxt in ('"', "$", self.lex.escape_token):
                    ch = sc.next()
            out.append(ch)

    # -- variables -------------------------------------------------------------------
    def _dollar(self) -> str:
        sc = self.scanner
        sc.next()
        if sc.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            value, found = self._get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value
        sc.next()
        if sc.peek() == _EOF:
            raise WordError("syntax error: missing '}'")
        if sc.peek() in ("{", "}", ":"):
            raise WordError("syntax error: bad substitution")
        name = self._name()
        ch = sc.next()
        if ch == _EOF:
            raise WordError("syntax error: missing '}'")
        if ch == "}":
            value, found = self._get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${%s}" % name
            return value
        if ch == ":":
            return self._modifier(name, sc.next(), null_is_unset=True)
        if ch in "+-?#%":
            return self._modifier(name, ch, null_is_unset=False)
        if ch == "/":
            return self._replace(name)
        raise WordError(f"unsupported modifier ({ch}) in substitution")

    def _modifier(self, name: str, op: str, null_is_unset: bool) -> str:
        chs = (":" if null_is_unset else "") + op
        raw = op in ("#", "%")
        if null_is_unset and raw:
            raise WordError(f"unsupported modifier ({chs}) in substitution")
        if op not in ("+", "-", "?", "#", "%"):
            # BuildKit still reads up to '}' before rejecting the modifier.
            self._read_until_brace(raw)
            raise WordError(f"unsupported modifier ({chs}) in substitution")
        word = self._read_until_brace(raw)
        value, found = self._get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${%s%s%s}" % (name, chs, word)
        empty = not found or (null_is_unset and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            return _required(name, value, found, null_is_unset, word)
        greedy = bool(word) and word[0] == op
        if greedy:
            word = word[1:]
        if op == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def _read_until_brace(self, raw: bool) -> str:
        try:
            return self._process_stop_on("}", raw)[0]
        except WordError:
            if self.scanner.peek() == _EOF:
                raise WordError("syntax error: missing '}'") from None
            raise

    def _replace(self, name: str) -> str:
        sc = self.scanner
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        try:
            pattern = self._process_stop_on("/", True)[0]
        except WordError:
            if sc.peek() == _EOF:
                raise WordError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self._read_until_brace(True)
        value, found = self._get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${%s/%s/%s}" % (name, pattern, replacement)
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda _m: replacement, value)
        return regex.sub(lambda _m: replacement, value, count=1)

    def _name(self) -> str:
        sc = self.scanner
        name: list[str] = []
        while sc.peek() != _EOF:
            ch = sc.peek()
            if not name and ch.isdigit():
                while sc.peek() != _EOF and sc.peek().isdigit():
                    name.append(sc.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(sc.next())
        return "".join(name)

    def _possible_heredoc(self) -> str:
        sc = self.scanner
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space: list[str] = []
        while sc.peek() in ("\t", "\r", " ") and sc.peek():
            space.append(sc.next())
        return "<<" + "".join(space)

    def _get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False


def _required(name: str, value: str, found: bool, null_is_unset: bool, word: str) -> str:
    if not found:
        raise WordError(f"{name}: {word or 'is not allowed to be unset'}")
    if null_is_unset and value == "":
        raise WordError(f"{name}: {word or 'is not allowed to be empty'}")
    return value


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """Shell glob (``*``, ``?``, backslash escapes) to a regex (convertShellPatternToRegex)."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
        elif tok == "?":
            out.append(".")
        elif tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise WordError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            out.append(re.escape(nxt))
            i += 1
        else:
            out.append(re.escape(tok))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i != len(pattern) - 1:
            out.append(pattern[i:i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_quote(text: str) -> str:
    """Approximation of Go's %q."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
