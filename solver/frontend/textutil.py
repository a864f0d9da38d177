"""Small text helpers that follow Go's definitions (``unicode.IsSpace``, ``strings.TrimSpace``)."""

from __future__ import annotations

import re
import unicodedata

_LATIN1_SPACE = frozenset("\t\n\v\f\r \x85\xa0")


def go_isspace(ch: str) -> bool:
    """Go's ``unicode.IsSpace``."""
    if ord(ch) < 0x100:
        return ch in _LATIN1_SPACE
    return unicodedata.category(ch) == "Zs" or ch in ("\u2028", "\u2029")


def lstrip_go_space(text: str) -> str:
    i = 0
    while i < len(text) and go_isspace(text[i]):
        i += 1
    return text[i:]


def rstrip_go_space(text: str) -> str:
    j = len(text)
    while j > 0 and go_isspace(text[j - 1]):
        j -= 1
    return text[:j]


def go_trim_space(text: str) -> str:
    """Go's ``strings.TrimSpace``."""
    return rstrip_go_space(lstrip_go_space(text))


_WS = re.compile(r"[\t\v\f\r ]+")


def split_ws(text: str) -> list[str]:
    """BuildKit's ``reWhitespace.Split(text, -1)``."""
    return _WS.split(text)


def decode_dockerfile(data: bytes, filename: str) -> str:
    """A Dockerfile's bytes as text; a file that is not UTF-8 text is a DockerfileError
    naming the file, the line and the byte offset of the first byte that is not."""
    from solver.errors import DockerfileError

    nul = data.find(b"\0")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        offset = err.start if nul < 0 else min(err.start, nul)
    else:
        if nul < 0:
            return text
        offset = nul
    line = data.count(b"\n", 0, offset) + 1
    raise DockerfileError(f"not a UTF-8 text file: byte 0x{data[offset]:02x} at offset {offset} "
                          "is not text (is this a binary file?)", line, filename)
