"""`dump-llb` JSON (Go encoding/json of the pb structs, solver/pb/json.go shapes) and DOT."""

from __future__ import annotations

import json

import pytest

from solver import llb
from solver.llb import pb
from solver.llb.digest import digest_of
from solver.llb.dump import dump_dot, dump_json, go_quote, to_go_json

AMD64 = llb.Platform("linux", "amd64")
BUSYBOX_DIGEST = "sha256:74ecb5d790c33a213ba00f8f43d62947df1d4dea72f5ec13353a9b943f469f0f"
FINAL_DIGEST = "sha256:fdd990931001ae92f1971673ff21204ef6a5ccc8c1a4dd133d8f0f9bff67a3c2"


def gogoproto_definition() -> pb.Definition:
    src = pb.Op(op=pb.SourceOp(identifier="docker-image://docker.io/library/busybox:latest"))
    final = pb.Op(inputs=[pb.Input(digest=BUSYBOX_DIGEST)])
    return pb.Definition(def_=[src.to_bytes(), final.to_bytes()],
                         metadata={BUSYBOX_DIGEST: pb.OpMetadata(), FINAL_DIGEST: pb.OpMetadata()})


def test_json_lines_match_buildctl_text() -> None:
    assert dump_json(gogoproto_definition()) == (
        '{"Op":{"Op":{"source":{"identifier":"docker-image://docker.io/library/busybox:latest"}}},'
        f'"Digest":"{BUSYBOX_DIGEST}","OpMetadata":{{}}}}\n'
        f'{{"Op":{{"inputs":[{{"digest":"{BUSYBOX_DIGEST}"}}],"Op":{{}}}},'
        f'"Digest":"{FINAL_DIGEST}","OpMetadata":{{}}}}\n')


# The cases of BuildKit's solver/pb/json_test.go (compared as JSON values, as that test does).
@pytest.mark.parametrize("op, expected", [
    (pb.Op(op=pb.ExecOp(meta=pb.Meta(args=["echo", "Hello", "World"]), mounts=[pb.Mount(dest="/", readonly=True)])),
     '{"Op":{"exec":{"meta":{"args":["echo","Hello","World"]},"mounts":[{"dest":"/","readonly":true}]}}}'),
    (pb.Op(op=pb.SourceOp(identifier="local://context"), constraints=pb.WorkerConstraints()),
     '{"Op":{"source":{"identifier":"local://context"}},"constraints":{}}'),
    (pb.Op(op=pb.FileOp(actions=[pb.FileAction(input=1, output=2, action=pb.FileActionCopy(src="/foo", dest="/bar"))])),
     '{"Op":{"file":{"actions":[{"Action":{"copy":{"src":"/foo","dest":"/bar"}},"input":1,"secondaryInput":0,"output":2}]}}}'),
    (pb.Op(op=pb.BuildOp(def_=pb.Definition())), '{"Op":{"build":{"def":{}}}}'),
    (pb.Op(op=pb.MergeOp(inputs=[pb.MergeInput(input=0), pb.MergeInput(input=1)])),
     '{"Op":{"merge":{"inputs":[{}, {"input":1}]}}}'),
    (pb.Op(op=pb.DiffOp(lower=pb.LowerDiffInput(input=0), upper=pb.UpperDiffInput(input=1))),
     '{"Op":{"diff":{"lower":{},"upper":{"input":1}}}}'),
])
def test_op_json_shapes_of_buildkit_json_test(op: pb.Op, expected: str) -> None:
    assert to_go_json(op) == json.loads(expected)


@pytest.mark.parametrize("action, expected", [
    (pb.FileActionMkFile(path="/foo", data=b"Hello, World!"),
     '{"Action":{"mkfile":{"path":"/foo","data":"SGVsbG8sIFdvcmxkIQ=="}},"input":0,"secondaryInput":0,"output":0}'),
    (pb.FileActionMkDir(path="/foo/bar", make_parents=True),
     '{"Action":{"mkdir":{"path":"/foo/bar","makeParents":true}},"input":0,"secondaryInput":0,"output":0}'),
    (pb.FileActionRm(path="/foo", allow_not_found=True),
     '{"Action":{"rm":{"path":"/foo","allowNotFound":true}},"input":0,"secondaryInput":0,"output":0}'),
    (pb.FileActionSymlink(oldpath="/a", newpath="/b"),  # json.go has no symlink case
     '{"Action":{},"input":0,"secondaryInput":0,"output":0}'),
])
def test_file_action_json(action: pb.AnyFileAction, expected: str) -> None:
    assert to_go_json(pb.FileAction(action=action)) == json.loads(expected)


def test_struct_field_order_enums_and_user_opts() -> None:
    mount = pb.Mount(input=-1, dest="/c", output=-1, mount_type=pb.MountType.CACHE,
                     cache_opt=pb.CacheOpt(id="x", sharing=pb.CacheSharingOpt.LOCKED))
    assert json.dumps(to_go_json(mount), separators=(",", ":")) == \
        '{"input":-1,"dest":"/c","output":-1,"mountType":3,"cacheOpt":{"ID":"x","sharing":2}}'
    assert to_go_json(pb.UserOpt(user=pb.NamedUserOpt(name="app", input=1))) == {"User": {"byName": {"name": "app", "input": 1}}}
    assert to_go_json(pb.UserOpt(user=0)) == {"User": {}}
    assert to_go_json(pb.UserOpt(user=5)) == {"User": {"byId": 5}}
    assert to_go_json(pb.Platform(architecture="arm", os="linux", variant="v7")) == \
        {"Architecture": "arm", "OS": "linux", "Variant": "v7"}


def test_json_escapes_html_like_go_and_reports_metadata() -> None:
    st = llb.image("busybox").run(["sh", "-c", "a < b && c > d"], custom_name="x").root()
    lines = dump_json(st.marshal(AMD64)).splitlines()
    assert "\\u003c b \\u0026\\u0026 c \\u003e d" in lines[1]
    objs = [json.loads(line) for line in lines]
    assert [list(o) for o in objs] == [["Op", "Digest", "OpMetadata"]] * 3
    assert objs[1]["OpMetadata"] == {"description": {"llb.customname": "x"},
                                     "caps": {"exec.meta.base": True, "exec.mount.bind": True}}
    assert list(objs[2]["OpMetadata"]["caps"]) == ["constraints", "meta.description", "platform"]
    assert objs[1]["Op"]["Op"]["exec"]["meta"]["removeMountStubsRecursive"] is True


def test_json_digest_is_sha256_of_each_op() -> None:
    defn = llb.merge([llb.image("busybox"), llb.scratch().file(llb.mkfile("/f", 0o644, b"x"))]).marshal(AMD64)
    digests = [json.loads(line)["Digest"] for line in dump_json(defn).splitlines()]
    assert digests == [digest_of(d) for d in defn.def_]


def test_dot_matches_buildctl_format() -> None:
    base = llb.image("busybox")
    st = base.run("ls", mounts=[llb.bind("/src", llb.local("ctx", session="s"), readonly=True)]).root()
    st = st.file(llb.mkdir("/a", 0o755).copy(base, "/bin", "/b").symlink("x", "y").rm("/z").mkfile("/f", 0o644))
    final = llb.diff(base, llb.merge([st, base]))
    defn = final.marshal(AMD64)
    text = dump_dot(defn)
    d = {op: digest_of(op_bytes) for op, op_bytes in zip(["img", "local", "exec", "file", "merge", "diff", "final"],
                                                          defn.def_)}
    assert text == "".join([
        "digraph {\n",
        f'  "{d["img"]}" [label="docker-image://docker.io/library/busybox:latest" shape="ellipse"];\n',
        f'  "{d["local"]}" [label="local://ctx" shape="ellipse"];\n',
        f'  "{d["exec"]}" [label="ls" shape="box"];\n',
        f'  "{d["file"]}" [label="mkdir{{path=/a}},copy{{src=/bin, dest=/b}},symlink{{oldpath=x, newpath=y}},'
        'rm{path=/z},mkfile{path=/f}" shape="note"];\n',
        f'  "{d["merge"]}" [label="merge" shape="invtriangle"];\n',
        f'  "{d["diff"]}" [label="diff" shape="doublecircle"];\n',
        f'  "{d["final"]}" [label="{d["final"]}" shape="plaintext"];\n',
        f'  "{d["img"]}" -> "{d["exec"]}" [label=""];\n',
        f'  "{d["local"]}" -> "{d["exec"]}" [label="/src"];\n',
        f'  "{d["exec"]}" -> "{d["file"]}" [label=""];\n',
        f'  "{d["img"]}" -> "{d["file"]}" [label=""];\n',
        f'  "{d["file"]}" -> "{d["merge"]}" [label=""];\n',
        f'  "{d["img"]}" -> "{d["merge"]}" [label=""];\n',
        f'  "{d["img"]}" -> "{d["diff"]}" [label=""];\n',
        f'  "{d["merge"]}" -> "{d["diff"]}" [label=""];\n',
        f'  "{d["diff"]}" -> "{d["final"]}" [label=""];\n',
        "}\n",
    ])


@pytest.mark.parametrize("text, quoted", [
    ("plain", '"plain"'), ('say "hi"', '"say \\"hi\\""'), ("a\\b", '"a\\\\b"'), ("l1\nl2\t", '"l1\\nl2\\t"'),
    ("\x01\x7f", '"\\x01\\x7f"'), ("héllo → ☃", '"héllo → ☃"'), ("\u200b", '"\\u200b"'), ("\U000e0001", '"\\U000e0001"'),
])
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_invalid_utf8_is_replaced_in_json_and_hex_escaped_in_dot() -> None:
    raw = pb.Op(op=pb.SourceOp(identifier="docker-image://x")).to_bytes().replace(b"//x", b"//\xff")
    defn = pb.Definition(def_=[raw])
    assert '"identifier":"docker-image://\ufffd"' in dump_json(defn)
    assert 'label="docker-image://\\xff"' in dump_dot(defn)
