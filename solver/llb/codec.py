"""Schema-driven protobuf codec for the dataclasses of `solver.llb.pb`.

Each message class lists its fields as `Field` specs (number, proto name, kind). One
encoder and one decoder serve every message. `encode(msg, deterministic=True)` matches
Go's deterministic marshaling (protobuf-go `Deterministic: true`):

- non-oneof fields in field-number order, the oneof member last, unknown fields after;
- proto3 zero scalars omitted; a non-None sub-message always written (even empty);
- a set oneof member always written, even a zero scalar (`UserOpt.byID = 0`);
- maps sorted by key, each entry holding key and value even when they are empty;
- repeated numeric scalars packed.

With `deterministic=False` maps keep their dict order, which is how Go's vtproto marshals
a `Definition`; a parsed Definition then re-encodes byte for byte.
"""

from __future__ import annotations

import functools
import keyword
import re
from dataclasses import dataclass, field, fields
from enum import Enum, IntEnum
from typing import Any, ClassVar, TypeVar

from solver.llb import wire
from solver.llb.wire import WireType

M = TypeVar("M", bound="Message")


class Kind(str, Enum):
    """Scalar and composite protobuf field kinds used by ops.proto."""

    STRING = "string"
    BYTES = "bytes"
    BOOL = "bool"
    INT32 = "int32"
    INT64 = "int64"
    UINT32 = "uint32"
    UINT64 = "uint64"
    ENUM = "enum"
    MESSAGE = "message"


_VARINT_KINDS = {Kind.BOOL, Kind.INT32, Kind.INT64, Kind.UINT32, Kind.UINT64, Kind.ENUM}
_REGISTRY: dict[str, type] = {}


@functools.lru_cache(maxsize=None)
def snake_case(proto_name: str) -> str:
    """Python attribute name of a proto field: `secondaryInput` → `secondary_input`, `def` → `def_`."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", proto_name).lower()
    return name + "_" if keyword.iskeyword(name) else name


@dataclass(frozen=True)
class Field:
    """How one proto field maps to a dataclass attribute and to the wire."""

    number: int
    proto_name: str  # also the Go struct's JSON name
    kind: Kind
    ref: str = ""  # message/enum class name (the value type for maps)
    repeated: bool = False
    map_key: Kind | None = None
    oneof: str = ""  # attribute of the oneof group this member belongs to

    @property
    def attr(self) -> str:
        """The dataclass attribute holding this field (the group for oneof members)."""
        return self.oneof or snake_case(self.proto_name)

    @property
    def is_map(self) -> bool:
        return self.map_key is not None

    def ref_type(self) -> type:
        """The message or enum class named by `ref`."""
        return _REGISTRY[self.ref]


def spec(number: int, name: str, kind: Kind, ref: str = "", *, rep: bool = False,
         key: Kind | None = None, oneof: str = "") -> Field:
    """Shorthand for a `Field` in message declarations: `spec(5, "OSFeatures", S, rep=True)`."""
    return Field(number, name, kind, ref, repeated=rep, map_key=key, oneof=oneof)


# short names of the kinds, for message declarations
S, BY, BO = Kind.STRING, Kind.BYTES, Kind.BOOL
I32, I64, U32, U64 = Kind.INT32, Kind.INT64, Kind.UINT32, Kind.UINT64
EN, MSG = Kind.ENUM, Kind.MESSAGE


def register(cls: type) -> type:
    """Make a message or enum class resolvable by name in Field.ref."""
    _REGISTRY[cls.__name__] = cls
    return cls


@dataclass
class Message:
    """Base of every generated message: unknown fields are kept for lossless re-encoding."""

    FIELDS: ClassVar[tuple[Field, ...]] = ()
    LAYOUT: ClassVar[Layout | None] = None
    unknown_fields: bytes = field(default=b"", repr=False, kw_only=True)

    def to_bytes(self, deterministic: bool = True) -> bytes:
        """Serialize as Go's deterministic protobuf marshaling does."""
        return encode(self, deterministic)

    @classmethod
    def from_bytes(cls: type[M], data: bytes) -> M:
        """Parse serialized bytes of this message type."""
        return decode(cls, data)


def check_schema(cls: type[Message]) -> None:
    """Fail at import time when a FIELDS entry does not name a dataclass attribute; store the layout."""
    names = {f.name for f in fields(cls)}
    for spec in cls.FIELDS:
        if spec.attr not in names:
            raise TypeError(f"{cls.__name__}: no attribute {spec.attr!r} for field {spec.proto_name}")
    cls.LAYOUT = Layout.of(cls.FIELDS)


# ---------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Layout:
    """Per class: non-oneof fields by number, oneof group names, fields by number."""

    plain: tuple[Field, ...]
    groups: tuple[str, ...]
    by_number: dict[int, Field]

    @classmethod
    def of(cls, fields_: tuple[Field, ...]) -> Layout:
        plain = tuple(sorted((f for f in fields_ if not f.oneof), key=lambda f: f.number))
        groups = tuple(sorted({f.oneof for f in fields_ if f.oneof}))
        return cls(plain, groups, {f.number: f for f in fields_})


def _layout(cls: type[Message]) -> Layout:
    """The layout `check_schema` stored on the class (computed on first use for unchecked classes)."""
    layout = cls.__dict__.get("LAYOUT")
    return layout if layout is not None else Layout.of(cls.FIELDS)


def encode(msg: Message, deterministic: bool = True) -> bytes:
    """Serialize `msg`: plain fields by number, then the set oneof member, then unknown fields."""
    out = bytearray()
    for spec in _layout(type(msg)).plain:
        out += _encode_field(spec, getattr(msg, spec.attr), deterministic)
    out += _encode_oneofs(msg, deterministic)
    out += msg.unknown_fields
    return bytes(out)


def _encode_oneofs(msg: Message, deterministic: bool) -> bytes:
    """Write the member of each oneof group that is set."""
    out = bytearray()
    for group in _layout(type(msg)).groups:
        value = getattr(msg, group)
        if value is None:
            continue
        spec = oneof_member(type(msg), group, value)
        out += _encode_single(spec, value, deterministic)
    return bytes(out)


def oneof_member(cls: type[Message], group: str, value: Any) -> Field:
    """The oneof member spec whose type matches `value`."""
    for spec in cls.FIELDS:
        if spec.oneof != group:
            continue
        if spec.kind == Kind.MESSAGE and isinstance(value, spec.ref_type()):
            return spec
        if spec.kind != Kind.MESSAGE and isinstance(value, int) and not isinstance(value, bool):
            return spec
    raise TypeError(f"{cls.__name__}.{group}: unsupported value {type(value).__name__}")


def _encode_field(spec: Field, value: Any, deterministic: bool) -> bytes:
    """Encode a non-oneof field, omitting proto3 defaults."""
    if spec.is_map:
        return _encode_map(spec, value, deterministic)
    if spec.repeated:
        return _encode_repeated(spec, value, deterministic)
    if spec.kind == Kind.MESSAGE:
        return b"" if value is None else _encode_single(spec, value, deterministic)
    if _is_zero(spec.kind, value):
        return b""
    return _encode_single(spec, value, deterministic)


def _is_zero(kind: Kind, value: Any) -> bool:
    if kind in (Kind.STRING, Kind.BYTES):
        return len(value) == 0
    return not value


def _encode_single(spec: Field, value: Any, deterministic: bool) -> bytes:
    """Encode one value with its tag, whatever it is."""
    kind = spec.kind
    if kind == Kind.STRING:
        return wire.encode_len(spec.number, value.encode("utf-8", "surrogateescape"))
    if kind == Kind.BYTES:
        return wire.encode_len(spec.number, bytes(value))
    if kind == Kind.MESSAGE:
        return wire.encode_len(spec.number, encode(value, deterministic))
    return wire.encode_varint_field(spec.number, _varint_value(kind, value))


def _varint_value(kind: Kind, value: Any) -> int:
    """The integer a varint-kind value is written as (uint32 wraps like Go's conversion)."""
    if kind == Kind.BOOL:
        return 1 if value else 0
    if kind == Kind.UINT32:
        return int(value) & 0xFFFFFFFF
    return int(value)


def _encode_repeated(spec: Field, values: list[Any], deterministic: bool) -> bytes:
    """Repeated fields: numeric scalars packed, everything else one entry per element."""
    if not values:
        return b""
    if spec.kind in _VARINT_KINDS:
        payload = b"".join(wire.encode_varint(_varint_value(spec.kind, v)) for v in values)
        return wire.encode_len(spec.number, payload)
    return b"".join(_encode_single(spec, v, deterministic) for v in values)


def _map_entry_specs(spec: Field) -> tuple[Field, Field]:
    """Synthetic key (1) and value (2) fields of a map entry."""
    assert spec.map_key is not None
    return Field(1, "key", spec.map_key), Field(2, "value", spec.kind, spec.ref)


def _encode_map(spec: Field, mapping: dict[Any, Any], deterministic: bool) -> bytes:
    """Each entry as a nested message with key and value always present."""
    if not mapping:
        return b""
    key_spec, val_spec = _map_entry_specs(spec)
    items = list(mapping.items())
    if deterministic:
        items.sort(key=lambda kv: _map_sort_key(kv[0]))
    out = bytearray()
    for key, value in items:
        if val_spec.kind == Kind.MESSAGE and value is None:
            value = val_spec.ref_type()()
        entry = _encode_single(key_spec, key, deterministic) + _encode_single(val_spec, value, deterministic)
        out += wire.encode_len(spec.number, entry)
    return bytes(out)


def _map_sort_key(key: Any) -> Any:
    """Go sorts string keys by their bytes."""
    return key.encode("utf-8", "surrogateescape") if isinstance(key, str) else key


# ---------------------------------------------------------------- decoding


def decode(cls: type[M], data: bytes) -> M:
    """Parse `data` into a new `cls`; fields we do not know are kept verbatim."""
    by_number = _layout(cls).by_number
    values: dict[str, Any] = {}
    unknown = bytearray()
    for raw in wire.iter_fields(data):
        spec = by_number.get(raw.number)
        if spec is None or not _wire_type_fits(spec, raw.wire_type):
            unknown += raw.raw
            continue
        _apply(spec, raw, values)
    msg = cls(**values)
    msg.unknown_fields = bytes(unknown)
    return msg


def _wire_type_fits(spec: Field, wire_type: WireType) -> bool:
    if spec.is_map or spec.kind in (Kind.STRING, Kind.BYTES, Kind.MESSAGE):
        return wire_type == WireType.LEN
    if spec.repeated:
        return wire_type in (WireType.LEN, WireType.VARINT)
    return wire_type == WireType.VARINT


def _apply(spec: Field, raw: wire.RawField, values: dict[str, Any]) -> None:
    """Store one wire field into the constructor arguments."""
    if spec.is_map:
        key, value = _decode_map_entry(spec, raw.value)  # type: ignore[arg-type]
        values.setdefault(spec.attr, {})[key] = value
    elif spec.repeated and spec.kind in _VARINT_KINDS and raw.wire_type == WireType.LEN:
        items = values.setdefault(spec.attr, [])
        items.extend(_scalar(spec, v) for v in wire.iter_packed_varints(raw.value))  # type: ignore[arg-type]
    elif spec.repeated:
        values.setdefault(spec.attr, []).append(_decode_value(spec, raw.value))
    else:
        values[spec.attr] = _decode_value(spec, raw.value)


def _decode_value(spec: Field, value: int | bytes) -> Any:
    if spec.kind == Kind.MESSAGE:
        return decode(spec.ref_type(), value)  # type: ignore[arg-type]
    if spec.kind == Kind.STRING:
        return value.decode("utf-8", "surrogateescape")  # type: ignore[union-attr]
    if spec.kind == Kind.BYTES:
        return bytes(value)  # type: ignore[arg-type]
    return _scalar(spec, value)  # type: ignore[arg-type]


def _scalar(spec: Field, value: int) -> Any:
    """Convert a raw varint to the Python value of the field's kind."""
    kind = spec.kind
    if kind == Kind.BOOL:
        return value != 0
    if kind == Kind.INT64:
        return wire.to_signed64(value)
    if kind == Kind.INT32:
        return wire.to_signed32(value)
    if kind == Kind.UINT32:
        return value & 0xFFFFFFFF
    if kind == Kind.ENUM:
        enum_cls = spec.ref_type()
        number = wire.to_signed32(value)
        try:
            return enum_cls(number)
        except ValueError:
            return number  # unknown enum value: keep the number (proto3 open enums)
    return value


def _decode_map_entry(spec: Field, payload: bytes) -> tuple[Any, Any]:
    """Key and value of one map entry; missing parts take their defaults."""
    key_spec, val_spec = _map_entry_specs(spec)
    key: Any = _default_of(key_spec)
    value: Any = _default_of(val_spec)
    for raw in wire.iter_fields(payload):
        if raw.number == 1 and _wire_type_fits(key_spec, raw.wire_type):
            key = _decode_value(key_spec, raw.value)
        elif raw.number == 2 and _wire_type_fits(val_spec, raw.wire_type):
            value = _decode_value(val_spec, raw.value)
    return key, value


def _default_of(spec: Field) -> Any:
    """The proto3 default of a single value of this kind."""
    if spec.kind == Kind.STRING:
        return ""
    if spec.kind == Kind.BYTES:
        return b""
    if spec.kind == Kind.BOOL:
        return False
    if spec.kind == Kind.MESSAGE:
        return spec.ref_type()()
    if spec.kind == Kind.ENUM:
        return spec.ref_type()(0)
    return 0


def enum_type(cls: type[IntEnum]) -> type[IntEnum]:
    """Register an IntEnum so that Field.ref can name it."""
    return register(cls)  # type: ignore[return-value]
