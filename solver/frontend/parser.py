"""Dockerfile text → logical instruction nodes, with BuildKit's parser semantics.

dockerfile-parse gives the structure: which physical lines form one instruction. It is
fed a sanitized copy of the text (directive, comment and blank lines neutralised, heredoc
bodies cut off) so that its grouping matches BuildKit's ``parser.Parse``. Our own code then
does what dockerfile-parse does not: parser directives (``# syntax``, ``# escape``),
BuildKit's continuation rules, builder flags, heredocs and the per-instruction argument
forms (``line_parsers.go``).
"""

from __future__ import annotations

import functools
import io
import json
import re
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser

from solver.errors import DockerfileError
from solver.frontend.heredoc import Heredoc, heredocs_from_line, read_heredoc_bodies
from solver.frontend.textutil import go_isspace, go_trim_space, lstrip_go_space

HEREDOC_INSTRUCTIONS = frozenset({"ADD", "COPY", "RUN"})
_DIRECTIVE_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})


@dataclass
class Node:
    """One logical instruction (``parser.Node``): keyword, flags and arguments, with location."""

    keyword: str  # upper-case instruction name as written (may be unknown)
    original: str  # the logical line, continuations joined
    flags: list[str]
    rest: str  # argument text after the flags
    args: list[str]  # arguments in the instruction's parse form
    json_form: bool  # exec (JSON) form
    start_line: int  # 1-based
    end_line: int
    filename: str
    heredocs: list[Heredoc] = field(default_factory=list)
    kv_delims: list[bool] = field(default_factory=list)  # ENV/LABEL: "=" used per pair
    child: "Node | None" = None  # ONBUILD's trigger
    comments: list[str] = field(default_factory=list)


@dataclass
class ParsedDockerfile:
    """The result of parsing: directives, escape token and instruction nodes."""

    nodes: list[Node]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    filename: str = "Dockerfile"


@dataclass
class _Directives:
    escape: str = "\\"
    values: dict[str, str] = field(default_factory=dict)
    lines: int = 0  # number of leading physical lines taken by directives
    done: bool = False


def split_physical_lines(text: str) -> list[str]:
    """Split on ``\\n`` only, keeping line endings (Go's scanLines)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _continuation_re(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def is_comment(line: str) -> bool:
    stripped = lstrip_go_space(line)
    return bool(stripped) and stripped[0] == "#"


def _parse_directives(lines: list[str], filename: str) -> _Directives:
    """Leading ``# name=value`` lines (``directives.go``)."""
    result = _Directives()
    for index, raw in enumerate(lines):
        line = lstrip_go_space(_trim_newline(raw))
        if not line.startswith("#"):
            break
        match = _DIRECTIVE_RE.match(lstrip_go_space(line[1:]))
        if not match or match.group(1).lower() not in _VALID_DIRECTIVES:
            break
        name, value = match.group(1).lower(), match.group(2)
        if name in result.values:
            raise DockerfileError(f"only one {name} parser directive can be used", index + 1, filename)
        if name == "escape":
            if value not in ("`", "\\"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\", index + 1, filename)
            result.escape = value
        result.values[name] = value
        result.lines = index + 1
    return result


class _LineGrouper:
    """Groups physical lines into instructions with dockerfile-parse."""

    def __init__(self, lines: list[str], escape: str) -> None:
        self.lines = lines
        self.escape = escape
        self.cont = _continuation_re(escape)
        self.dfp_cont = re.compile(r"^.*" + re.escape(escape) + r"\s*$")

    def groups_from(self, pos: int) -> list[tuple[int, int]]:
        """(start, end) 0-based inclusive line ranges of the instructions from ``pos`` on."""
        chunk = [f"# escape={self.escape}\n"]
        chunk.extend(self._sanitize(line) for line in self.lines[pos:])
        # A sentinel line ends a continuation left open at the end of the file, which
        # dockerfile-parse would otherwise drop.
        chunk.append("_\n")
        parser = DockerfileParser(fileobj=io.BytesIO("".join(chunk).encode("utf-8", "replace")))
        offset = pos - 1
        last = len(self.lines) - 1
        return [
            (item["startline"] + offset, min(item["endline"] + offset, last))
            for item in parser.structure
            if item["instruction"] != "COMMENT" and item["startline"] + offset <= last
        ]

    def _sanitize(self, raw: str) -> str:
        line = _trim_newline(raw)
        if is_comment(line) or _only_go_space_after_strip(line):
            return "#\n"  # BuildKit skips these lines, also inside a continuation
        bk_continues = bool(self.cont.search(line))
        safe = line.replace("\r", " ")
        if not bk_continues and self.dfp_cont.match(safe):
            safe += "_"
        if not safe.strip():
            safe = "_" + safe
        # dockerfile-parse needs a keyword followed by whitespace on a start line.
        return safe + "\n"


def _only_go_space_after_strip(line: str) -> bool:
    return all(go_isspace(ch) for ch in line)


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        self.filename = filename
        self.lines = split_physical_lines(text)
        self.directives = _parse_directives(self.lines, filename)
        self.escape = self.directives.escape
        self.cont = _continuation_re(self.escape)
        self.grouper = _LineGrouper(self.lines, self.escape)

    def parse(self) -> ParsedDockerfile:
        nodes: list[Node] = []
        pos = self.directives.lines
        while pos < len(self.lines):
            pos = self._parse_chunk(pos, nodes)
        if not nodes:
            raise DockerfileError("file with no instructions", max(len(self.lines), 1), self.filename)
        return ParsedDockerfile(nodes, self.escape, dict(self.directives.values), self.filename)

    def _parse_chunk(self, pos: int, nodes: list[Node]) -> int:
        """Parse from ``pos``; stop after an instruction with heredocs. Return the next line."""
        for start, end in self.grouper.groups_from(pos):
            line = self._logical_line(start, end)
            node = self._node(line, start + 1, end + 1)
            heredocs = self._heredocs_for(node)
            if heredocs:
                docs, last = read_heredoc_bodies(self.lines, end + 1, heredocs)
                if docs is None:
                    raise DockerfileError("unterminated heredoc", start + 1, self.filename)
                node.heredocs = docs
                node.end_line = last + 1
                nodes.append(node)
                return last + 1
            nodes.append(node)
        return len(self.lines)

    def _logical_line(self, start: int, end: int) -> str:
        parts = [self._trim_cont(lstrip_go_space(_trim_newline(self.lines[start])))[0]]
        for raw in self.lines[start + 1:end + 1]:
            if is_comment(raw):
                continue
            line = _trim_newline(raw)
            if _only_go_space_after_strip(line):
                continue
            parts.append(self._trim_cont(line)[0])
        return "".join(parts)

    def _trim_cont(self, line: str) -> tuple[str, bool]:
        if self.cont.search(line):
            return self.cont.sub(lambda m: m.group(1) or "", line, count=1), False
        return line, True

    def _node(self, line: str, start: int, end: int) -> Node:
        try:
            return node_from_line(line, self.escape, start, end, self.filename)
        except DockerfileError:
            raise
        except ValueError as err:
            raise DockerfileError(str(err), start, self.filename) from None

    def _heredocs_for(self, node: Node) -> list[Heredoc]:
        target = node.child if node.keyword == "ONBUILD" and node.child is not None else node
        if target.keyword not in HEREDOC_INSTRUCTIONS or "<<" not in node.original:
            return []
        try:
            return heredocs_from_line(node.original)
        except ValueError as err:
            raise DockerfileError(str(err), node.start_line, self.filename) from None


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> ParsedDockerfile:
    """Parse Dockerfile text into nodes; raises ``DockerfileError`` with file and line."""
    return _Parser(text, filename).parse()


# -- one logical line → node (split_command.go + line_parsers.go) ---------------------

def node_from_line(line: str, escape: str, start: int, end: int, filename: str) -> Node:
    cmd, flags, rest = split_command(line, escape)
    keyword = cmd.upper()
    node = Node(keyword=keyword, original=line, flags=flags, rest=rest, args=[], json_form=False,
                start_line=start, end_line=end, filename=filename)
    _fill_args(node, escape)
    return node


_WS_SPLIT = re.compile(r"[\t\v\f\r ]+")


def split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    parts = _WS_SPLIT.split(go_trim_space(line), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = extract_builder_flags(parts[1], escape)
    return parts[0], flags, go_trim_space(rest)


def extract_builder_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words (``extractBuilderFlags``)."""
    words: list[str] = []
    pos = 0
    n = len(line)
    while True:
        while pos < n and go_isspace(line[pos]):
            pos += 1
        if pos == n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word, pos, blank_ok = _flag_word(line, pos, escape)
        if word == "--":
            return line[pos:], words
        if blank_ok or word:
            words.append(word)


def _flag_word(line: str, pos: int, escape: str) -> tuple[str, int, bool]:
    buf: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    while pos < n:
        ch = line[pos]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape:
                if pos + 1 == n:
                    pos += 1
                    quote = ""
                    continue
                pos += 1
                buf.append(line[pos])
            else:
                buf.append(ch)
            pos += 1
            continue
        if go_isspace(ch):
            break
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        elif ch == escape:
            if pos + 1 < n:
                pos += 1
                buf.append(line[pos])
        else:
            buf.append(ch)
        pos += 1
    return "".join(buf), pos, blank_ok


def _fill_args(node: Node, escape: str) -> None:
    kind = node.keyword
    rest = node.rest
    if kind in ("ADD", "COPY", "VOLUME"):
        node.args, node.json_form = _maybe_json_to_list(rest, node)
    elif kind in ("CMD", "ENTRYPOINT", "RUN", "SHELL"):
        node.args, node.json_form = _maybe_json(rest, node)
    elif kind == "ARG":
        node.args = parse_words(rest, escape)
    elif kind in ("ENV", "LABEL"):
        node.args, node.kv_delims = _name_val(rest, kind, escape)
    elif kind in ("EXPOSE", "FROM"):
        node.args = _WS_SPLIT.split(rest) if rest else []
    elif kind == "HEALTHCHECK":
        _health_args(node)
    elif kind in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        node.args = [rest] if rest else []
    elif kind == "ONBUILD":
        if rest:
            node.child = node_from_line(rest, escape, node.start_line, node.end_line, node.filename)
            node.args = [rest]


def _reject_constant(name: str) -> None:
    """Go's encoding/json has no NaN or Infinity."""
    raise ValueError(f"invalid JSON constant {name}")


def _parse_json(rest: str, node: Node) -> list[str] | None:
    text = lstrip_go_space(rest)
    if not text.startswith("["):
        return None
    try:  # not JSON (also NaN/Infinity, which Go rejects): the shell form, as BuildKit's parseMaybeJSON
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise DockerfileError("when using JSON array syntax, arrays must be comprised of strings only",
                              node.start_line, node.filename)
    return value


def _maybe_json(rest: str, node: Node) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    value = _parse_json(rest, node)
    if value is not None:
        return value, True
    return [rest], False


def _maybe_json_to_list(rest: str, node: Node) -> tuple[list[str], bool]:
    value = _parse_json(rest, node)
    if value is not None:
        return value, True
    return (_WS_SPLIT.split(rest) if rest else []), False


def _health_args(node: Node) -> None:
    rest = node.rest
    sep = 0
    while sep < len(rest) and not go_isspace(rest[sep]):
        sep += 1
    if sep == 0:
        return
    nxt = sep
    while nxt < len(rest) and go_isspace(rest[nxt]):
        nxt += 1
    cmd, node.json_form = _maybe_json(rest[nxt:], node)
    node.args = [rest[:sep], *cmd]


# Go's unicode.IsSpace (textutil.go_isspace) as a character class: Latin-1 spaces, Zs, U+2028/9.
_GO_SPACES = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


@functools.lru_cache(maxsize=16)
def _word_run(escape: str, quote: str) -> re.Pattern[str]:
    """Characters ``parse_words`` appends one by one unchanged: outside quotes no space,
    quote or escape; inside quotes neither the closing quote nor the escape."""
    if quote:
        return re.compile("[^" + re.escape(quote + escape) + "]+")
    return re.compile("[^" + _GO_SPACES + "'\"" + re.escape(escape) + "]+")


def parse_words(rest: str, escape: str) -> list[str]:
    """Quote-aware word split that keeps quotes and escapes (``parseWords``)."""
    words: list[str] = []
    buf: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word:
            if go_isspace(ch):
                i += 1
                continue
            in_word = True
        run = _word_run(escape, quote).match(rest, i)
        if run is not None:  # a long plain stretch in one step
            buf.append(run.group())
            i = run.end()
            continue
        if quote:
            if ch == quote:
                quote = ""
            if ch == escape and quote != "'":
                if i + 1 == n:
                    quote = ""
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
            i += 1
            continue
        if go_isspace(ch):
            in_word = False
            if blank_ok or buf:
                words.append("".join(buf))
            buf = []
            blank_ok = False
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            buf.append(ch)
            i += 1
            ch = rest[i]
        buf.append(ch)
        i += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


def _name_val(rest: str, key: str, escape: str) -> tuple[list[str], list[bool]]:
    """ENV/LABEL pairs as a flat [k, v, k, v...] list plus the "=" flags (``parseNameVal``)."""
    words = parse_words(rest, escape)
    if not words:
        return [], []
    if "=" not in words[0]:
        parts = _WS_SPLIT.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{key} must have two arguments")
        return [parts[0], parts[1]], [False]
    args: list[str] = []
    delims: list[bool] = []
    for word in words:
        if "=" not in word:
            raise ValueError(f"Syntax error - can't find = in {json.dumps(word)}. Must be of the form: name=value")
        k, v = word.split("=", 1)
        args.extend([k, v])
        delims.append(True)
    return args, delims
