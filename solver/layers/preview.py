"""A file's contents for display: text up to a size cap, a hex dump for binaries, a
symlink's target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TEXT, BINARY, SYMLINK = "text", "binary", "symlink"
HEX_WIDTH = 16
MAX_HEX_BYTES = 4096


@dataclass
class Preview:
    """What a preview shows: ``kind`` text | binary | symlink | absent | dir | ..."""

    path: str
    layer: int
    kind: str
    size: int = 0
    text: str = ""
    lines: list[str] = field(default_factory=list)  # the hex dump of a binary
    link: str = ""
    truncated: bool = False
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        """As the CLI prints it."""
        if self.kind == TEXT:
            return self.text + ("\n" if self.text and not self.text.endswith("\n") else "") + (
                f"[… truncated at {len(self.text.encode())} of {self.size} bytes]\n" if self.truncated else "")
        if self.kind == BINARY:
            tail = f"[… {self.size} bytes, first {MAX_HEX_BYTES} shown]\n" if self.truncated else ""
            return "\n".join(self.lines) + "\n" + tail
        if self.kind == SYMLINK:
            return f"{self.path} -> {self.link}\n"
        return f"{self.note}\n"


def is_binary(data: bytes) -> bool:
    """NUL bytes or bytes that are not UTF-8 (a cut multi-byte tail is allowed)."""
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(data) - 3
    return False


def hex_lines(data: bytes) -> list[str]:
    """``hexdump -C`` lines: offset, 16 bytes in hex, and their printable characters."""
    out = []
    for offset in range(0, len(data), HEX_WIDTH):
        chunk = data[offset:offset + HEX_WIDTH]
        left, right = (" ".join(f"{b:02x}" for b in half) for half in (chunk[:8], chunk[8:]))
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append(f"{offset:08x}  {left:<23}  {right:<23}  |{text}|")
    return out


def preview_bytes(path: str, layer: int, data: bytes, cap: int, size: int) -> Preview:
    """The preview of a regular file whose first ``cap`` + 1 (or more) bytes are ``data``."""
    if is_binary(data[:cap]):
        shown = data[:min(cap, MAX_HEX_BYTES)]
        return Preview(path, layer, BINARY, size=size, lines=hex_lines(shown), truncated=size > len(shown))
    text = data[:cap].decode("utf-8", "replace")
    return Preview(path, layer, TEXT, size=size, text=text, truncated=size > cap or len(data) > cap)


def preview_link(path: str, layer: int, target: str) -> Preview:
    return Preview(path, layer, SYMLINK, size=len(target), link=target)
