"""Wire primitives: varints (incl. 10-byte negatives), tags, length-delimited fields, the reader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solver.llb import wire
from solver.llb.wire import WireError, WireType


@pytest.mark.parametrize("value, expected", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16384, "808001"),
    (-1, "ffffffffffffffffff01"), (-2, "feffffffffffffffff01"),
    (2**63 - 1, "ffffffffffffffff7f"), (-(2**63), "80808080808080808001"),
])
def test_encode_varint(value: int, expected: str) -> None:
    assert wire.encode_varint(value).hex() == expected


def test_negative_int32_is_ten_bytes_like_int64() -> None:
    assert len(wire.encode_varint(-1)) == 10
    assert wire.to_signed32(wire.decode_varint(bytes.fromhex("ffffffffffffffffff01"), 0)[0]) == -1
    assert wire.to_signed64(wire.decode_varint(bytes.fromhex("ffffffffffffffffff01"), 0)[0]) == -1


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_varint_round_trip_int64(value: int) -> None:
    data = wire.encode_varint(value)
    decoded, pos = wire.decode_varint(data, 0)
    assert pos == len(data)
    assert wire.to_signed64(decoded) == value


def test_tags_and_length_delimited() -> None:
    assert wire.encode_tag(1, WireType.LEN).hex() == "0a"
    assert wire.encode_tag(11, WireType.LEN).hex() == "5a"
    assert wire.encode_tag(24, WireType.VARINT).hex() == "c001"
    assert wire.encode_len(3, b"ab").hex() == "1a026162"
    assert wire.encode_varint_field(2, 5).hex() == "1005"


def test_reader_yields_fields_with_raw_bytes() -> None:
    data = bytes.fromhex("0a026869" "10ffffffffffffffffff01" "5a00" "0d01000000" "1102000000000000 00".replace(" ", ""))
    fields = list(wire.iter_fields(data))
    assert [(f.number, f.wire_type) for f in fields] == [
        (1, WireType.LEN), (2, WireType.VARINT), (11, WireType.LEN), (1, WireType.I32), (2, WireType.I64)]
    assert fields[0].value == b"hi"
    assert wire.to_signed64(fields[1].value) == -1  # type: ignore[arg-type]
    assert fields[2].value == b""
    assert b"".join(f.raw for f in fields) == data


@pytest.mark.parametrize("bad", ["0a05ab", "80", "08", "00", "0c"])
def test_reader_rejects_truncated_or_invalid(bad: str) -> None:
    with pytest.raises(WireError):
        list(wire.iter_fields(bytes.fromhex(bad)))


def test_packed_varints() -> None:
    assert list(wire.iter_packed_varints(bytes.fromhex("01ac02ffffffffffffffffff01"))) == [1, 300, 2**64 - 1]
