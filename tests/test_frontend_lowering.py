"""Dockerfile lowering: each instruction and option checked against the marshaled LLB ops,
the image config and the history, following BuildKit's dockerfile2llb."""

from __future__ import annotations

import pytest

from solver.frontend import dockerfile_to_llb
from solver.frontend.image_config import DEFAULT_PATH_ENV
from solver.llb import pb
from solver.llb.digest import digest_of

PATH = f"PATH={DEFAULT_PATH_ENV}"
BUSYBOX = "docker-image://docker.io/library/busybox:latest"


class Graph:
    """The ops of a lowered Dockerfile, decoded, with their metadata."""

    def __init__(self, lowered):
        definition = lowered.definition()
        self.ops: list[tuple[str, pb.Op, dict[str, str]]] = []
        for data in definition.def_[:-1]:
            digest = digest_of(data)
            md = definition.metadata.get(digest)
            self.ops.append((digest, pb.Op.from_bytes(data), dict(md.description) if md else {}))
        self.by_digest = {d: op for d, op, _ in self.ops}

    def of(self, kind):
        return [op for _, op, _ in self.ops if isinstance(op.op, kind)]

    def named(self, fragment):
        found = [(op, md) for _, op, md in self.ops if fragment in md.get("llb.customname", "")]
        assert found, f"no vertex named like {fragment!r}: {[md for _, _, md in self.ops]}"
        return found[0]

    def execs(self):
        return [op.op for op in self.of(pb.ExecOp)]

    def copies(self):
        return [a.action for op in self.of(pb.FileOp) for a in op.op.actions
                if isinstance(a.action, pb.FileActionCopy)]

    def sources(self):
        return [op.op for op in self.of(pb.SourceOp)]

    def input_op(self, op, index):
        return self.by_digest[op.inputs[index].digest]


def lower(text, **kw):
    kw.setdefault("platform", "linux/amd64")
    return dockerfile_to_llb(text, **kw)


def graph(text, **kw):
    return Graph(lower(text, **kw))


def history(lowered):
    return [(h["created_by"], h.get("empty_layer", False)) for h in lowered.image_config["history"]]


# -- FROM ------------------------------------------------------------------------------

def test_from_image_source_op_name_and_description():
    g = graph("FROM busybox\nRUN true\n")
    (src,) = g.of(pb.SourceOp)
    assert src.op.identifier == BUSYBOX
    assert src.platform.architecture == "amd64" and src.platform.os == "linux"
    _, md = g.named("FROM")
    assert md["llb.customname"] == "[1/2] FROM docker.io/library/busybox:latest"
    assert md["com.docker.dockerfile.v1.command"] == "FROM busybox"


def test_from_scratch_has_no_op_and_default_config():
    lowered = lower("FROM scratch\nENV A=1\n")
    assert lowered.state.output is None
    cfg = lowered.image_config
    assert cfg["config"]["Env"] == [PATH, "A=1"]
    assert cfg["config"]["WorkingDir"] == "/"
    assert cfg["os"] == "linux" and cfg["architecture"] == "amd64"


def test_from_platform_flag():
    g = graph("FROM --platform=linux/arm64 busybox\nRUN true\n")
    (src,) = g.of(pb.SourceOp)
    assert src.platform.architecture == "arm64"
    (ex,) = g.of(pb.ExecOp)
    assert ex.platform.architecture == "arm64"


def test_from_expands_global_args():
    g = graph("ARG IMG=busybox\nARG TAG\nFROM ${IMG}:${TAG:-1.36}\nRUN true\n")
    assert g.sources()[0].identifier == "docker-image://docker.io/library/busybox:1.36"
    g = graph("ARG IMG=busybox\nFROM $IMG\nRUN true\n", build_args={"IMG": "alpine"})
    assert g.sources()[0].identifier == "docker-image://docker.io/library/alpine:latest"


def test_resolver_pins_and_base_config_is_used():
    calls = []

    def resolver(ref, platform):
        calls.append((ref, str(platform)))
        return "sha256:" + "a" * 64, {
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/custom/bin", "LANG=C"], "WorkingDir": "/srv", "User": "app",
                       "Cmd": ["sh"], "OnBuild": None},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64]},
            "history": [{"created_by": "base layer"}],
        }

    lowered = lower("FROM busybox\nRUN id\n", resolver=resolver)
    g = Graph(lowered)
    assert calls == [("docker.io/library/busybox:latest", "linux/amd64")]
    assert g.sources()[0].identifier == BUSYBOX + "@sha256:" + "a" * 64
    (ex,) = g.execs()
    assert ex.meta.env == ["PATH=/custom/bin", "LANG=C"]
    assert ex.meta.cwd == "/srv" and ex.meta.user == "app"
    cfg = lowered.image_config
    assert cfg["config"]["Cmd"] == ["sh"]
    assert cfg["rootfs"]["diff_ids"] == ["sha256:" + "b" * 64]
    assert cfg["history"][0]["created_by"] == "base layer"
    assert cfg["history"][1]["created_by"] == "RUN /bin/sh -c id # buildkit"


def test_resolved_image_without_layers_is_scratch():
    lowered = lower("FROM empty\nRUN true\n", resolver=lambda ref, p: ("sha256:" + "c" * 64, {"config": {}}))
    g = Graph(lowered)
    assert g.sources() == []
    (ex,) = g.of(pb.ExecOp)
    assert ex.inputs == [] and ex.op.mounts[0].input == -1


def test_without_resolver_nothing_is_pinned():
    g = graph("FROM alpine:3.19\nRUN true\n")
    assert g.sources()[0].identifier == "docker-image://docker.io/library/alpine:3.19"


# -- RUN -------------------------------------------------------------------------------

def test_run_shell_form_env_cwd_user_and_root_mount():
    g = graph("FROM busybox\nARG V=1\nENV A=x\nWORKDIR /w\nUSER 1000:1000\nRUN echo $A\n")
    (ex,) = g.execs()
    assert ex.meta.args == ["/bin/sh", "-c", "echo $A"]
    assert ex.meta.env == [PATH, "V=1", "A=x"]
    assert ex.meta.cwd == "/w"
    assert ex.meta.user == "1000:1000"
    root = ex.mounts[0]
    assert (root.dest, root.input, root.output, root.readonly) == ("/", 0, 0, False)
    assert ex.network == pb.NetMode.UNSET and ex.security == pb.SecurityMode.SANDBOX


def test_run_exec_form_and_shell_instruction():
    g = graph('FROM busybox\nRUN ["echo", "a b"]\nSHELL ["/bin/bash", "-eu", "-c"]\nRUN echo hi\n')
    first, second = g.execs()
    assert first.meta.args == ["echo", "a b"]
    assert second.meta.args == ["/bin/bash", "-eu", "-c", "echo hi"]


def test_run_name_history_and_description():
    lowered = lower("FROM busybox\nARG X=1\nARG Y\nENV Z=3\nRUN echo $X\n", build_args={"Y": "two"})
    g = Graph(lowered)
    op, md = g.named("RUN")
    assert md["llb.customname"] == "[2/2] RUN echo 1"
    assert md["com.docker.dockerfile.v1.command"] == "RUN echo $X"
    assert history(lowered)[-1] == ("RUN |2 X=1 Y=two /bin/sh -c echo $X # buildkit", False)
    assert ("ARG X=1", True) in history(lowered) and ("ARG Y=two", True) in history(lowered)


def test_args_are_in_exec_env_but_not_in_image_config():
    lowered = lower("FROM busybox\nARG SECRETISH=v\nRUN true\n")
    (ex,) = Graph(lowered).execs()
    assert "SECRETISH=v" in ex.meta.env
    assert "SECRETISH=v" not in lowered.image_config["config"]["Env"]


def test_undeclared_build_arg_is_not_in_env_and_global_arg_needs_redeclaring():
    g = graph("ARG G=global\nFROM busybox\nRUN echo\nARG G\nRUN echo $G\n", build_args={"OTHER": "x"})
    first, second = g.execs()
    assert not any(e.startswith(("OTHER=", "G=")) for e in first.meta.env)
    assert "G=global" in second.meta.env


def test_proxy_args_go_to_proxy_env():
    g = graph("FROM busybox\nRUN true\n", build_args={"HTTP_PROXY": "http://p:3128", "no_proxy": "localhost"})
    (ex,) = g.execs()
    assert ex.meta.proxy_env == pb.ProxyEnv(http_proxy="http://p:3128", no_proxy="localhost")
    assert not any("PROXY" in e.upper() for e in ex.meta.env)


@pytest.mark.parametrize("flag,network,security", [
    ("--network=none", pb.NetMode.NONE, pb.SecurityMode.SANDBOX),
    ("--network=host", pb.NetMode.HOST, pb.SecurityMode.SANDBOX),
    ("--network=default", pb.NetMode.UNSET, pb.SecurityMode.SANDBOX),
    ("--security=insecure", pb.NetMode.UNSET, pb.SecurityMode.INSECURE),
    ("--security=sandbox", pb.NetMode.UNSET, pb.SecurityMode.SANDBOX),
])
def test_run_network_and_security(flag, network, security):
    (ex,) = graph(f"FROM busybox\nRUN {flag} true\n").execs()
    assert ex.network == network and ex.security == security


def _mount(ex, dest):
    return next(m for m in ex.mounts if m.dest == dest)


def test_bind_mount_from_context_readonly_with_selector():
    lowered = lower("FROM busybox\nRUN --mount=type=bind,source=src,target=/mnt true\n")
    g = Graph(lowered)
    (ex,) = g.of(pb.ExecOp)
    m = _mount(ex.op, "/mnt")
    assert m.readonly and m.selector == "/src" and m.output == -1 and m.mount_type == pb.MountType.BIND
    assert g.input_op(ex, m.input).op.identifier == "local://context"
    assert lowered.context_paths == ["src"]


def test_bind_mount_rw_has_no_output_and_from_stage():
    g = graph("FROM busybox AS b\nRUN touch /f\nFROM busybox\nRUN --mount=from=b,target=/b,rw mount-b\n")
    ex_b, ex = g.of(pb.ExecOp)
    m = _mount(ex.op, "/b")
    assert not m.readonly and m.output == -1
    assert ex.inputs[m.input].digest == digest_of(pb.Op.to_bytes(ex_b)) or g.input_op(ex, m.input) == ex_b


def test_cache_mount_defaults_and_options():
    g = graph("FROM busybox\nRUN --mount=type=cache,target=/root/.cache true\n"
              "RUN --mount=type=cache,id=go,target=/go,sharing=locked,ro true\n")
    first, second = g.execs()
    m = _mount(first, "/root/.cache")
    assert m.mount_type == pb.MountType.CACHE and m.input == -1 and m.output == -1
    assert m.cache_opt == pb.CacheOpt(id="//root/.cache", sharing=pb.CacheSharingOpt.SHARED)
    assert not m.readonly
    m = _mount(second, "/go")
    assert m.cache_opt == pb.CacheOpt(id="/go", sharing=pb.CacheSharingOpt.LOCKED)
    assert m.readonly and m.output == -1  # ro on a cache mount is Go's llb.Readonly


def test_cache_mount_uid_gid_mode_adds_mkdir():
    g = graph("FROM busybox\nRUN --mount=type=cache,target=/c,uid=1000,gid=1001,mode=0700 true\n")
    (ex,) = g.of(pb.ExecOp)
    m = _mount(ex.op, "/c")
    assert m.selector == "/cache"
    fop = g.input_op(ex, m.input)
    (action,) = fop.op.actions
    mkdir = action.action
    assert isinstance(mkdir, pb.FileActionMkDir)
    assert (mkdir.path, mkdir.mode) == ("/cache", 0o700)
    assert mkdir.owner == pb.ChownOpt(user=pb.UserOpt(user=1000), group=pb.UserOpt(user=1001))


def test_tmpfs_secret_and_ssh_mounts():
    (ex,) = graph("FROM busybox\nRUN --mount=type=tmpfs,target=/t,size=64m "
                  "--mount=type=secret,id=tok --mount=type=secret,id=key,target=/k,required,mode=0440,uid=5 "
                  "--mount=type=ssh true\n").execs()
    t = _mount(ex, "/t")
    assert t.mount_type == pb.MountType.TMPFS and t.tmpfs_opt.size == 64 * 1024 * 1024
    s = _mount(ex, "/run/secrets/tok")
    assert s.mount_type == pb.MountType.SECRET
    assert s.secret_opt == pb.SecretOpt(id="tok", uid=0, gid=0, mode=0o400, optional=True)
    k = _mount(ex, "/k")
    assert k.secret_opt == pb.SecretOpt(id="key", uid=5, gid=0, mode=0o440, optional=False)
    ssh = next(m for m in ex.mounts if m.mount_type == pb.MountType.SSH)
    assert ssh.ssh_opt.id == "" and ssh.dest == "/run/buildkit/ssh_agent.0" and ssh.ssh_opt.mode == 0o600 and ssh.ssh_opt.optional


def test_relative_mount_target_joins_workdir():
    (ex,) = graph("FROM busybox\nWORKDIR /app\nRUN --mount=type=cache,target=node_modules true\n").execs()
    assert any(m.dest == "/app/node_modules" for m in ex.mounts)


def test_mount_values_are_expanded():
    (ex,) = graph("FROM busybox\nARG D=/data\nRUN --mount=type=cache,target=$D true\n").execs()
    assert any(m.dest == "/data" for m in ex.mounts)


# -- COPY / ADD ------------------------------------------------------------------------

def test_copy_options_follow_buildkit():
    lowered = lower("FROM busybox\nWORKDIR /app\nCOPY a.txt dir/ ./\n", session_id="sess")
    g = Graph(lowered)
    first, second = g.copies()
    for c in (first, second):
        assert c.follow_symlink and c.dir_copy_contents and c.create_dest_path
        assert c.allow_wildcard and c.allow_empty_wildcard
        assert not c.attempt_unpack_docker_compatibility
        assert c.mode == -1 and c.timestamp == -1 and c.owner is None
        assert c.dest == "/app/"
    assert (first.src, second.src) == ("/a.txt", "/dir")
    (fop,) = [op for op in g.of(pb.FileOp) if len(op.op.actions) == 2]
    a1, a2 = fop.op.actions
    assert (a1.input, a1.secondary_input, a1.output) == (0, 1, -1)
    assert (a2.input, a2.secondary_input, a2.output) == (2, 1, 0)
    ctx = next(s for s in g.sources() if s.identifier == "local://context")
    assert ctx.attrs["local.sharedkeyhint"] == "context"
    assert ctx.attrs["local.session"] == "sess"
    assert ctx.attrs["local.followpaths"] == '["a.txt","dir"]'
    _, md = g.named("COPY")
    assert md["llb.customname"] == "[3/3] COPY a.txt dir/ ./"
    assert history(lowered)[-1] == ("COPY a.txt dir/ ./ # buildkit", False)


def test_copy_chown_chmod_exclude_parents():
    g = graph("FROM busybox\nCOPY --chown=1000:50 --chmod=0640 --exclude=*.md --exclude=tmp a /a\n"
              "COPY --chown=app:staff --chmod=u+x,g-w b /b\nCOPY --parents src/./pkg/x.go /out/\n")
    c1, c2, c3 = g.copies()
    assert c1.owner == pb.ChownOpt(user=pb.UserOpt(user=1000), group=pb.UserOpt(user=50))
    assert c1.mode == 0o640 and c1.exclude_patterns == ["*.md", "tmp"]
    assert c2.owner.user.user == pb.NamedUserOpt(name="app", input=0)
    assert c2.owner.group.user == pb.NamedUserOpt(name="staff", input=0)
    assert c2.mode_str == "u+x,g-w" and c2.mode == 0
    assert c3.src == "/src" and c3.include_patterns == ["pkg/x.go"]
    assert c3.required_paths == ["/src/pkg/x.go"]


def test_copy_history_with_flags():
    lowered = lower("FROM busybox\nCOPY --chown=1:2 --chmod=755 a /b\n")
    assert history(lowered)[-1] == ("COPY --chown=1:2 --chmod=755 a /b # buildkit", False)


def test_source_date_epoch_sets_timestamps_and_history_time():
    lowered = lower("FROM busybox\nWORKDIR /w\nCOPY a /b\n", build_args={"SOURCE_DATE_EPOCH": "1700000000"})
    g = Graph(lowered)
    (copy,) = g.copies()
    assert copy.timestamp == 1700000000 * 10**9
    mkdir = next(a.action for op in g.of(pb.FileOp) for a in op.op.actions
                 if isinstance(a.action, pb.FileActionMkDir))
    assert mkdir.timestamp == 1700000000 * 10**9
    assert lowered.image_config["history"][-1]["created"] == "2023-11-14T22:13:20Z"


def test_add_local_attempts_unpack_and_url_uses_http():
    g = graph("FROM busybox\nADD a.tar /x/\nADD https://example.com/pkg/v1.tgz /y/\n"
              "ARG SUM=sha256:" + "d" * 64 + "\nADD --unpack=true --checksum=$SUM https://example.com/ /z/\n")
    local, url, url2 = g.copies()
    assert local.attempt_unpack_docker_compatibility and local.follow_symlink
    assert url.src == "/v1.tgz" and not url.attempt_unpack_docker_compatibility and not url.follow_symlink
    assert url.create_dest_path and not url.allow_wildcard
    assert url2.src == "/__unnamed__" and url2.attempt_unpack_docker_compatibility
    http1 = next(s for s in g.sources() if s.identifier == "https://example.com/pkg/v1.tgz")
    assert http1.attrs == {"http.filename": "v1.tgz"}
    http2 = next(s for s in g.sources() if s.identifier == "https://example.com/")
    assert http2.attrs["http.checksum"] == "sha256:" + "d" * 64


def test_copy_from_stage_index_and_image():
    lowered = lower("FROM busybox AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /a\n"
                    "COPY --from=0 /out /b\nCOPY --from=alpine:3 /etc/os-release /c\n")
    g = Graph(lowered)
    fops = [op for op in g.of(pb.FileOp)]
    run = g.of(pb.ExecOp)[0]
    first = fops[0]
    assert g.input_op(first, first.op.actions[0].secondary_input) == run
    alpine = next(s for s in g.of(pb.SourceOp) if "alpine" in s.op.identifier)
    assert alpine.op.identifier == "docker-image://docker.io/library/alpine:3"
    assert alpine.platform.architecture == "amd64"
    assert lowered.context_paths == []


def test_copy_link_is_a_merge():
    g = graph("FROM busybox\nCOPY --link a /a\n")
    (merge,) = g.of(pb.MergeOp)
    assert [i.input for i in merge.op.inputs] == [0, 1]
    base = g.input_op(merge, 0)
    layer = g.input_op(merge, 1)
    assert base.op.identifier == BUSYBOX
    (action,) = layer.op.actions
    assert action.input == -1 and action.action.src == "/a"
    _, md = g.named("LINK")
    assert md["llb.customname"] == "[2/2] LINK COPY --link a /a"


def test_copy_link_with_chmod_is_not_a_merge():
    g = graph("FROM busybox\nCOPY --link --chmod=600 a /a\n")
    assert g.of(pb.MergeOp) == []


def test_dest_relative_to_workdir_and_trailing_slash():
    g = graph("FROM busybox\nWORKDIR /app\nCOPY a b\nCOPY c .\nCOPY d sub/\nCOPY e /abs\n")
    assert [c.dest for c in g.copies()] == ["/app/b", "/app/", "/app/sub/", "/abs"]


def test_dockerignore_from_context_dir(tmp_path):
    (tmp_path / ".dockerignore").write_text("# comment\n*.log\n!keep.log\nbuild/\n")
    g = graph("FROM busybox\nCOPY . /src\n", context_dir=str(tmp_path))
    ctx = next(s for s in g.sources() if s.identifier == "local://context")
    assert ctx.attrs["local.excludepatterns"] == '["*.log","!keep.log","build"]'
    assert "local.followpaths" not in ctx.attrs


# -- heredocs --------------------------------------------------------------------------

def test_run_heredoc_runs_content_in_shell():
    lowered = lower("FROM busybox\nRUN <<EOF\necho a\necho b\nEOF\n")
    (ex,) = Graph(lowered).execs()
    assert ex.meta.args == ["/bin/sh", "-c", "echo a\necho b\n"]
    _, md = Graph(lowered).named("RUN")
    assert md["llb.customname"] == "[2/2] RUN <<EOF (echo a...)"


def test_run_heredoc_with_shebang_is_mounted_file():
    g = graph("FROM busybox\nRUN <<script.py\n#!/usr/bin/env python3\nprint(1)\nscript.py\n")
    (ex,) = g.of(pb.ExecOp)
    assert ex.op.meta.args == ["/bin/sh", "-c", "/dev/pipes/script.py"]
    m = _mount(ex.op, "/dev/pipes/")
    assert m.readonly and m.selector == "/"
    (action,) = g.input_op(ex, m.input).op.actions
    mkfile = action.action
    assert (mkfile.path, mkfile.mode) == ("/script.py", 0o755)
    assert mkfile.data == b"#!/usr/bin/env python3\nprint(1)\n"


def test_run_several_heredocs_are_rejoined():
    (ex,) = graph("FROM busybox\nRUN <<A cat - <<B\nfirst\nA\nsecond\nB\n").execs()
    assert ex.meta.args == ["/bin/sh", "-c", "<<A cat - <<B\nfirst\nA\nsecond\nB"]


def test_run_heredoc_chomp():
    (ex,) = graph("FROM busybox\nRUN <<-EOF\n\techo a\n\tEOF\n").execs()
    assert ex.meta.args[-1] == "echo a\n"


def test_copy_heredoc_makes_file_and_expands_unless_quoted():
    lowered = lower("FROM busybox\nARG NAME=world\nCOPY <<greet.txt <<'raw.txt' /etc/\nhello $NAME\n"
                    "greet.txt\nhello $NAME\nraw.txt\n")
    g = Graph(lowered)
    mkfiles = {a.action.path: a.action for op in g.of(pb.FileOp) for a in op.op.actions
               if isinstance(a.action, pb.FileActionMkFile)}
    assert mkfiles["/greet.txt"].data == b"hello world\n" and mkfiles["/greet.txt"].mode == 0o644
    assert mkfiles["/raw.txt"].data == b"hello $NAME\n"
    c1, c2 = g.copies()
    assert (c1.src, c1.dest, c1.create_dest_path) == ("/greet.txt", "/etc/", True)
    assert not c1.follow_symlink and c1.mode == -1
    assert history(lowered)[-1] == ("COPY <<greet.txt <<raw.txt /etc/ # buildkit", False)


# -- WORKDIR ---------------------------------------------------------------------------

def test_workdir_mkdir_owner_and_relative_paths():
    lowered = lower("FROM busybox\nWORKDIR /a\nWORKDIR b\nUSER app\nWORKDIR /c\nWORKDIR /\n")
    g = Graph(lowered)
    mkdirs = [op.op.actions[0].action for op in g.of(pb.FileOp)]
    assert [(m.path, m.mode, m.make_parents) for m in mkdirs] == [
        ("/a", 0o755, True), ("/a/b", 0o755, True), ("/c", 0o755, True)]
    assert mkdirs[0].owner is None
    assert mkdirs[2].owner == pb.ChownOpt(user=pb.UserOpt(user=pb.NamedUserOpt(name="app", input=0)))
    assert lowered.image_config["config"]["WorkingDir"] == "/"
    assert history(lowered) == [("WORKDIR /a", False), ("WORKDIR /a/b", False), ("USER app", True),
                                    ("WORKDIR /c", False), ("WORKDIR /", True)]


def test_workdir_absolute_kept_as_written():
    """docker build (BuildKit 0.8's dispatchWorkdir): an absolute WORKDIR stays as written in
    the config, the RUN cwd and history; a relative one is joined and cleaned; a child stage
    keeps the written form (conformance cases workdir-trailing-slash, workdir-odd-paths)."""
    lowered = lower("FROM scratch AS a\nWORKDIR /app/\nWORKDIR sub/\nWORKDIR /x//y/\nRUN pwd\n"
                    "FROM a\nRUN pwd\n")
    assert lowered.image_config["config"]["WorkingDir"] == "/x//y/"
    assert [h for h in history(lowered) if h[0].startswith("WORKDIR")] == [
        ("WORKDIR /app/", False), ("WORKDIR /app/sub", False), ("WORKDIR /x//y/", False)]
    assert [op.op.meta.cwd for op in Graph(lowered).of(pb.ExecOp)] == ["/x//y/", "/x//y/"]


# -- config-only instructions ----------------------------------------------------------

def test_config_instructions_and_history():
    text = """FROM busybox
ENV A=1 B="two words"
ENV C legacy value
LABEL org.example.a="x y" b=2
EXPOSE 80 443/udp 8000-8001
USER nobody
VOLUME /data ["/logs"]
VOLUME ["/v1", "/v2"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m30s --start-interval=2s --retries=3 CMD curl -f http://x
SHELL ["/bin/bash", "-c"]
ENTRYPOINT ["/entry"]
CMD run me
MAINTAINER someone
ONBUILD RUN echo triggered
"""
    lowered = lower(text)
    cfg = lowered.image_config["config"]
    assert cfg["Env"] == [PATH, "A=1", "B=two words", "C=legacy value"]
    assert cfg["Labels"] == {"org.example.a": "x y", "b": "2"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "443/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert cfg["User"] == "nobody"
    assert cfg["Volumes"] == {"/data": {}, "[/logs]": {}, "/v1": {}, "/v2": {}}
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://x"], "Interval": 30 * 10**9,
                                  "Timeout": 5 * 10**9, "StartPeriod": 90 * 10**9, "StartInterval": 2 * 10**9,
                                  "Retries": 3}
    assert cfg["Shell"] == ["/bin/bash", "-c"]
    assert cfg["Entrypoint"] == ["/entry"]
    assert cfg["Cmd"] == ["/bin/bash", "-c", "run me"]
    assert cfg["OnBuild"] == ["RUN echo triggered"]
    assert lowered.image_config["author"] == "someone"
    assert history(lowered) == [
        ('ENV A=1 B=two words', True),
        ("ENV C=legacy value", True),
        ("LABEL org.example.a=x y b=2", True),
        ("EXPOSE [443/udp 80/tcp 8000/tcp 8001/tcp]", True),
        ("USER nobody", True),
        ("VOLUME [/data [/logs]]", True),
        ("VOLUME [/v1 /v2]", True),
        ("STOPSIGNAL SIGTERM", True),
        ("HEALTHCHECK {Test:[CMD-SHELL curl -f http://x] Interval:30s Timeout:5s StartPeriod:1m30s "
         "StartInterval:2s Retries:3}", True),
        ("SHELL [/bin/bash -c]", True),
        ('ENTRYPOINT ["/entry"]', True),
        ('CMD ["/bin/bash" "-c" "run me"]', True),
        ("MAINTAINER someone", True),
    ]
    assert all(h["comment"] == "buildkit.dockerfile.v0" for h in lowered.image_config["history"])
    assert Graph(lowered).of(pb.ExecOp) == []


def test_healthcheck_none_and_exec_form():
    cfg = lower("FROM busybox\nHEALTHCHECK NONE\n").image_config["config"]
    assert cfg["Healthcheck"] == {"Test": ["NONE"]}
    cfg = lower('FROM busybox\nHEALTHCHECK CMD ["/bin/check", "-q"]\n').image_config["config"]
    assert cfg["Healthcheck"] == {"Test": ["CMD", "/bin/check", "-q"]}


def test_entrypoint_clears_inherited_cmd_but_not_own():
    base = lambda r, p: ("sha256:" + "e" * 64, {"config": {"Cmd": ["sh"]},  # noqa: E731
                                                 "rootfs": {"diff_ids": ["sha256:" + "f" * 64]}})
    cfg = lower("FROM img\nENTRYPOINT /run.sh\n", resolver=base).image_config["config"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/run.sh"]
    assert "Cmd" not in cfg
    cfg = lower("FROM img\nCMD [\"x\"]\nENTRYPOINT [\"/e\"]\n", resolver=base).image_config["config"]
    assert cfg["Cmd"] == ["x"]


def test_env_reassignment_moves_key_to_end_in_exec_env():
    (ex,) = graph("FROM busybox\nENV A=1 B=2\nENV A=3\nRUN true\n").execs()
    assert ex.meta.env == [PATH, "B=2", "A=3"]


# -- stages ----------------------------------------------------------------------------

def test_only_reachable_stages_are_lowered_and_target():
    text = ("FROM busybox AS unused\nRUN echo unused\nFROM busybox AS dep\nRUN echo dep\n"
            "FROM busybox AS final\nCOPY --from=dep /x /x\nRUN echo final\n")
    g = graph(text)
    args = [e.meta.args[-1] for e in g.execs()]
    assert args == ["echo dep", "echo final"]
    lowered = lower(text, target="unused")
    assert [e.meta.args[-1] for e in Graph(lowered).execs()] == ["echo unused"]
    assert lowered.target == "unused"


def test_stage_from_stage_inherits_env_workdir_and_names():
    lowered = lower("FROM busybox AS base\nENV A=1\nWORKDIR /w\nFROM base\nRUN pwd\n")
    g = Graph(lowered)
    ex = g.execs()[-1]
    assert ex.meta.env == [PATH, "A=1"] and ex.meta.cwd == "/w"
    _, md = g.named("RUN pwd")
    assert md["llb.customname"] == "[stage-1 1/1] RUN pwd"
    _, md = g.named("WORKDIR")
    assert md["llb.customname"] == "[base 2/2] WORKDIR /w"


def test_onbuild_triggers_run_in_child_stage():
    lowered = lower("FROM busybox AS base\nONBUILD RUN echo trigger\nFROM base\nRUN echo own\n")
    g = Graph(lowered)
    assert [e.meta.args[-1] for e in g.execs()] == ["echo trigger", "echo own"]
    _, md = g.named("trigger")
    assert "ONBUILD RUN echo trigger" in md["llb.customname"]
    assert "OnBuild" not in lowered.image_config["config"]


def test_arg_scope_per_stage_and_global_default():
    g = graph("ARG V=g\nFROM busybox AS a\nARG V\nRUN echo a $V\nFROM busybox\nARG V=local\nRUN echo b $V\n"
              "COPY --from=a /x /x\n")
    a = next(e for e in g.execs() if e.meta.args[-1] == "echo a $V")
    b = next(e for e in g.execs() if e.meta.args[-1] == "echo b $V")
    assert "V=g" in a.meta.env and "V=local" in b.meta.env


def test_vertices_trace_back_to_instructions():
    lowered = lower("FROM busybox\nRUN echo a\nCOPY x /x\n", filename="cells.Dockerfile")
    sources = lowered.vertex_sources()
    traced = {(r.instruction.keyword, r.line, r.filename) for r in sources.values()}
    assert traced == {("FROM", 1, "cells.Dockerfile"), ("RUN", 2, "cells.Dockerfile"),
                      ("COPY", 3, "cells.Dockerfile")}


def test_lowering_is_deterministic_with_session():
    text = "FROM busybox\nCOPY . /src\nRUN make\n"
    one = lower(text, session_id="s1").definition().to_bytes()
    two = lower(text, session_id="s1").definition().to_bytes()
    assert one == two


def test_add_git_source():
    g = graph("FROM busybox\nADD https://github.com/moby/buildkit.git#v0.12.0:docs /src\n"
              "ADD --keep-git-dir git://example.com/repo /r\n")
    idents = sorted(s.identifier for s in g.sources() if s.identifier.startswith("git://"))
    assert idents == ["git://example.com/repo", "git://github.com/moby/buildkit.git#v0.12.0:docs"]
    keep = next(s for s in g.sources() if s.identifier == "git://example.com/repo")
    assert keep.attrs["git.keepgitdir"] == "true"
    c1, c2 = g.copies()
    assert (c1.src, c1.dest, c1.create_dest_path, c1.follow_symlink) == ("/", "/src", True, False)


def test_copy_of_git_ref_is_rejected():
    from solver.errors import DockerfileError
    with pytest.raises(DockerfileError) as err:
        lower("FROM busybox\nCOPY https://github.com/a/b.git /src\n")
    assert "can't be a git ref for COPY" in err.value.message


def test_copy_from_keeps_stage_labels():
    lowered = lower("FROM scratch AS base\nLABEL marker=base\n\nFROM base AS sibling\nLABEL marker=sibling\n\n"
                    "FROM base AS consumer\nCOPY --from=sibling / /\n")
    assert lowered.image_config["config"]["Labels"] == {"marker": "base"}


@pytest.mark.parametrize("text,line", [
    ("FROM busybox AS stage0\nCOPY --from=stage0 f1 /sub/\n", 2),
    ("FROM busybox AS stage0\nCOPY --from=stage2 f1 /sub/\nFROM busybox AS stage1\nCOPY --from=stage0 f2 /sub/\n"
     "FROM busybox AS stage2\nCOPY --from=stage1 f2 /sub/\n", 4),
])
def test_circular_dependencies(text, line):
    from solver.errors import DockerfileError
    with pytest.raises(DockerfileError) as err:
        lower(text)
    assert err.value.message == "circular dependency detected on stage: stage0"
    assert err.value.line == line


def test_healthcheck_history_format():
    lowered = lower("FROM scratch\nHEALTHCHECK --interval=1s --timeout=10s --start-period=3s "
                    '--start-interval=100ms --retries=5 CMD ["bin", "-c", "exit 0"]\n')
    assert lowered.image_config["history"][-1]["created_by"] == (
        "HEALTHCHECK {Test:[CMD bin -c exit 0] Interval:1s Timeout:10s StartPeriod:3s StartInterval:100ms "
        "Retries:5}")


def test_target_name_is_case_insensitive():
    lowered = lower("FROM scratch AS foo\nENV FOO bar\nFROM foo\nCOPY --from=foo f1 /\nCOPY --from=0 f2 /\n",
                    target="Foo")
    assert lowered.target == "foo"


def test_definition_carries_buildkit_source_map():
    text = "FROM busybox\nRUN echo a \\\n  b\nCOPY --link x /x\n"
    lowered = lower(text, filename="my.Dockerfile")
    definition = lowered.definition()
    source = definition.source
    assert [(i.filename, i.data, i.language) for i in source.infos] == [
        ("my.Dockerfile", text.encode(), "Dockerfile")]
    lines = {}
    for digest, locs in source.locations.items():
        name = definition.metadata[digest].description["llb.customname"]
        (loc,) = locs.locations
        lines[name] = (loc.ranges[0].start.line, loc.ranges[0].end.line)
    assert lines == {"[1/3] FROM docker.io/library/busybox:latest": (1, 1), "[2/3] RUN echo a   b": (2, 3),
                     "[3/3] COPY --link x /x": (4, 4), "[3/3] LINK COPY --link x /x": (4, 4)}
    plain = lowered.definition(source_map=False).source
    assert plain is None or not plain.locations


def test_base_config_keeps_oci_fields_and_drops_docker_legacy_ones():
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "docker_version": "20.10", "container": "abc", "container_config": {"Hostname": "x"},
              "config": {"Hostname": "h", "Env": ["A=1"], "Labels": {"l": "v"}, "StopSignal": "SIGINT"},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}}
    cfg = lower("FROM base\nUSER u\n", resolver=lambda r, p: ("sha256:" + "2" * 64, config)).image_config
    assert set(cfg) == {"architecture", "os", "config", "rootfs", "history"}
    assert cfg["config"] == {"User": "u", "Env": ["A=1", PATH], "Labels": {"l": "v"}, "StopSignal": "SIGINT"}


def test_resolver_failure_is_reported_at_the_from_line():
    from solver.errors import DockerfileError

    def resolver(ref, platform):
        raise OSError("registry unreachable")

    with pytest.raises(DockerfileError) as err:
        lower("FROM scratch\nRUN true\nFROM nosuch/image\n", resolver=resolver)
    assert err.value.line == 3
    assert "failed to resolve source metadata for docker.io/nosuch/image:latest" in err.value.message
    assert "registry unreachable" in err.value.message


def test_cache_mount_namespace_build_arg():
    (ex,) = graph("FROM busybox\nRUN --mount=type=cache,target=/c true\n",
                  build_args={"BUILDKIT_CACHE_MOUNT_NS": "proj"}).execs()
    assert _mount(ex, "/c").cache_opt.id == "proj//c"


def test_secret_as_env():
    (ex,) = graph("FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN true\n").execs()
    assert [(s.id, s.name, s.optional) for s in ex.secretenv] == [("tok", "TOKEN", True)]
    assert not any(m.mount_type == pb.MountType.SECRET for m in ex.mounts)


def test_onbuild_triggers_from_base_image_config():
    config = {"config": {"OnBuild": ["RUN echo from-image"]}, "rootfs": {"diff_ids": ["sha256:" + "3" * 64]}}
    lowered = lower("FROM base\nRUN echo own\n", resolver=lambda r, p: ("sha256:" + "4" * 64, config))
    assert [e.meta.args[-1] for e in Graph(lowered).execs()] == ["echo from-image", "echo own"]
    assert "OnBuild" not in lowered.image_config["config"]
    assert lowered.instructions[1].is_onbuild and lowered.instructions[1].line == 1
    names = sorted(md["llb.customname"] for _, _, md in Graph(lowered).ops if "llb.customname" in md)
    assert names == ["[1/2] FROM docker.io/library/base:latest@sha256:" + "4" * 64,  # BuildKit names FROM first
                     "[2/3] ONBUILD RUN echo from-image", "[3/3] RUN echo own"]


# -- expansion within one instruction (BuildKit expands the whole command first) --------

def test_env_pairs_expand_against_the_env_before_the_instruction():
    lowered = lower('FROM scratch\nENV A=1 B=${A}2 D="${A}!"\nENV A=3 E=$A\n')
    env = lowered.image_config["config"]["Env"]
    assert "B=2" in env and "D=!" in env  # A was unset before the first ENV
    assert "A=3" in env and "E=1" in env  # A was 1 before the second ENV
    assert ("ENV A=1 B=2 D=!", True) in history(lowered)


def test_label_pairs_expand_against_the_env_before_the_instruction():
    lowered = lower("FROM scratch\nENV A=1\nLABEL A=x b=${A} c=$b\n")
    assert lowered.image_config["config"]["Labels"] == {"A": "x", "b": "1", "c": ""}


def test_arg_defaults_expand_against_the_env_before_the_instruction():
    # as docker build (dockerd 20.10's BuildKit) does; the differential suite checks it
    (ex,) = graph('FROM busybox\nARG A=1 B=${A}2 C="${A}!"\nARG A=3 D=$A\nRUN true\n').execs()
    assert {"A=3", "B=2", "C=!", "D=1"} <= set(ex.meta.env)


def test_copy_dest_dot_suffix_is_a_path():
    """docker build (BuildKit 0.8): a COPY destination is a directory when it is ".", empty or
    ends with "/"; "x/." names the path x (conformance case copy-dest-dot-forms)."""
    lowered = lower("FROM scratch\nWORKDIR /w\nCOPY a ./x/.\nCOPY b .\nCOPY c sub/\nCOPY d /\n")
    dests = [op.op.actions[0].action.dest for op in Graph(lowered).of(pb.FileOp)
             if isinstance(op.op.actions[0].action, pb.FileActionCopy)]
    assert dests == ["/w/x", "/w/", "/w/sub/", "/"]


def test_implicit_target_keeps_the_base_platform():
    """BuildKit's implicitTarget: without --platform the target stage keeps its base image's
    os/architecture (FROM --platform=linux/arm64 gives an arm64 config, conformance case
    from-platform-final-stage); an explicit platform is written over it."""
    def resolver(ref, platform):
        return "sha256:" + "a" * 64, {
            "architecture": platform.architecture, "os": "linux", "variant": platform.variant,
            "config": {}, "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64]}}

    text = "FROM --platform=linux/arm/v7 busybox\nENV A=1\n"
    implicit = dockerfile_to_llb(text, resolver=resolver)
    assert (implicit.image_config["architecture"], implicit.image_config.get("variant")) == ("arm", "v7")
    explicit = dockerfile_to_llb(text, resolver=resolver, platform="linux/amd64")
    assert (explicit.image_config["architecture"], explicit.image_config.get("variant")) == ("amd64", None)


def test_add_url_ignores_chmod():
    """docker build (BuildKit 0.8): ADD --chmod of a URL keeps the http source's mode (the
    copy has no mode), a local source takes it (conformance case add-url-chmod)."""
    lowered = lower("FROM scratch\nADD --chmod=755 https://example.com/f /u\nADD --chmod=755 f /l\n")
    modes = [op.op.actions[0].action.mode for op in Graph(lowered).of(pb.FileOp)]
    assert modes == [-1, 0o755]
