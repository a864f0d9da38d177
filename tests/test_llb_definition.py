"""Loading a Definition as BuildKit's `loadLLB` does: terminal op, result edge, rejections."""

from __future__ import annotations

import pytest

from solver import llb
from solver.llb import pb
from solver.llb.definition import InvalidDefinitionError, load, parse
from solver.llb.digest import digest_of

AMD64 = llb.Platform("linux", "amd64")


def definition_of(*ops: pb.Op) -> pb.Definition:
    return pb.Definition(def_=[op.to_bytes() for op in ops])


def source(name: str = "docker-image://docker.io/library/busybox:latest") -> pb.Op:
    return pb.Op(op=pb.SourceOp(identifier=name))


def test_load_indexes_ops_by_digest_with_metadata() -> None:
    st = llb.image("busybox").run("true", custom_name="run it").root()
    defn = st.marshal(AMD64)
    graph = load(defn)
    assert set(graph.vertices) == {digest_of(d) for d in defn.def_[:-1]}
    assert graph.result == llb.Edge(st.digest(AMD64), 0)
    assert graph.terminal.op.inputs[0].digest == st.digest(AMD64)
    assert graph.vertices[st.digest(AMD64)].metadata.description == {"llb.customname": "run it"}
    assert graph.name(st.digest(AMD64)) == "run it"
    assert graph.name(llb.image("busybox").digest(AMD64)) == "docker-image://docker.io/library/busybox:latest"
    assert [v.digest for v in graph.reachable()] == [llb.image("busybox").digest(AMD64), st.digest(AMD64)]


def test_result_edge_keeps_the_output_index() -> None:
    es = llb.image("busybox").run("true", mounts=[llb.bind("/out", llb.scratch())])
    graph = load(es.get_mount("/out").marshal(AMD64))
    assert graph.result.index == 1


def test_non_canonical_ops_are_rehashed() -> None:
    """The daemon re-marshals ops (`recomputeDigests`), so non-canonical bytes get canonical digests."""
    canonical = source().to_bytes()
    attr = bytes.fromhex("12050a01611200")  # attrs {"a": ""}
    body = attr + canonical[2:]  # attrs written before the identifier: valid, not canonical
    unsorted = bytes([0x1A, len(body)]) + body
    src_digest_raw = digest_of(unsorted)
    final = pb.Op(inputs=[pb.Input(digest=src_digest_raw)]).to_bytes()
    graph = load(pb.Definition(def_=[unsorted, final]))
    (vertex,) = graph.vertices.values()
    assert vertex.digest == digest_of(vertex.op.to_bytes())
    assert graph.result.digest == vertex.digest
    assert graph.renamed[src_digest_raw] == vertex.digest != src_digest_raw
    assert vertex.op.op == pb.SourceOp(identifier=source().op.identifier, attrs={"a": ""})


@pytest.mark.parametrize("defn, message", [
    (pb.Definition(), "invalid empty definition"),
    (definition_of(source()), "invalid LLB with 1 vertexes"),
    (definition_of(source(), pb.Op(inputs=[pb.Input(digest=digest_of(source().to_bytes()), index=-1)])),
     "invalid input 0 output index -1"),
    (definition_of(source(), pb.Op()), "invalid LLB with no inputs on last vertex"),
    (definition_of(source(), pb.Op(inputs=[pb.Input(digest="sha256:" + "0" * 64)])), "invalid missing input digest"),
    (definition_of(pb.Op(op=pb.ExecOp(meta=pb.Meta(args=["x"]))),
                   pb.Op(inputs=[pb.Input(digest=digest_of(pb.Op(op=pb.ExecOp(meta=pb.Meta(args=["x"]))).to_bytes()))])),
     "invalid exec op with no mounts"),
    (definition_of(pb.Op(op=pb.FileOp()), pb.Op(inputs=[pb.Input(digest=digest_of(pb.Op(op=pb.FileOp()).to_bytes()))])),
     "invalid file op with no actions"),
])
def test_load_rejects_what_buildkit_rejects(defn: pb.Definition, message: str) -> None:
    with pytest.raises(InvalidDefinitionError, match=message):
        load(defn)


def test_parse_reports_garbage() -> None:
    with pytest.raises(InvalidDefinitionError, match="failed to parse definition"):
        parse(b"\x0a\x05ab")
    assert isinstance(InvalidDefinitionError("x"), llb.InvalidDefinitionError)


def test_deep_chain_in_any_order_loads_without_recursion_limits() -> None:
    st = llb.image("busybox")
    for i in range(1500):
        st = st.run(f"echo {i}").root()
    defn = st.marshal(AMD64)
    reversed_defn = pb.Definition(def_=[*reversed(defn.def_[:-1]), defn.def_[-1]], metadata=defn.metadata)
    graph = load(reversed_defn)
    assert len(graph.vertices) == 1501
    assert graph.result.digest == st.digest(AMD64)
    order = [v.digest for v in graph.reachable()]
    assert order[0] == llb.image("busybox").digest(AMD64) and order[-1] == st.digest(AMD64)


def test_vertex_names_follow_buildkit() -> None:
    base = llb.image("busybox")
    touched = base.run("touch /x").root()
    files = llb.scratch().file(llb.mkdir("/d", 0o755).mkfile("/d/f", 0o644).symlink("/d/f", "/l").rm("/x")
                               .copy(base, "/bin/sh", "/sh"))
    merged = llb.merge([touched, files])
    final = llb.diff(base, merged).with_custom_name("the diff")
    names = load(final.marshal(AMD64)).names()
    assert names[touched.digest(AMD64)] == "touch /x"
    assert names[files.digest(AMD64)] == "mkdir /d, mkfile /d/f, symlink /l -> /d/f, rm /x, copy /bin/sh /sh"
    assert names[merged.digest(AMD64)] == f"merge (touch /x, {names[files.digest(AMD64)]})"
    assert names[final.digest(AMD64)] == "the diff"
    upper_only = load(llb.diff(base, llb.scratch()).marshal(AMD64))
    assert upper_only.name(upper_only.result.digest) == \
        "diff (docker-image://docker.io/library/busybox:latest) -> scratch"
