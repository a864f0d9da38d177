"""Content digests in OCI form (`sha256:<hex>`)."""

from __future__ import annotations

import hashlib


def digest_of(data: bytes) -> str:
    """`sha256:<hex>` of `data`, as go-digest's `FromBytes`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
