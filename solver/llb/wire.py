"""Protobuf wire-format primitives: varints, tags, length-delimited fields and a reader.

Negative int32/int64 values are written as 10-byte two's-complement varints, exactly as
Go's protobuf runtimes do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Iterator

from solver.errors import LLBookError

_MASK64 = (1 << 64) - 1


class WireType(IntEnum):
    """The low three bits of a field tag."""

    VARINT = 0
    I64 = 1
    LEN = 2
    SGROUP = 3
    EGROUP = 4
    I32 = 5


class WireError(LLBookError):
    """Bytes that are not valid protobuf wire format."""


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128 of `value`; negative values become their 64-bit two's complement."""
    value &= _MASK64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_tag(field_number: int, wire_type: WireType) -> bytes:
    """The varint key of a field."""
    return encode_varint((field_number << 3) | int(wire_type))


def encode_len(field_number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return encode_tag(field_number, WireType.LEN) + encode_varint(len(payload)) + payload


def encode_varint_field(field_number: int, value: int) -> bytes:
    """A varint field: tag and value."""
    return encode_tag(field_number, WireType.VARINT) + encode_varint(value)


def to_signed64(value: int) -> int:
    """Interpret a decoded 64-bit varint as int64."""
    value &= _MASK64
    return value - (1 << 64) if value >= (1 << 63) else value


def to_signed32(value: int) -> int:
    """Interpret a decoded varint as int32 (Go truncates to the low 32 bits)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def decode_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode one varint at `pos`; return (value, new position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint too long")


@dataclass(frozen=True)
class RawField:
    """One field as read from the wire, with the exact bytes it occupied."""

    number: int
    wire_type: WireType
    value: int | bytes  # int for VARINT/I64/I32, payload bytes for LEN
    raw: bytes  # tag + value bytes, kept for lossless unknown fields


def _read_value(data: bytes, pos: int, wire_type: int) -> tuple[int | bytes, int]:
    """Read the value part of a field of `wire_type` starting at `pos`."""
    if wire_type == WireType.VARINT:
        return decode_varint(data, pos)
    if wire_type == WireType.I64:
        if pos + 8 > len(data):
            raise WireError("truncated fixed64")
        return int.from_bytes(data[pos : pos + 8], "little"), pos + 8
    if wire_type == WireType.I32:
        if pos + 4 > len(data):
            raise WireError("truncated fixed32")
        return int.from_bytes(data[pos : pos + 4], "little"), pos + 4
    if wire_type == WireType.LEN:
        length, pos = decode_varint(data, pos)
        if pos + length > len(data):
            raise WireError("truncated length-delimited field")
        return bytes(data[pos : pos + length]), pos + length
    if wire_type == WireType.SGROUP:
        return _skip_group(data, pos)
    raise WireError(f"unsupported wire type {wire_type}")


def _skip_group(data: bytes, pos: int) -> tuple[bytes, int]:
    """Skip a (deprecated) group up to its matching end tag; return its body."""
    start = pos
    depth = 1
    while True:
        key, after = decode_varint(data, pos)
        wire_type = key & 7
        if wire_type == WireType.EGROUP:
            depth -= 1
            if depth == 0:
                return bytes(data[start:pos]), after
            pos = after
            continue
        if wire_type == WireType.SGROUP:
            depth += 1
            pos = after
            continue
        _, pos = _read_value(data, after, wire_type)


def iter_fields(data: bytes) -> Iterator[RawField]:
    """Yield every field of a serialized message in wire order."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = decode_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("invalid field number 0")
        if wire_type == WireType.EGROUP:
            raise WireError("unexpected end-group tag")
        value, pos = _read_value(data, pos, wire_type)
        yield RawField(number, WireType(wire_type), value, bytes(data[start:pos]))


def iter_packed_varints(payload: bytes) -> Iterator[int]:
    """Yield the varints of a packed repeated field's payload."""
    pos = 0
    while pos < len(payload):
        value, pos = decode_varint(payload, pos)
        yield value
