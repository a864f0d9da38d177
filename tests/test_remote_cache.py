"""Cache export and import in BuildKit's formats (solver/remotecache): the cache config
model, option parsing, link-graph matching, key vectors taken from dockerd 20.10's own
inline cache, and end to end through `llbook build` with the loopback registry (mode=max,
mode=min, local layouts, a corrupted layout) and with dockerd both ways (inline cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from fixtures.progress_text import step_states
from solver.llb import pb
from solver.remotecache.graph import LinkGraph
from solver.remotecache.options import CacheOptionError, parse_cache_spec
from solver.remotecache.spec import CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, parse_config, sort_config
from solver.solve import cachekey, remote
from solver.solve.cachekey import DepKey

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[1]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ----------------------------------------------------------------------------- units


def test_options_follow_buildx_syntax() -> None:
    bare = parse_cache_spec("reg.example/app:cache", exporting=False)
    assert (bare.type, bare.ref, bare.bare) == ("registry", "reg.example/app:cache", True)
    spec = parse_cache_spec("type=registry,ref=r/x:c,mode=max,oci-mediatypes=false", exporting=True)
    assert (spec.mode, spec.oci_mediatypes) == ("max", False)
    assert parse_cache_spec("type=local,src=/tmp/c", exporting=False).src == "/tmp/c"
    for bad, exporting in (("type=local", True), ("type=registry", True), ("type=inline,mode=max", True),
                           ("type=s3,ref=x", False), ("type=registry,ref=x,mode=all", True), ("x", True)):
        with pytest.raises(CacheOptionError):
            parse_cache_spec(bad, exporting=exporting)


def test_cache_config_json_round_trips_and_sorts_like_buildkit() -> None:
    config = CacheConfig(
        [CacheLayer("sha256:" + "b" * 64, -1), CacheLayer("sha256:" + "a" * 64, 0)],
        [CacheRecord("sha256:" + "2" * 64, [[CacheInput(1, "sha256:" + "5" * 64)]], [CacheResult(1, "2026-01-01T00:00:00Z")]),
         CacheRecord("sha256:" + "1" * 64)])
    data = json.loads(config.to_bytes())
    assert data["layers"][0] == {"blob": "sha256:" + "b" * 64, "parent": -1}  # parent 0 is omitted, -1 kept
    assert data["records"][0]["inputs"] == [[{"selector": "sha256:" + "5" * 64, "link": 1}]]
    assert parse_config(config.to_bytes()).to_json() == data
    ordered = sort_config(config)
    assert [l.blob[7] for l in ordered.layers] == ["a", "b"] and ordered.layers[0].parent == 1
    assert [r.digest[7] for r in ordered.records] == ["1", "2"]
    assert ordered.records[1].inputs[0][0].link == 0 and ordered.records[1].results[0].layer == 0
    assert ordered.chain(0) == [1, 0]


def _root_exec(command: str) -> pb.Op:
    meta = pb.Meta(args=["/bin/sh", "-c", command], env=[PATH_ENV], cwd="/", remove_mount_stubs_recursive=True)
    exec_op = pb.ExecOp(meta=meta, mounts=[pb.Mount(input=0, dest="/", output=0)], network=pb.NetMode.HOST)
    return pb.Op(inputs=[pb.Input("sha256:" + "0" * 64)], op=exec_op,
                 platform=pb.Platform(architecture="amd64", os="linux"))


def test_keys_match_the_records_dockerd_20_10_wrote() -> None:
    """Record digests read from the inline cache `docker build --network=host` wrote for
    `RUN echo one > /one` and `COPY a.txt /a.txt` (BuildKit v0.8 in dockerd 20.10)."""
    run = cachekey.op_cache_map(_root_exec("echo one > /one"))
    assert cachekey.root_key(run.compat[0], 0) == \
        "sha256:31ff82ef3f8b4ddbd63017f108eb5f3a2d84407ed6dd0db123f1595dc207c5b2"
    assert run.deps[0].compat_selector == "" and run.deps[0].selector == cachekey.sha256_text("/")
    copy = pb.FileActionCopy(src="/a.txt", dest="/a.txt", mode=-1, follow_symlink=True, dir_copy_contents=True,
                             create_dest_path=True, allow_wildcard=True, allow_empty_wildcard=True, timestamp=-1)
    file_op = pb.Op(inputs=[pb.Input("sha256:" + "0" * 64), pb.Input("sha256:" + "1" * 64)],
                    op=pb.FileOp(actions=[pb.FileAction(input=0, secondary_input=1, output=0, action=copy)]))
    cmap = cachekey.op_cache_map(file_op)
    assert cachekey.root_key(cmap.digest, 0) == \
        "sha256:0068309e89bd0f0f00fe2e9e00e9cca862f2dd58d80cb7f4dca6613a0613f509"
    assert cmap.deps[1].content_based and not cmap.deps[0].content_based


def test_root_keys_and_links_are_buildkits() -> None:
    assert cachekey.root_key("sha256:x", 0) == cachekey.sha256_text("sha256:x@0")
    assert cachekey.combine("sha256:x", 0, []) == cachekey.root_key("sha256:x", 0)
    assert cachekey.is_random(cachekey.root_key("random:ab", 0))
    by_content = cachekey.combine("sha256:x", 0, [DepKey("k1", "s", "sha256:c")])
    assert by_content == cachekey.combine("sha256:x", 0, [DepKey("k2", "t", "sha256:c")])  # the slow key wins


def _graph(records: list[CacheRecord]) -> LinkGraph:
    blob = "sha256:" + "f" * 64
    from solver.source.registry import Descriptor
    config = CacheConfig([CacheLayer(blob, -1)], records)
    return LinkGraph("test", config, {blob: Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", blob, 1)},
                     lambda desc, store: Path("/nonexistent"))


def test_matching_intersects_links_across_inputs_as_buildkit_query() -> None:
    base = cachekey.CacheMap("sha256:base", ())
    child = cachekey.CacheMap("sha256:child", (cachekey.DepSpec("sel"), cachekey.DepSpec(
        "", (cachekey.ContentSelector("/a"),))))
    other_root = cachekey.root_key("sha256:other", 0)
    records = [CacheRecord(cachekey.root_key("sha256:base", 0)),
               CacheRecord(cachekey.slow_key("sha256:content")),
               CacheRecord(cachekey.root_key("sha256:child", 0), [[CacheInput(0, "sel")], [CacheInput(1, "")]],
                           [CacheResult(0)]),
               CacheRecord(other_root)]
    graph = _graph(records)
    roots = remote.match_vertex([graph], base, 0, [], [])
    assert roots == (frozenset({0}),)
    deps = [DepKey("k", "sel"), DepKey("k2", "", "sha256:content")]
    hit = remote.match_vertex([graph], child, 0, deps, [roots, (frozenset({3}),)])
    assert hit == (frozenset({2}),) and remote.best_hit([graph], hit) is not None
    changed = [DepKey("k", "sel"), DepKey("k2", "", "sha256:changed")]
    assert remote.match_vertex([graph], child, 0, changed, [roots, (frozenset({3}),)]) == (frozenset(),)
    wrong_selector = cachekey.CacheMap("sha256:child", (cachekey.DepSpec("other"), child.deps[1]))
    assert remote.match_vertex([graph], wrong_selector, 0, deps, [roots, (frozenset(),)]) == (frozenset(),)


# ----------------------------------------------------------------------------- end to end

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="llbook build with runc needs root here")


def _env(registry_config) -> dict[str, str]:
    return {**os.environ, **registry_config.env, "PYTHONPATH": str(ROOT)}


def llbook_build(registry_config, context: Path, cache: Path, *extra: str, check: bool = True):
    meta = context.parent / f"meta-{uuid.uuid4().hex}.json"
    proc = subprocess.run([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(cache), "--metadata-file",
                           str(meta), *extra, str(context)], env=_env(registry_config), capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"llbook build failed ({proc.returncode}):\n{proc.stderr}")
    return proc, (json.loads(meta.read_text()) if meta.exists() else {})


def executed(meta: dict) -> list[str]:
    return [v["name"] for v in meta["llbook.vertices"] if not v["cached"] and v["name"].startswith("[")
            and not v["name"].startswith("[internal]")]


def _project(tmp_path: Path, token: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "a.txt").write_text(f"hello {token}\n")
    (ctx / "Dockerfile").write_text(
        f"FROM busybox AS build\nRUN echo built-{token} > /out\n"
        f"FROM busybox\nCOPY --from=build /out /app/out\nCOPY a.txt /app/a.txt\n"
        f"RUN cat /app/out /app/a.txt > /app/both\n")
    return ctx


@root_only
def test_registry_mode_max_makes_an_empty_cache_dir_execute_nothing(registry_config, registry_with_busybox,
                                                                     tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    ctx = _project(tmp_path, token)
    ref = f"{registry_with_busybox.host}/cache/app:max-{token}"
    proc, first = llbook_build(registry_config, ctx, tmp_path / "a", "--cache-to", f"type=registry,ref={ref},mode=max")
    assert len(executed(first)) == 5 and f"exported cache registry {ref} mode=max" in proc.stderr
    proc, second = llbook_build(registry_config, ctx, tmp_path / "b", "--cache-from", ref,
                                "--output", f"type=local,dest={tmp_path / 'out'}")
    assert executed(second) == [], proc.stderr
    assert (tmp_path / "out/app/both").read_text() == f"built-{token}\nhello {token}\n"
    states = step_states(proc.stderr)
    assert sum(s == "CACHED" for s in states.values()) == len(states) == 5, states


@root_only
def test_registry_mode_min_hits_only_the_final_stage(registry_config, registry_with_busybox, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    ctx = _project(tmp_path, token)
    ref = f"{registry_with_busybox.host}/cache/app:min-{token}"
    llbook_build(registry_config, ctx, tmp_path / "a", "--cache-to", f"type=registry,ref={ref},mode=min")
    proc, second = llbook_build(registry_config, ctx, tmp_path / "b", "--cache-from", f"type=registry,ref={ref}")
    assert executed(second) == [f"[build 2/2] RUN echo built-{token} > /out"], proc.stderr
    cached = {v["name"] for v in second["llbook.vertices"] if v["cached"]}
    assert {n.split("]")[0] + "]" for n in cached if n.startswith("[stage-1")} == \
        {"[stage-1 2/4]", "[stage-1 3/4]", "[stage-1 4/4]"}, cached


@root_only
def test_local_cache_round_trip_and_a_corrupted_blob_is_refused(registry_config, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    ctx = _project(tmp_path, token)
    layout = tmp_path / "layout"
    llbook_build(registry_config, ctx, tmp_path / "a", "--cache-to", f"type=local,dest={layout},mode=max")
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    assert manifest["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert manifest["manifests"][-1]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    _, again = llbook_build(registry_config, ctx, tmp_path / "b", "--cache-from", f"type=local,src={layout}")
    assert executed(again) == []
    for desc in manifest["manifests"][:-1]:  # every layer blob: other bytes under its name
        (layout / "blobs/sha256" / desc["digest"][7:]).write_bytes(b"not the layer")
    proc, broken = llbook_build(registry_config, ctx, tmp_path / "c", "--cache-from", f"type=local,src={layout}",
                                "--output", f"type=local,dest={tmp_path / 'out'}")
    assert "refused" in proc.stderr and executed(broken), proc.stderr
    assert (tmp_path / "out/app/both").read_text() == f"built-{token}\nhello {token}\n"


# ----------------------------------------------------------------------------- with dockerd


def _interop_context(tmp_path: Path, host: str, token: str) -> Path:
    ctx = tmp_path / "interop"
    ctx.mkdir()
    (ctx / "a.txt").write_text(f"hello {token}\n")
    (ctx / "Dockerfile").write_text(f"FROM {host}/library/busybox:latest\nRUN echo one-{token} > /one\n"
                                    f"COPY a.txt /a.txt\nRUN cat /a.txt /one > /b\n")
    return ctx


def _docker_build(dockerd, ctx: Path, tag: str, *extra: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([dockerd.client, "build", "--network=host", "--progress=plain", "-t", tag, *extra, str(ctx)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    assert proc.returncode == 0, proc.stderr
    return proc


STEPS = ("[2/4] RUN", "[3/4] COPY", "[4/4] RUN")


def _cached_steps(out: str) -> list[str]:
    return sorted(name.split(" ", 2)[0] + " " + name.split(" ", 2)[1]
                  for name, state in step_states(out).items() if state == "CACHED")


@root_only
def test_docker_build_reads_llbooks_inline_cache(registry_config, registry_with_busybox, dockerd,
                                                 tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]  # steps no daemon has seen: its build cache holds nothing for them
    ctx = _interop_context(tmp_path, registry_with_busybox.host, token)
    ref = f"{registry_with_busybox.host}/interop/llbook:{token}"
    llbook_build(registry_config, ctx, tmp_path / "cache", "--network", "host", "--cache-to", "type=inline",
                 "-t", ref, "--push")
    proc = _docker_build(dockerd, ctx, f"{ref}-docker", "--cache-from", ref)
    assert _cached_steps(proc.stderr) == sorted(STEPS), proc.stderr
    dockerd.docker("image", "rm", "-f", f"{ref}-docker", check=False)


@root_only
def test_llbook_reads_docker_builds_inline_cache(registry_config, registry_with_busybox, dockerd,
                                                 tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:12]
    ctx = _interop_context(tmp_path, registry_with_busybox.host, token)
    ref = f"{registry_with_busybox.host}/interop/docker:{token}"
    _docker_build(dockerd, ctx, ref, "--build-arg", "BUILDKIT_INLINE_CACHE=1")
    dockerd.docker("push", ref)
    proc, meta = llbook_build(registry_config, ctx, tmp_path / "fresh", "--network", "host", "--cache-from", ref)
    assert _cached_steps(proc.stderr) == sorted(STEPS), proc.stderr
    assert [v["name"].split(" ")[0] for v in meta["llbook.vertices"] if v["cached"]] == ["[2/4]", "[3/4]", "[4/4]"]
    dockerd.docker("image", "rm", "-f", ref, check=False)
