"""`buildctl debug dump-llb` output: JSON lines and graphviz DOT.

JSON follows `cmd/buildctl/debug/dumpllb.go`: one `{"Op":…,"Digest":…,"OpMetadata":…}`
object per def entry, each op encoded by Go's `encoding/json` over the generated structs
(omitempty everywhere, enums as numbers, bytes as base64) with the custom shapes of
`solver/pb/json.go` for Op, FileAction and UserOpt. DOT uses buildctl's labels and
shapes: source ellipse, exec box, file note, build box3d, merge invtriangle,
diff doublecircle, anything else plaintext.
"""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass
from typing import Any

from solver.llb import gojson, pb
from solver.llb.codec import Field, Kind, Message
from solver.llb.digest import digest_of


@dataclass
class DumpedOp:
    """One def entry as buildctl loads it: parsed op, digest of its bytes, metadata."""

    op: pb.Op
    digest: str
    metadata: pb.OpMetadata


def load_ops(defn: pb.Definition) -> list[DumpedOp]:
    """Every def entry in order, with `def.Metadata[digest]` (empty when absent)."""
    out = []
    for dt in defn.def_:
        dgst = digest_of(dt)
        out.append(DumpedOp(pb.Op.from_bytes(dt), dgst, defn.metadata.get(dgst) or pb.OpMetadata()))
    return out


# ----------------------------------------------------------------- JSON


def to_go_json(msg: Message) -> dict[str, Any]:
    """The value Go's encoding/json produces for a generated message struct."""
    if isinstance(msg, pb.Op):
        return _op_json(msg)
    if isinstance(msg, pb.FileAction):
        return _file_action_json(msg)
    if isinstance(msg, pb.UserOpt):
        return _user_opt_json(msg)
    out: dict[str, Any] = {}
    for spec in msg.FIELDS:
        if spec.oneof:
            continue  # the only oneofs in ops.proto have custom JSON above
        value = getattr(msg, spec.attr)
        if _omit(spec, value):
            continue
        out[spec.proto_name] = _field_json(spec, value)
    return out


def _omit(spec: Field, value: Any) -> bool:
    """Go's omitempty: zero scalars, nil pointers, empty slices and maps."""
    if spec.kind == Kind.MESSAGE and not spec.repeated and not spec.is_map:
        return value is None
    if spec.repeated or spec.is_map or spec.kind in (Kind.STRING, Kind.BYTES):
        return len(value) == 0
    return not value


def _field_json(spec: Field, value: Any) -> Any:
    if spec.is_map:
        return {k: _scalar_json(spec, v) for k, v in sorted(value.items(), key=lambda kv: kv[0].encode())}
    if spec.repeated:
        return [_scalar_json(spec, v) for v in value]
    return _scalar_json(spec, value)


def _scalar_json(spec: Field, value: Any) -> Any:
    if spec.kind == Kind.MESSAGE:
        return to_go_json(value) if value is not None else None
    if spec.kind == Kind.BYTES:
        return base64.b64encode(value).decode("ascii")
    if spec.kind == Kind.BOOL:
        return bool(value)
    if spec.kind == Kind.STRING:
        return value
    return int(value)


def _op_json(op: pb.Op) -> dict[str, Any]:
    """`solver/pb/json.go` jsonOp: inputs, Op{<kind>: …}, platform, constraints."""
    out: dict[str, Any] = {}
    if op.inputs:
        out["inputs"] = [to_go_json(i) for i in op.inputs]
    out["Op"] = {op.kind: to_go_json(op.op)} if op.op is not None else {}
    if op.platform is not None:
        out["platform"] = to_go_json(op.platform)
    if op.constraints is not None:
        out["constraints"] = to_go_json(op.constraints)
    return out


_FILE_ACTION_JSON_KINDS = {pb.FileActionCopy: "copy", pb.FileActionMkFile: "mkfile",
                           pb.FileActionMkDir: "mkdir", pb.FileActionRm: "rm"}  # json.go has no symlink


def _file_action_json(action: pb.FileAction) -> dict[str, Any]:
    kind = _FILE_ACTION_JSON_KINDS.get(type(action.action))
    inner = {kind: to_go_json(action.action)} if kind and action.action is not None else {}
    return {"input": action.input, "secondaryInput": action.secondary_input, "output": action.output,
            "Action": inner}


def _user_opt_json(opt: pb.UserOpt) -> dict[str, Any]:
    if isinstance(opt.user, pb.NamedUserOpt):
        return {"User": {"byName": to_go_json(opt.user)}}
    return {"User": {"byId": opt.user}} if opt.user else {"User": {}}


def dump_json(defn: pb.Definition) -> str:
    """One JSON object per op and newline, like `buildctl debug dump-llb`."""
    lines = []
    for entry in load_ops(defn):
        obj = {"Op": to_go_json(entry.op), "Digest": entry.digest, "OpMetadata": to_go_json(entry.metadata)}
        lines.append(gojson.dumps(obj) + "\n")
    return "".join(lines)


# ----------------------------------------------------------------- DOT


def go_quote(text: str) -> str:
    """Go's `strconv.Quote` (what `%q` prints)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == " " or (ch.isprintable() and unicodedata.category(ch)[0] in "LMNPS"):
            out.append(ch)
        elif ch in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # an invalid UTF-8 byte kept by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def dot_attrs(entry: DumpedOp) -> tuple[str, str]:
    """Label and shape of a vertex, as buildctl's `attr`."""
    inner = entry.op.op
    if isinstance(inner, pb.SourceOp):
        return inner.identifier, "ellipse"
    if isinstance(inner, pb.ExecOp):
        return " ".join(inner.meta.args if inner.meta else []), "box"
    if isinstance(inner, pb.BuildOp):
        return "build", "box3d"
    if isinstance(inner, pb.MergeOp):
        return "merge", "invtriangle"
    if isinstance(inner, pb.DiffOp):
        return "diff", "doublecircle"
    if isinstance(inner, pb.FileOp):
        return ",".join(_file_action_label(a) for a in inner.actions), "note"
    return entry.digest, "plaintext"


def _file_action_label(action: pb.FileAction) -> str:
    a = action.action
    if isinstance(a, pb.FileActionCopy):
        return f"copy{{src={a.src}, dest={a.dest}}}"
    if isinstance(a, pb.FileActionMkFile):
        return f"mkfile{{path={a.path}}}"
    if isinstance(a, pb.FileActionMkDir):
        return f"mkdir{{path={a.path}}}"
    if isinstance(a, pb.FileActionRm):
        return f"rm{{path={a.path}}}"
    if isinstance(a, pb.FileActionSymlink):
        return f"symlink{{oldpath={a.oldpath}, newpath={a.newpath}}}"
    return ""


def edge_label(op: pb.Op, input_index: int) -> str:
    """Exec edges are labelled with the mount dest (the root mount gets no label)."""
    label = ""
    if isinstance(op.op, pb.ExecOp):
        for m in op.op.mounts:
            if m.input == input_index and m.dest != pb.ROOT_MOUNT:
                label = m.dest
    return label


def dump_dot(defn: pb.Definition) -> str:
    """The graph in DOT, byte for byte as `buildctl debug dump-llb --dot`."""
    entries = load_ops(defn)
    lines = ["digraph {"]
    for entry in entries:
        label, shape = dot_attrs(entry)
        lines.append(f"  {go_quote(entry.digest)} [label={go_quote(label)} shape={go_quote(shape)}];")
    for entry in entries:
        for i, inp in enumerate(entry.op.inputs):
            lines.append(f"  {go_quote(inp.digest)} -> {go_quote(entry.digest)} "
                         f"[label={go_quote(edge_label(entry.op, i))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
