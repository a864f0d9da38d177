"""State API: Go client defaults, marshal layout, exec and file-action indexes, hand-written bytes.

The file-op cases mirror `client/llb/fileop_test.go` (TestFileMkdirChain, TestFileCopy,
TestFileCopyFromAction); expected bytes are written from the wire rules, not by our encoder.
"""

from __future__ import annotations

import hashlib

import pytest

from solver import llb
from solver.errors import LLBookError
from solver.llb import pb
from solver.llb.platform import Platform
from solver.llb.reference import InvalidReferenceError, normalize

AMD64 = Platform(os="linux", architecture="amd64")
NEG1 = bytes.fromhex("ffffffffffffffffff01")


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def ld(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + uvarint(len(payload)) + payload


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


PLATFORM_AMD64 = ld(0x52, ld(0x0A, b"amd64") + ld(0x12, b"linux"))
NO_CONSTRAINTS = bytes.fromhex("5a00")


def image_op_bytes(name: str) -> bytes:
    """A Go-client image source op with platform linux/amd64 and empty constraints."""
    ident = f"docker-image://docker.io/library/{name}:latest".encode()
    return PLATFORM_AMD64 + NO_CONSTRAINTS + ld(0x1A, ld(0x0A, ident))


def ops_of(defn: pb.Definition) -> list[pb.Op]:
    return [pb.Op.from_bytes(d) for d in defn.def_]


# ----------------------------------------------------------------- sources and marshal layout


def test_image_marshal_matches_go_client_layout() -> None:
    defn = llb.image("busybox").marshal(platform=AMD64)
    assert len(defn.def_) == 2
    assert defn.def_[0] == image_op_bytes("busybox")
    src_digest = sha(image_op_bytes("busybox"))
    final = ld(0x0A, ld(0x0A, src_digest.encode()))
    assert defn.def_[1] == final
    assert defn.head() == src_digest
    assert defn.metadata[src_digest] == pb.OpMetadata(caps={"source.image": True})
    assert defn.metadata[sha(final)] == pb.OpMetadata(caps={"constraints": True, "platform": True})
    assert defn.source == pb.Source()
    assert defn.to_bytes().endswith(bytes.fromhex("1a00"))


def test_scratch_marshals_to_an_empty_definition() -> None:
    defn = llb.scratch().marshal()
    assert defn.def_ == [] and defn.metadata == {}
    assert repr(llb.scratch()) == "<State scratch>"


def test_image_reference_normalisation_and_platform() -> None:
    assert llb.image("busybox").op(AMD64).op.identifier == "docker-image://docker.io/library/busybox:latest"
    digest = "sha256:" + "a" * 64
    assert llb.image(f"busybox@{digest}").op(AMD64).op.identifier == f"docker-image://docker.io/library/busybox@{digest}"
    arm = llb.image("alpine:3.20", platform="linux/arm64")
    assert arm.op(AMD64).platform == pb.Platform(architecture="arm64", os="linux")
    assert arm.platform == Platform("linux", "arm64")
    with pytest.raises(InvalidReferenceError):
        llb.image("Busybox")


@pytest.mark.parametrize("ref, expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("library/busybox:1.36", "docker.io/library/busybox:1.36"),
    ("me/app", "docker.io/me/app:latest"),
    ("index.docker.io/me/app:v1", "docker.io/me/app:v1"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("localhost/app", "localhost/app:latest"),
    ("ghcr.io/org/app:1.0", "ghcr.io/org/app:1.0"),
    ("busybox:1@sha256:" + "b" * 64, "docker.io/library/busybox:1@sha256:" + "b" * 64),
])
def test_reference_normalisation(ref: str, expected: str) -> None:
    assert normalize(ref) == expected


@pytest.mark.parametrize("bad", ["", "UPPER", "a" * 64, "busybox:", "-bad", "a//b"])
def test_invalid_references(bad: str) -> None:
    with pytest.raises(InvalidReferenceError):
        normalize(bad)


@pytest.mark.parametrize("spec, expected", [
    ("linux/amd64", Platform("linux", "amd64")), ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/aarch64", Platform("linux", "arm64")), ("linux/arm64/v8", Platform("linux", "arm64")),
    ("linux/arm", Platform("linux", "arm", "v7")), ("linux/armhf", Platform("linux", "arm", "v7")),
    ("Linux/ARM/6", Platform("linux", "arm", "v6")), ("arm64", Platform("linux", "arm64")),
])
def test_platform_normalisation(spec: str, expected: Platform) -> None:
    assert Platform.parse(spec) == expected


def test_host_platform_uses_go_arch_names() -> None:
    host = Platform.host()
    assert host.os == "linux"
    assert host.architecture in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "loong64"}


def test_local_unique_only_without_session_and_injectable() -> None:
    ctx = llb.local("context")
    op = ctx.op(local_unique_id="abc")
    assert op.op.attrs == {"local.unique": "abc"}
    assert op.platform is None and op.constraints == pb.WorkerConstraints()
    defn = ctx.marshal(local_unique_id="abc")
    assert defn.metadata[defn.head()].caps == {"source.local": True, "source.local.unique": True}
    assert llb.local("context").marshal().head() != llb.local("context").marshal().head()
    with_session = llb.local("context", session="s1", exclude_patterns=["*.pyc", "a<b"], shared_key_hint="context")
    attrs = with_session.op().op.attrs
    assert attrs == {"local.session": "s1", "local.excludepatterns": '["*.pyc","a\\u003cb"]',
                     "local.sharedkeyhint": "context"}


def test_http_source_attrs() -> None:
    op = llb.http("https://example.com/f.tgz", filename="f.tgz", perm=0o644, uid=1, checksum="sha256:00").op()
    assert op.op.identifier == "https://example.com/f.tgz"
    assert op.op.attrs == {"http.filename": "f.tgz", "http.perm": "0644", "http.uid": "1", "http.checksum": "sha256:00"}
    assert op.platform is None


def test_oci_layout_source_has_platform() -> None:
    op = llb.oci_layout("img@sha256:" + "c" * 64, store_id="st").op(AMD64)
    assert op.op.identifier.startswith("oci-layout://")
    assert op.op.attrs == {"oci.store": "st"}
    assert op.platform == pb.Platform(architecture="amd64", os="linux")


# ----------------------------------------------------------------- exec


def test_client_style_exec_bytes_have_oneof_last() -> None:
    st = llb.image("busybox").with_env("A", "1").run(["echo", "hi"]).root()
    img = sha(image_op_bytes("busybox"))
    meta = (ld(0x0A, b"echo") + ld(0x0A, b"hi") + ld(0x12, b"A=1") + ld(0x1A, b"/") + bytes.fromhex("5801"))
    exec_ = ld(0x0A, meta) + ld(0x12, ld(0x1A, b"/"))
    expected = ld(0x0A, ld(0x0A, img.encode())) + PLATFORM_AMD64 + NO_CONSTRAINTS + ld(0x12, exec_)
    defn = st.marshal(platform=AMD64)
    assert defn.def_[1] == expected
    assert st.digest(AMD64) == sha(expected)
    assert defn.metadata[sha(expected)].caps == {"exec.meta.base": True, "exec.mount.bind": True}


def test_exec_mount_indexes_follow_go() -> None:
    base = llb.image("busybox")
    a, b = llb.image("alpine"), llb.image("debian")
    es = base.run("true", mounts=[
        llb.bind("/b", b), llb.bind("/a", a, readonly=True), llb.cache_mount("/c", "cid", llb.CacheSharingOpt.LOCKED),
        llb.tmpfs("/t", size=1024), llb.bind("/z", llb.scratch()), llb.secret("/run/secrets/tok", "tok"),
        llb.ssh(),
    ])
    op = es.op(AMD64)
    ex = op.op
    assert [m.dest for m in ex.mounts] == ["/", "/a", "/b", "/c", "/t", "/z", "/run/secrets/tok",
                                           "/run/buildkit/ssh_agent.0"]
    assert [(m.input, m.output) for m in ex.mounts] == [(0, 0), (1, -1), (2, 1), (-1, -1), (-1, -1), (-1, 2),
                                                         (-1, 0), (-1, 0)]
    assert [i.digest for i in op.inputs] == [base.digest(AMD64), a.digest(AMD64), b.digest(AMD64)]
    assert ex.mounts[1].readonly
    assert ex.mounts[3].mount_type == pb.MountType.CACHE
    assert ex.mounts[3].cache_opt == pb.CacheOpt(id="cid", sharing=pb.CacheSharingOpt.LOCKED)
    assert ex.mounts[4].tmpfs_opt == pb.TmpfsOpt(size=1024)
    assert ex.mounts[6].secret_opt == pb.SecretOpt(id="tok", mode=0o400)
    assert ex.mounts[7].ssh_opt == pb.SSHOpt(mode=0o600)
    assert "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0" in ex.meta.env
    assert es.root().output.index == 0
    assert es.get_mount("/b").output.index == 1
    assert es.get_mount("/z").output.index == 2
    assert es.get_mount("/a").digest(AMD64) == a.digest(AMD64)
    for no_output in ("/c", "/t"):
        with pytest.raises(LLBookError):
            es.get_mount(no_output)
    caps = es.marshal(AMD64).metadata[es.digest(AMD64)].caps
    assert {"exec.mount.cache", "exec.mount.tmpfs", "exec.mount.tmpfs.size", "exec.mount.secret",
            "exec.mount.ssh", "exec.mount.bind"} <= set(caps)


def test_same_input_is_shared_between_mounts() -> None:
    base = llb.image("busybox")
    op = base.run("true", mounts=[llb.bind("/x", base, readonly=True)]).op(AMD64)
    assert len(op.inputs) == 1
    assert [m.input for m in op.op.mounts] == [0, 0]


def test_state_values_feed_exec_meta() -> None:
    st = (llb.image("busybox").with_env("A", "1").with_env("B", "2").with_env("A", "3")
          .with_cwd("/app").with_cwd("sub").with_user("nobody").with_hostname("h"))
    assert st.env_list() == ["B=2", "A=3"]
    assert st.cwd == "/app/sub"
    es = st.run("make all", env={"C": "4"}, network=llb.NetMode.NONE, valid_exit_codes=[0, 1],
                proxy_env={"http_proxy": "http://p"}, extra_hosts=[("db", "10.0.0.2")])
    meta = es.op(AMD64).op.meta
    assert meta.args == ["make", "all"]
    assert meta.env == ["B=2", "A=3", "C=4"]
    assert (meta.cwd, meta.user, meta.hostname) == ("/app/sub", "nobody", "h")
    assert meta.remove_mount_stubs_recursive
    assert meta.valid_exit_codes == [0, 1]
    assert meta.proxy_env == pb.ProxyEnv(http_proxy="http://p")
    assert meta.extra_hosts == [pb.HostIP(host="db", ip="10.0.0.2")]
    assert es.op(AMD64).op.network == llb.NetMode.NONE
    assert es.root().env_list() == ["B=2", "A=3"]  # run options do not leak into the result state
    assert llb.image("busybox").run("echo hi", shell=True).op().op.meta.args == ["/bin/sh", "-c", "echo hi"]


def test_exec_platform_comes_from_state_then_marshal() -> None:
    st = llb.image("busybox").with_platform("linux/arm64").run("true").root()
    defn = st.marshal(platform=AMD64)
    ops = ops_of(defn)
    assert ops[0].platform.architecture == "amd64"  # the image has no platform of its own
    assert ops[1].platform.architecture == "arm64"
    other = llb.image("busybox", platform="linux/arm/v7").run("true").root()
    assert ops_of(other.marshal(platform=AMD64))[1].platform == pb.Platform(architecture="arm", os="linux",
                                                                             variant="v7")


def test_exec_without_args_or_with_clashing_mounts_is_rejected() -> None:
    with pytest.raises(LLBookError):
        llb.image("busybox").run([])
    with pytest.raises(LLBookError, match="duplicate mount targets"):
        llb.image("busybox").run("true", mounts=[llb.tmpfs("/t"), llb.tmpfs("/t")])
    with pytest.raises(LLBookError):
        llb.image("busybox").run("true", mounts=[llb.bind("/", llb.scratch())])


# ----------------------------------------------------------------- file actions (fileop_test.go)


def test_file_mkdir_chain() -> None:
    st = llb.image("foo").with_cwd("/etc").file(
        llb.mkdir("/foo", 0o700).mkdir("bar", 0o600, make_parents=True).mkdir("bar/baz", 0o701))
    defn = st.marshal(platform=AMD64)
    assert len(defn.def_) == 3
    foo = image_op_bytes("foo")
    assert defn.def_[0] == foo
    ts = b"\x28" + NEG1
    act0 = b"\x10" + NEG1 + b"\x18" + NEG1 + ld(0x32, ld(0x0A, b"/foo") + bytes.fromhex("10c003") + ts)
    act1 = (bytes.fromhex("0801") + b"\x10" + NEG1 + b"\x18" + NEG1
            + ld(0x32, ld(0x0A, b"/etc/bar") + bytes.fromhex("1080031801") + ts))
    act2 = bytes.fromhex("0802") + b"\x10" + NEG1 + ld(0x32, ld(0x0A, b"/etc/bar/baz") + bytes.fromhex("10c103") + ts)
    file_op = (ld(0x0A, ld(0x0A, sha(foo).encode())) + NO_CONSTRAINTS
               + ld(0x22, ld(0x12, act0) + ld(0x12, act1) + ld(0x12, act2)))
    assert defn.def_[1] == file_op
    actions = ops_of(defn)[1].op.actions
    assert [(a.input, a.secondary_input, a.output) for a in actions] == [(0, -1, -1), (1, -1, -1), (2, -1, 0)]
    assert defn.head() == sha(file_op)
    assert defn.metadata[sha(file_op)].caps == {"file.base": True}


def test_file_copy() -> None:
    st = llb.image("foo").with_cwd("/tmp").file(llb.copy(llb.image("bar").with_cwd("/etc"), "foo", "bar"))
    defn = st.marshal(platform=AMD64)
    ops = ops_of(defn)
    assert len(ops) == 4
    assert [o.kind for o in ops] == ["source", "source", "file", ""]
    assert ops[0].op.identifier == "docker-image://docker.io/library/foo:latest"
    assert ops[1].op.identifier == "docker-image://docker.io/library/bar:latest"
    copy = ld(0x0A, b"/etc/foo") + ld(0x12, b"/tmp/bar") + b"\x20" + NEG1 + b"\x58" + NEG1
    action = bytes.fromhex("1001") + ld(0x22, copy)  # input 0 omitted, secondaryInput 1, output 0 omitted
    expected = (ld(0x0A, ld(0x0A, sha(image_op_bytes("foo")).encode()))
                + ld(0x0A, ld(0x0A, sha(image_op_bytes("bar")).encode()))
                + NO_CONSTRAINTS + ld(0x22, ld(0x12, action)))
    assert defn.def_[2] == expected
    a = ops[2].op.actions[0]
    assert (a.input, a.secondary_input, a.output) == (0, 1, 0)
    assert (a.action.src, a.action.dest, a.action.timestamp, a.action.mode) == ("/etc/foo", "/tmp/bar", -1, -1)


def test_file_copy_from_action() -> None:
    st = llb.image("foo").with_cwd("/out").file(
        llb.copy(llb.mkdir("foo", 0o700).mkfile("foo/bar", 0o600, b"dt").with_state(llb.scratch().with_cwd("/tmp")),
                 "foo/bar", "baz"))
    defn = st.marshal(platform=AMD64)
    ops = ops_of(defn)
    assert len(ops) == 3
    f = ops[1]
    assert len(f.inputs) == 1 and f.inputs[0].digest == sha(image_op_bytes("foo"))
    acts = f.op.actions
    assert [(a.input, a.secondary_input, a.output) for a in acts] == [(-1, -1, -1), (1, -1, -1), (0, 2, 0)]
    assert (acts[0].action.path, acts[0].action.mode) == ("/tmp/foo", 0o700)
    assert (acts[1].action.path, acts[1].action.mode, acts[1].action.data) == ("/tmp/foo/bar", 0o600, b"dt")
    assert (acts[2].action.src, acts[2].action.dest) == ("/tmp/foo/bar", "/out/baz")


def test_copy_options_and_owner() -> None:
    src = llb.local("context", session="s")
    action = llb.copy(src, "/app", "/dst/", mode="u+x", follow_symlinks=True, copy_dir_contents=True,
                      include_patterns=["a"], exclude_patterns=["b"], required_paths=["c"], attempt_unpack=True,
                      create_dest_path=True, allow_wildcard=True, allow_empty_wildcard=True, owner="app:0",
                      created=1_000_000_000, always_replace_existing_dest_paths=True)
    op = llb.scratch().file(action).op()
    a = op.op.actions[0]
    assert (a.input, a.secondary_input) == (-1, 0)
    c = a.action
    assert c == pb.FileActionCopy(
        src="/app", dest="/dst/", owner=pb.ChownOpt(user=pb.UserOpt(user=pb.NamedUserOpt(name="app", input=-1)),
                                                   group=pb.UserOpt(user=0)),
        mode=0, mode_str="u+x", follow_symlink=True, dir_copy_contents=True, attempt_unpack_docker_compatibility=True,
        create_dest_path=True, allow_wildcard=True, allow_empty_wildcard=True, timestamp=1_000_000_000,
        include_patterns=["a"], exclude_patterns=["b"], always_replace_existing_dest_paths=True,
        required_paths=["c"])
    numeric = llb.image("busybox").file(llb.mkdir("/d", 0o755, owner=(1000, 1000))).op(AMD64)
    assert numeric.op.actions[0].action.owner == pb.ChownOpt(user=pb.UserOpt(user=1000), group=pb.UserOpt(user=1000))


def test_rm_symlink_and_paths() -> None:
    st = llb.image("busybox").with_cwd("/w").file(
        llb.rm("old", allow_not_found=True).symlink("/w/a", "b").mkfile("x/", 0o644, "hi"))
    acts = st.op(AMD64).op.actions
    assert acts[0].action == pb.FileActionRm(path="/w/old", allow_not_found=True)
    assert acts[1].action == pb.FileActionSymlink(oldpath="/w/a", newpath="b", timestamp=-1)
    assert acts[2].action.path == "/w/x"
    assert [(a.input, a.output) for a in acts] == [(0, -1), (1, -1), (2, 0)]


# ----------------------------------------------------------------- merge, diff, metadata


def test_merge_and_diff() -> None:
    base = llb.image("busybox")
    top = base.run("touch /x").root()
    other = llb.scratch().file(llb.mkfile("/f", 0o644, b"x"))
    merged = llb.merge([base, llb.scratch(), other])
    mop = merged.op(AMD64)
    assert mop.kind == "merge" and mop.platform is None
    assert [m.input for m in mop.op.inputs] == [0, 1]
    assert [i.digest for i in mop.inputs] == [base.digest(AMD64), other.digest(AMD64)]
    assert llb.merge([llb.scratch(), base]) is base
    assert llb.merge([llb.scratch()]).output is None
    dop = llb.diff(base, top).op(AMD64)
    assert dop.op == pb.DiffOp(lower=pb.LowerDiffInput(input=0), upper=pb.UpperDiffInput(input=1))
    assert llb.diff(base, llb.scratch()).op(AMD64).op.upper.input == -1
    assert llb.diff(llb.scratch(), top) is top
    defn = llb.merge([top, other]).marshal(AMD64)
    assert defn.metadata[defn.head()].caps == {"mergeop": True}


def test_identical_vertices_are_emitted_once() -> None:
    defn = llb.merge([llb.image("busybox"), llb.image("busybox").run("true").root()]).marshal(AMD64)
    digests = [sha(d) for d in defn.def_]
    assert len(digests) == len(set(digests)) == 4  # busybox, exec, merge, final


def test_custom_name_description_and_ignore_cache_go_to_metadata() -> None:
    st = (llb.image("busybox", custom_name="[1/2] FROM busybox")
          .run("true", custom_name="[2/2] RUN true", ignore_cache=True,
               description={"com.docker.dockerfile.v1.command": "RUN true"}).root())
    defn = st.marshal(AMD64)
    md = defn.metadata[st.digest(AMD64)]
    assert md.ignore_cache
    assert md.description == {"llb.customname": "[2/2] RUN true", "com.docker.dockerfile.v1.command": "RUN true"}
    final_caps = defn.metadata[llb.digest_of(defn.def_[-1])].caps
    assert final_caps == {"constraints": True, "platform": True, "meta.ignorecache": True, "meta.description": True}
    renamed = llb.image("busybox").with_custom_name("base")
    assert renamed.marshal(AMD64).metadata[renamed.digest(AMD64)].description == {"llb.customname": "base"}
    assert renamed.digest(AMD64) == llb.image("busybox").digest(AMD64)


def test_worker_constraints_are_written() -> None:
    op = pb.Op.from_bytes(llb.image("busybox").marshal(AMD64, worker_constraints=["a==b"]).def_[0])
    assert op.constraints == pb.WorkerConstraints(filter=["a==b"])


def test_repr_shows_op_and_digest() -> None:
    st = llb.image("busybox").run("echo hi", shell=True).root()
    text = repr(st)
    assert text.startswith("<State exec sha256:") and "'/bin/sh -c echo hi'" in text
    assert st.digest()[:19] in text


def test_marshal_is_deterministic_and_loadable() -> None:
    def build() -> llb.State:
        base = llb.image("busybox")
        return llb.merge([base.run("a").root(), base.file(llb.mkdir("/x", 0o755))])

    one, two = build().marshal(AMD64), build().marshal(AMD64)
    assert one.to_bytes() == two.to_bytes()
    graph = llb.load(pb.Definition.from_bytes(one.to_bytes()))
    assert graph.result.digest == one.head()
    assert [v.op.kind for v in graph.reachable()] == ["source", "exec", "file", "merge"]


def test_git_source_identifier_and_attrs() -> None:
    op = llb.git("https://github.com/moby/buildkit.git", "v0.11.6", subdir="docs").op()
    assert op.op.identifier == "git://github.com/moby/buildkit.git#v0.11.6:docs"
    assert op.op.attrs == {"git.fullurl": "https://github.com/moby/buildkit.git",
                           "git.authtokensecret": "GIT_AUTH_TOKEN", "git.authheadersecret": "GIT_AUTH_HEADER"}
    assert op.platform is None
    assert llb.git("github.com/moby/buildkit.git").op().op.identifier == "git://github.com/moby/buildkit.git"


def test_exec_options_caps_and_readonly_root() -> None:
    base = llb.image("busybox")
    es = (base.with_ulimit("nofile", 1024, 2048).with_cgroup_parent("cg")
          .run("true", network=llb.NetMode.HOST, security=llb.SecurityMode.INSECURE, readonly_rootfs=True,
               mounts=[llb.bind("/s", base, selector="/etc"), llb.secret(None, "tok", env="TOKEN")]))
    out = es.get_mount("/s")  # with a readonly root the exec is reached through its other outputs
    assert out.output.index == 0
    op = out.op(AMD64)
    ex = op.op
    assert ex.network == llb.NetMode.HOST and ex.security == llb.SecurityMode.INSECURE
    assert ex.meta.ulimit == [pb.Ulimit(name="nofile", soft=1024, hard=2048)]
    assert ex.meta.cgroup_parent == "cg"
    assert [(m.dest, m.readonly, m.output, m.selector) for m in ex.mounts] == [("/", True, -1, ""), ("/s", False, 0, "/etc")]
    assert ex.secretenv == [pb.SecretEnv(id="tok", name="TOKEN")]
    assert es.root().digest(AMD64) == base.digest(AMD64)  # a readonly root has no new output
    caps = set(out.marshal(AMD64).metadata[out.digest(AMD64)].caps)
    assert {"exec.meta.network", "exec.meta.security", "exec.meta.ulimit", "exec.mount.selector",
            "exec.mount.secret", "exec.secretenv"} <= caps


def test_exec_state_chains_and_renames() -> None:
    es = llb.image("busybox").run("a")
    chained = es.run("b")  # an ExecState is a State: running on it runs on its root
    assert chained.op(AMD64).inputs[0].digest == es.digest(AMD64)
    named = es.with_custom_name("step a")
    assert type(named) is llb.State
    assert named.marshal(AMD64).metadata[named.digest(AMD64)].description == {"llb.customname": "step a"}
    assert named.digest(AMD64) == es.digest(AMD64)


def test_platform_objects_are_used_as_given_strings_are_normalised() -> None:
    """Go normalises parsed platform strings and state platforms, not `llb.Platform` constraint values."""
    given = llb.image("busybox", platform=Platform("linux", "arm64", "v8")).op(AMD64)
    assert given.platform == pb.Platform(architecture="arm64", os="linux", variant="v8")
    parsed = llb.image("busybox", platform="linux/arm64/v8").op(AMD64)
    assert parsed.platform == pb.Platform(architecture="arm64", os="linux")
    state = llb.image("busybox").with_platform(Platform("linux", "arm64", "v8")).run("true").op(AMD64)
    assert state.platform == pb.Platform(architecture="arm64", os="linux")
