"""ops.proto messages: known BuildKit digest vectors, hand-written byte layouts, round trips.

Expected bytes are written out from the protobuf wire rules (buildkit-facts.md §1-2) with
the tiny helpers below, never produced by the encoder under test.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from solver.llb import pb
from solver.llb.codec import Kind
from solver.llb.digest import digest_of

BUSYBOX = b"docker-image://docker.io/library/busybox:latest"
BUSYBOX_DIGEST = "sha256:74ecb5d790c33a213ba00f8f43d62947df1d4dea72f5ec13353a9b943f469f0f"
FINAL_DIGEST = "sha256:fdd990931001ae92f1971673ff21204ef6a5ccc8c1a4dd133d8f0f9bff67a3c2"
EXEC1_DIGEST = "sha256:1de5701b93648843bf2cf6ebf982b4f63ea55dcb9259e73a5bd6737505660d06"
EXEC2_DIGEST = "sha256:dcfef0f97703c4df76cba8f40891d2a851ae78d3bedce839e43e2e505e691341"
NEG1 = bytes.fromhex("ffffffffffffffffff01")  # -1 as a 10-byte two's-complement varint


def uvarint(n: int) -> bytes:
    """Test-local unsigned varint (independent of solver.llb.wire)."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: tag byte(s), length, payload."""
    return bytes([tag]) + uvarint(len(payload)) + payload


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------- known vectors


def test_busybox_source_vector() -> None:
    op = pb.Op(op=pb.SourceOp(identifier=BUSYBOX.decode()))
    data = op.to_bytes()
    assert data[:4] == bytes.fromhex("1a310a2f")
    assert data == bytes.fromhex("1a310a2f") + BUSYBOX
    assert digest_of(data) == BUSYBOX_DIGEST


def test_final_op_vector() -> None:
    final = pb.Op(inputs=[pb.Input(digest=BUSYBOX_DIGEST, index=0)])
    assert final.to_bytes() == ld(0x0A, ld(0x0A, BUSYBOX_DIGEST.encode()))
    assert digest_of(final.to_bytes()) == FINAL_DIGEST


def _exec(parent: str, args: list[str]) -> pb.Op:
    return pb.Op(inputs=[pb.Input(digest=parent)],
                 op=pb.ExecOp(meta=pb.Meta(args=args, cwd="/"), mounts=[pb.Mount(dest="/")]))


def test_exec_vectors_from_buildkit_pr5() -> None:
    first = _exec(BUSYBOX_DIGEST, ["/bin/sleep", "1"])
    assert digest_of(first.to_bytes()) == EXEC1_DIGEST
    second = _exec(EXEC1_DIGEST, ["/bin/sh", "-c", "echo foo > /bar"])
    assert digest_of(second.to_bytes()) == EXEC2_DIGEST
    meta = ld(0x0A, b"/bin/sleep") + ld(0x0A, b"1") + ld(0x1A, b"/")
    expected = ld(0x0A, ld(0x0A, BUSYBOX_DIGEST.encode())) + ld(0x12, ld(0x0A, meta) + ld(0x12, ld(0x1A, b"/")))
    assert first.to_bytes() == expected


def gogoproto_definition_bytes() -> bytes:
    """The 2-op Definition of BuildKit's solver/llbsolver/testdata/gogoproto.data, from the facts."""
    def0 = bytes.fromhex("1a310a2f") + BUSYBOX
    def1 = ld(0x0A, ld(0x0A, BUSYBOX_DIGEST.encode()))
    meta = b"".join(ld(0x12, ld(0x0A, d.encode()) + bytes.fromhex("1200")) for d in (BUSYBOX_DIGEST, FINAL_DIGEST))
    return ld(0x0A, def0) + ld(0x0A, def1) + meta


def test_gogoproto_definition_round_trip() -> None:
    data = gogoproto_definition_bytes()
    defn = pb.Definition.from_bytes(data)
    assert [digest_of(d) for d in defn.def_] == [BUSYBOX_DIGEST, FINAL_DIGEST]
    assert defn.metadata == {BUSYBOX_DIGEST: pb.OpMetadata(), FINAL_DIGEST: pb.OpMetadata()}
    assert defn.source is None
    assert defn.head() == BUSYBOX_DIGEST
    assert defn.to_bytes() == data
    ops = defn.ops()
    assert ops[0].op == pb.SourceOp(identifier=BUSYBOX.decode())
    assert [digest_of(op.to_bytes()) for op in ops] == [BUSYBOX_DIGEST, FINAL_DIGEST]


def test_definition_keeps_metadata_order_of_the_wire() -> None:
    """Go's vtproto writes Definition maps unsorted; a parsed Definition writes back as read."""
    data = gogoproto_definition_bytes()
    reordered = pb.Definition.from_bytes(data)
    reordered.metadata = dict(reversed(list(reordered.metadata.items())))
    unsorted = reordered.to_bytes()
    assert unsorted != data
    assert pb.Definition.from_bytes(unsorted).to_bytes() == unsorted
    assert reordered.to_bytes(deterministic=True) == data


# ----------------------------------------------------------------- byte rules


def test_oneof_is_written_after_platform_and_constraints() -> None:
    op = pb.Op(op=pb.SourceOp(identifier="docker-image://x"),
               platform=pb.Platform(architecture="amd64", os="linux"), constraints=pb.WorkerConstraints())
    platform = ld(0x0A, b"amd64") + ld(0x12, b"linux")
    expected = ld(0x52, platform) + bytes.fromhex("5a00") + ld(0x1A, ld(0x0A, b"docker-image://x"))
    assert op.to_bytes() == expected
    assert pb.Op.from_bytes(expected) == op


def test_empty_submessages_are_written_and_zero_scalars_omitted() -> None:
    op = pb.Op(inputs=[pb.Input(digest="d", index=0)], op=pb.ExecOp(), constraints=pb.WorkerConstraints())
    assert op.to_bytes() == ld(0x0A, ld(0x0A, b"d")) + bytes.fromhex("5a00") + bytes.fromhex("1200")
    assert pb.Mount().to_bytes() == b""
    assert pb.Mount(cache_opt=pb.CacheOpt()).to_bytes() == bytes.fromhex("a20100")


def test_attrs_map_sorted_with_empty_values_kept() -> None:
    src = pb.SourceOp(identifier="local://c", attrs={"z": "1", "a": "", "m": "x"})
    expected = (ld(0x0A, b"local://c") + ld(0x12, ld(0x0A, b"a") + bytes.fromhex("1200"))
                + ld(0x12, ld(0x0A, b"m") + ld(0x12, b"x")) + ld(0x12, ld(0x0A, b"z") + ld(0x12, b"1")))
    assert src.to_bytes() == expected
    assert pb.SourceOp.from_bytes(expected).attrs == {"a": "", "m": "x", "z": "1"}


def test_bool_map_entries_write_false_values() -> None:
    md = pb.OpMetadata(caps={"b": False, "a": True})
    assert md.to_bytes() == ld(0x2A, ld(0x0A, b"a") + bytes.fromhex("1001")) + ld(0x2A, ld(0x0A, b"b") + bytes.fromhex("1000"))


def test_negative_indexes_are_ten_byte_varints() -> None:
    mount = pb.Mount(input=-1, dest="/c", output=-1, mount_type=pb.MountType.CACHE, cache_opt=pb.CacheOpt(id="k"))
    expected = (b"\x08" + NEG1 + ld(0x1A, b"/c") + b"\x20" + NEG1 + bytes.fromhex("3003")
                + bytes([0xA2, 0x01]) + uvarint(3) + ld(0x0A, b"k"))
    assert mount.to_bytes() == expected
    assert pb.Mount.from_bytes(expected) == mount
    copy = pb.FileActionCopy(src="/a", dest="/b", mode=-1, timestamp=-1)
    assert copy.to_bytes() == ld(0x0A, b"/a") + ld(0x12, b"/b") + b"\x20" + NEG1 + b"\x58" + NEG1


def test_user_opt_by_id_zero_is_written() -> None:
    """A set oneof member is written even when it is a zero scalar."""
    assert pb.UserOpt(user=0).to_bytes() == bytes.fromhex("1000")
    assert pb.UserOpt.from_bytes(bytes.fromhex("1000")).user == 0
    assert pb.UserOpt().to_bytes() == b""
    named = pb.UserOpt(user=pb.NamedUserOpt(name="app", input=1))
    assert named.to_bytes() == ld(0x0A, ld(0x0A, b"app") + bytes.fromhex("1001"))


def test_valid_exit_codes_are_packed() -> None:
    meta = pb.Meta(args=["x"], valid_exit_codes=[0, 1, -1])
    expected = ld(0x0A, b"x") + ld(0x62, b"\x00\x01" + NEG1)
    assert meta.to_bytes() == expected
    unpacked = ld(0x0A, b"x") + b"\x60\x00\x60\x01\x60" + NEG1
    assert pb.Meta.from_bytes(unpacked).valid_exit_codes == [0, 1, -1]


def test_unknown_fields_survive_a_round_trip() -> None:
    future = bytes.fromhex("fa01") + uvarint(6) + b"future"  # field 31, length-delimited
    data = ld(0x0A, b"docker-image://x") + future + bytes.fromhex("e8072a")  # field 125 varint 42
    src = pb.SourceOp.from_bytes(data)
    assert src.identifier == "docker-image://x"
    assert src.unknown_fields == future + bytes.fromhex("e8072a")
    assert src.to_bytes() == data


def test_unknown_enum_value_is_kept() -> None:
    ex = pb.ExecOp.from_bytes(bytes.fromhex("1807"))
    assert ex.network == 7
    assert ex.to_bytes() == bytes.fromhex("1807")


def test_op_kind() -> None:
    assert pb.Op(op=pb.FileOp()).kind == "file"
    assert pb.Op().kind == ""


# ----------------------------------------------------------------- property: round trip


def _value_strategy(spec, depth: int):
    kind = spec.kind
    if kind == Kind.STRING:
        return st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
    if kind == Kind.BYTES:
        return st.binary(max_size=8)
    if kind == Kind.BOOL:
        return st.booleans()
    if kind == Kind.INT32:
        return st.integers(-(2**31), 2**31 - 1)
    if kind == Kind.INT64:
        return st.integers(-(2**63), 2**63 - 1)
    if kind == Kind.UINT32:
        return st.integers(0, 2**32 - 1)
    if kind == Kind.UINT64:
        return st.integers(0, 2**64 - 1)
    if kind == Kind.ENUM:
        return st.sampled_from(list(spec.ref_type()))
    return message_strategy(spec.ref_type(), depth + 1)


def _field_strategy(spec, depth: int):
    value = _value_strategy(spec, depth)
    if spec.is_map:
        return st.dictionaries(st.text(max_size=6), value, max_size=3)
    if spec.repeated:
        return st.lists(value, max_size=3)
    if spec.kind == Kind.MESSAGE:
        return st.none() | value
    return value


def message_strategy(cls, depth: int = 0):
    """Random instances of a message class, built from its schema (depth-limited)."""
    if depth > 4:
        return st.just(cls())
    kwargs = {}
    groups: dict[str, list] = {}
    for spec in cls.FIELDS:
        if spec.oneof:
            groups.setdefault(spec.oneof, []).append(_value_strategy(spec, depth))
        else:
            kwargs[spec.attr] = st.deferred(lambda spec=spec: _field_strategy(spec, depth))
    for group, options in groups.items():
        kwargs[group] = st.one_of(st.none(), *options)
    return st.builds(cls, **kwargs)


@settings(max_examples=300, deadline=None)
@given(message_strategy(pb.Op))
def test_op_round_trip(op: pb.Op) -> None:
    data = op.to_bytes()
    parsed = pb.Op.from_bytes(data)
    assert parsed == op
    assert parsed.to_bytes() == data


@settings(max_examples=100, deadline=None)
@given(message_strategy(pb.Definition))
def test_definition_round_trip(defn: pb.Definition) -> None:
    data = defn.to_bytes()
    parsed = pb.Definition.from_bytes(data)
    assert parsed == defn
    assert parsed.to_bytes() == data
    assert pb.Definition.from_bytes(defn.to_bytes(deterministic=True)).to_bytes(deterministic=True) == \
        defn.to_bytes(deterministic=True)
