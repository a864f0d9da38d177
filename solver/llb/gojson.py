"""JSON text exactly as Go's `encoding/json` writes it (compact, HTML-safe escapes)."""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")  # an invalid UTF-8 byte kept by surrogateescape
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def dumps(value: Any) -> str:
    """Compact JSON with Go's escaping of <, >, &, U+2028 and U+2029; dict order is kept.

    Invalid UTF-8 (surrogate-escaped bytes) becomes U+FFFD, one per byte, as in Go.
    """
    text = _SURROGATE.sub("\ufffd", json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return "".join(_GO_ESCAPES.get(ch, ch) for ch in text)
