"""Cache maps and keys, as BuildKit computes them (facts §3): what enters a key and what not."""

from __future__ import annotations

from solver import llb
from solver.llb import pb
from solver.llb.definition import load
from solver.solve import cachekey
from solver.solve.cachekey import DepKey


def _vertex(state):
    graph = load(state.marshal(platform="linux/amd64"))
    return graph.vertices[graph.result.digest].op


def _exec(cmd="echo hi", **kw):
    return _vertex(llb.image("busybox").run(cmd, shell=True, **kw).root())


def test_proxy_env_and_extra_host_ips_do_not_change_the_exec_key():
    plain = cachekey.exec_cache_map(_exec())
    op = _exec()
    op.op.meta.proxy_env = pb.ProxyEnv(http_proxy="http://proxy:3128")
    assert cachekey.exec_cache_map(op).digest == plain.digest
    op2 = _exec()
    op2.op.meta.extra_hosts = [pb.HostIP("h", "1.2.3.4")]
    op3 = _exec()
    op3.op.meta.extra_hosts = [pb.HostIP("h", "5.6.7.8")]
    assert cachekey.exec_cache_map(op2).digest == cachekey.exec_cache_map(op3).digest


def test_command_env_cwd_change_the_exec_key():
    base = cachekey.exec_cache_map(_exec()).digest
    assert cachekey.exec_cache_map(_exec("echo other")).digest != base
    op = _exec()
    op.op.meta.env = op.op.meta.env + ["A=1"]
    assert cachekey.exec_cache_map(op).digest != base
    op = _exec()
    op.op.meta.cwd = "/tmp"
    assert cachekey.exec_cache_map(op).digest != base


def test_exec_deps_root_by_key_readonly_bind_by_content():
    ctx = llb.local("context")
    op = _vertex(llb.image("busybox").run("ls /src", shell=True,
                                          mounts=[llb.bind("/src", ctx, selector="/app", readonly=True)]).root())
    cmap = cachekey.exec_cache_map(op)
    by_input = {i: d for i, d in enumerate(cmap.deps)}
    root_dep = [d for d in by_input.values() if not d.content_based]
    content_dep = [d for d in by_input.values() if d.content_based]
    assert len(root_dep) == 1 and len(content_dep) == 1
    assert content_dep[0].content[0].path == "/app"
    assert content_dep[0].selector == cachekey.sha256_text("/app")


def test_selector_paths_are_cleared_from_the_exec_digest():
    ctx = llb.local("context")

    def with_selector(sel):
        return cachekey.exec_cache_map(_vertex(llb.image("busybox").run(
            "ls", shell=True, mounts=[llb.bind("/src", ctx, selector=sel, readonly=True)]).root()))
    a, b = with_selector("/a"), with_selector("/b")
    assert a.digest == b.digest  # the selector is carried by the dep, not the op digest
    assert a.deps != b.deps


def test_cache_mount_id_cleared_unless_default_form():
    def cm(mount_id, sharing=llb.CacheSharingOpt.SHARED):
        return cachekey.exec_cache_map(_vertex(llb.image("busybox").run(
            "ls", shell=True, mounts=[llb.cache_mount("/cache", mount_id, sharing=sharing)]).root())).digest
    assert cm("one") == cm("two")  # explicit ids do not enter the key
    assert cm("one", llb.CacheSharingOpt.LOCKED) == cm("two", llb.CacheSharingOpt.PRIVATE)
    assert cm("/cache") != cm("one")  # the Dockerfile default form (id == dest) is kept


def test_file_copy_from_context_is_content_based_with_basename_in_digest():
    ctx = llb.local("context")
    op = _vertex(llb.image("busybox").file(llb.copy(ctx, "/app/main.py", "/srv/")))
    cmap = cachekey.file_cache_map(op)
    base_dep, src_dep = cmap.deps
    assert not base_dep.content_based  # the destination base is keyed by its full key
    assert src_dep.content_based and src_dep.content[0].path == "/app/main.py"
    op2 = _vertex(llb.image("busybox").file(llb.copy(ctx, "/other/main.py", "/srv/")))
    assert cachekey.file_cache_map(op2).digest == cmap.digest  # only the base name is in the digest
    assert cachekey.file_cache_map(op2).deps[1].selector != src_dep.selector


def test_combine_uses_checksum_instead_of_the_random_local_key():
    a = cachekey.combine("sha256:op", 0, [DepKey("k", ""), DepKey(None, "s", "sha256:content")])
    b = cachekey.combine("sha256:op", 0, [DepKey("k", ""), DepKey(None, "s", "sha256:content")])
    assert a == b
    assert cachekey.combine("sha256:op", 1, [DepKey("k", "")]) != cachekey.combine("sha256:op", 0, [DepKey("k", "")])
    assert cachekey.combine("sha256:op", 0, [DepKey("k2", "")]) != cachekey.combine("sha256:op", 0, [DepKey("k", "")])
    assert cachekey.is_random(cachekey.combine("random:x", 0, []))


def test_local_source_key_is_random_and_image_key_uses_manifest_digest():
    local = _vertex(llb.local("context"))
    assert cachekey.is_random(cachekey.source_cache_map(local, None).digest)
    img = _vertex(llb.image("busybox"))
    k1 = cachekey.image_source_key("sha256:" + "a" * 64, img.platform)
    k2 = cachekey.image_source_key("sha256:" + "b" * 64, img.platform)
    assert cachekey.source_cache_map(img, k1).digest != cachekey.source_cache_map(img, k2).digest
