"""The BuildKit backend against a real daemon: dockerd's embedded BuildKit (Debian's docker.io).

Every test talks to dockerd through `dockerd://` (its `/grpc` endpoint upgraded to h2c);
the session runs over dockerd's `/session` endpoint unless a test says otherwise. Images
come from the loopback registry fixture. dockerd here runs with `--bridge=none`, so RUN
steps use host networking (`--network=host` / NetMode.HOST, entitlement network.host).
"""

from __future__ import annotations

import json
import tarfile
import uuid
from pathlib import Path

import pytest

from solver import llb
from solver.buildkit.address import parse_address
from solver.buildkit.client import (BuildKitClient, CapabilityError, EntitlementError, Export, connect)
from solver.buildkit.session import SessionServices
from solver.buildkit.transport import DaemonUnreachableError
from solver.errors import BuildError
from solver.frontend import dockerfile_to_llb
from solver.llb import pb
from solver.llb.definition import load
from solver.solve import progress as p
from solver.solve.solver import Solver

PLATFORM = "linux/amd64"


@pytest.fixture(scope="module")
def busybox_ref(registry_with_busybox) -> str:
    return f"{registry_with_busybox.host}/library/busybox:latest"


def _tag() -> str:
    return f"llbook-bk-test-{uuid.uuid4().hex[:10]}:latest"


def _remove_image(dockerd, name: str) -> None:
    dockerd.docker("rmi", "-f", name, check=False)


def _definition(busybox_ref: str, nonce: str) -> pb.Definition:
    """image source from the loopback registry, an exec that writes and prints, file ops."""
    st = (llb.image(busybox_ref)
          .run(f"echo {nonce} > /msg && echo said-{nonce}", shell=True, network=pb.NetMode.HOST)
          .root()
          .file(llb.mkdir("/d", 0o755).mkfile("/d/f", 0o644, b"file-op-data")))
    return st.marshal(platform=PLATFORM)


# ------------------------------------------------------------------ workers, errors


def test_list_workers_through_dockerd(dockerd) -> None:
    with BuildKitClient("dockerd://") as client:
        workers = client.list_workers()
    assert workers, "dockerd reported no BuildKit worker"
    platforms = {f"{p.os}/{p.architecture}" for w in workers for p in w.platforms}
    assert "linux/amd64" in platforms
    assert all(w.id for w in workers)


def test_unreachable_daemon_names_address_and_cause(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.sock"
    for address in (f"dockerd://{missing}", f"unix://{missing}"):
        with pytest.raises(DaemonUnreachableError) as caught:
            connect(address)
        text = str(caught.value)
        assert address in text
        if address.startswith("dockerd"):
            assert str(missing) in text and "No such file" in text


def test_unsupported_address_scheme_is_named() -> None:
    from solver.buildkit.address import BuildKitAddressError
    with pytest.raises(BuildKitAddressError, match="ssh://host"):
        parse_address("ssh://host")


def test_refused_entitlement_names_address(dockerd, busybox_ref: str) -> None:
    with BuildKitClient("dockerd://") as client:
        with pytest.raises(EntitlementError, match=r"dockerd://.*network\.host is not allowed"):
            client.solve(_definition(busybox_ref, "ent"), entitlements=[])


def test_missing_capability_names_it(dockerd, busybox_ref: str) -> None:
    """dockerd 20.10's BuildKit (v0.8) predates MergeOp."""
    merged = llb.merge([llb.image(busybox_ref), llb.scratch().file(llb.mkfile("/x", 0o644, b"x"))])
    with BuildKitClient("dockerd://") as client:
        try:
            client.solve(merged.marshal(platform=PLATFORM))
        except CapabilityError as error:
            assert "dockerd://" in str(error) and "'mergeop'" in str(error)
        else:
            pytest.skip("this daemon supports MergeOp")


# ------------------------------------------------------------------ solving LLB


def test_llb_definition_solves_into_dockerd_with_same_digests(dockerd, busybox_ref: str) -> None:
    nonce = uuid.uuid4().hex
    defn = _definition(busybox_ref, nonce)
    name = _tag()
    events: list[p.ProgressEvent] = []
    try:
        with BuildKitClient("dockerd://") as client:
            result = client.solve(defn, export=Export("moby", {"name": name}), progress=events.append)
        out = dockerd.docker("run", "--rm", "--network=host", name, "cat", "/msg", "/d/f").stdout
        assert out == f"{nonce}\nfile-op-data"
    finally:
        _remove_image(dockerd, name)
    assert result.exporter_response.get("containerimage.digest", "").startswith("sha256:")

    # every vertex of llbook's Definition is reported by the daemon under llbook's digest
    graph = load(defn)
    ours = {v.digest: graph.name(v.digest) for v in graph.reachable()}
    theirs = {v.digest: v for v in result.vertices}
    assert set(ours) <= set(theirs), f"digests the daemon re-hashed: {set(ours) - set(theirs)}"
    for digest, name_ in ours.items():
        assert theirs[digest].name == name_
    extra = [v.name for v in result.vertices if v.digest not in ours]
    assert extra == ["exporting to image"]  # the exporter's own progress vertex

    # the Status stream as llbook progress events
    exec_digest = next(v.digest for v in graph.reachable() if isinstance(v.op.op, pb.ExecOp))
    kinds = [type(e).__name__ for e in events if getattr(e, "digest", None) == exec_digest
             and not isinstance(e, (p.VertexLog, p.VertexStatus))]
    assert kinds == ["VertexStarted", "VertexCompleted"]
    logs = b"".join(e.data for e in events if isinstance(e, p.VertexLog) and e.digest == exec_digest)
    assert f"said-{nonce}".encode() in logs


def test_second_solve_reports_cached(dockerd, busybox_ref: str) -> None:
    """All op vertices come back cached. dockerd's v0.8 BuildKit reports a source vertex
    (image, local) as completed rather than cached when its cache key had to be computed
    again (image: resolving the pinned manifest; local: re-syncing the context); nothing
    is executed for them."""
    defn = _definition(busybox_ref, uuid.uuid4().hex)
    with BuildKitClient("dockerd://") as client:
        client.solve(defn)
        events: list[p.ProgressEvent] = []
        again = client.solve(defn, progress=events.append)
    graph = load(defn)
    ops = {v.digest for v in graph.reachable() if not isinstance(v.op.op, pb.SourceOp)}
    records = {v.digest: v for v in again.vertices}
    assert all(records[d].cached for d in ops), [(records[d].name, records[d].cached) for d in ops]
    assert not [e for e in events if isinstance(e, p.VertexLog)], "nothing runs on a cached solve"
    sources = [records[v.digest] for v in graph.reachable() if isinstance(v.op.op, pb.SourceOp)]
    assert all(s.completed is not None and not s.error for s in sources)


def test_no_cache_runs_again(dockerd, busybox_ref: str) -> None:
    from solver.buildkit.backend import BuildKitBackend
    defn = _definition(busybox_ref, uuid.uuid4().hex)
    backend = BuildKitBackend("dockerd://", entitlements=("network.host",))
    backend.solve(defn)
    result = backend.solve(defn, no_cache=True)
    exec_records = [v for v in result.vertices if v.kind == "exec"]
    assert exec_records and not any(v.cached for v in exec_records)


# ------------------------------------------------------------------ Dockerfile builds


DOCKERFILE = """\
FROM {base} AS build
WORKDIR /src
COPY app.txt sub ./
RUN --network=host --mount=type=secret,id=token wc -c < /run/secrets/token > /src/token-len && echo built > /src/built
FROM {base}
ENV GREETING=hi
COPY --from=build /src /app
CMD ["cat", "/app/built"]
"""


@pytest.fixture
def context_dir(tmp_path: Path, busybox_ref: str) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "app.txt").write_text("app content\n")
    (ctx / "sub" / "n.txt").write_text("nested\n")
    (ctx / "skip.log").write_text("ignored\n")
    (ctx / ".dockerignore").write_text("*.log\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=busybox_ref))
    return ctx


def _tar_members(path: Path) -> dict[str, tuple]:
    out = {}
    with tarfile.open(path) as archive:
        for member in archive:
            data = archive.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            name = member.name.lstrip("./").rstrip("/")
            out[name] = (member.type, member.mode, member.uid, member.gid, member.linkname, data)
    return out


def _dir_members(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        kind = "l" if path.is_symlink() else "d" if path.is_dir() else "f"
        data = path.read_bytes() if kind == "f" else None
        out[str(path.relative_to(root))] = (kind, st.st_mode & 0o7777, st.st_uid, st.st_gid,
                                            str(path.readlink()) if kind == "l" else "", data)
    return out


def test_dockerfile_filesystem_equals_embedded_solver(dockerd, context_dir: Path, tmp_path: Path,
                                                       registry_config) -> None:
    from solver.export import export, parse_output
    from solver.export.result_source import export_source
    secret = tmp_path / "token"
    secret.write_text("s3cret-value")
    with Solver(cache_dir=tmp_path / "cache", registry_config=registry_config.config,
                entitlements=["network.host"]) as solver:
        lowered = dockerfile_to_llb((context_dir / "Dockerfile").read_text(), context_dir=str(context_dir),
                                    resolver=solver.image_resolver())
        defn = lowered.definition()
        embedded = solver.solve(defn, context_dirs={"context": context_dir}, secrets={"token": secret})
        export(export_source(solver, embedded, lowered.image_config),
               parse_output(f"type=tar,dest={tmp_path / 'embedded.tar'}"))
    services = SessionServices(dirs={"context": context_dir}, secrets={"token": secret})
    with BuildKitClient("dockerd://") as client:
        result = client.solve(defn, export=Export("tar", dest=str(tmp_path / "daemon.tar")), services=services)
    ours, theirs = _tar_members(tmp_path / "embedded.tar"), _tar_members(tmp_path / "daemon.tar")
    differing = {k: (ours.get(k), theirs.get(k)) for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
    assert not differing
    assert theirs["app/token-len"][-1] == b"12\n"  # the secret was mounted, and not left behind
    assert theirs["app/app.txt"][-1] == b"app content\n" and "app/skip.log" not in theirs
    assert theirs["app/n.txt"][-1] == b"nested\n"
    assert not [v for v in result.vertices if v.error]
    graph = load(defn)  # secret mounts, context copies, multi-stage: still llbook's digests
    assert {v.digest for v in graph.reachable()} <= {v.digest for v in result.vertices}

    # type=local through FileSend's DiffCopy gives the same tree
    with BuildKitClient("dockerd://") as client:
        client.solve(defn, export=Export("local", dest=str(tmp_path / "local")), services=services)
    local = _dir_members(tmp_path / "local")
    for name in ("app/token-len", "app/app.txt", "app/n.txt", "bin/sh", "etc/passwd"):
        kind, mode, uid, gid, link, data = local[name]
        t_kind, t_mode, t_uid, t_gid, t_link, t_data = theirs[name]
        assert (mode, uid, gid, link, data) == (t_mode, t_uid, t_gid, t_link, t_data), name
    assert set(local) == set(theirs)


def test_dockerfile_image_lands_in_dockerd_with_config(dockerd, context_dir: Path, tmp_path: Path,
                                                       registry_config) -> None:
    from solver.buildkit.backend import export_for
    secret = tmp_path / "token"
    secret.write_text("xyz")
    with Solver(cache_dir=tmp_path / "cache", registry_config=registry_config.config) as solver:
        lowered = dockerfile_to_llb((context_dir / "Dockerfile").read_text(), context_dir=str(context_dir),
                                    resolver=solver.image_resolver())
    name = _tag()
    try:
        with BuildKitClient("dockerd://", session_via="control") as client:  # session over Control.Session
            client.solve(lowered.definition(), export=export_for(None, [name], "dockerd"),
                         services=SessionServices(dirs={"context": context_dir}, secrets={"token": secret}),
                         image_config=lowered.image_config)
        assert dockerd.docker("run", "--rm", "--network=host", name).stdout == "built\n"
        env = json.loads(dockerd.docker("image", "inspect", name, "--format", "{{json .Config.Env}}").stdout)
        assert "GREETING=hi" in env
    finally:
        _remove_image(dockerd, name)


FAILING = """\
FROM {base}
RUN --network=host echo first
RUN --network=host echo about to fail && exit 3
"""


def test_failing_run_gives_the_embedded_solvers_build_error_shape(dockerd, busybox_ref: str, tmp_path: Path,
                                                                  registry_config) -> None:
    text = FAILING.format(base=busybox_ref)
    with Solver(cache_dir=tmp_path / "cache", registry_config=registry_config.config,
                entitlements=["network.host"]) as solver:
        lowered = dockerfile_to_llb(text, resolver=solver.image_resolver())
        locations = {d: (r.filename, r.line) for d, r in lowered.vertex_sources().items()}
        with pytest.raises(BuildError) as embedded:
            solver.solve(lowered.definition(), locations=locations)
    with BuildKitClient("dockerd://") as client:
        with pytest.raises(BuildError) as daemon:
            client.solve(lowered.definition(), locations=locations)
        # the same through LLBBridge (llbook as the build's frontend, for an image config)
        with pytest.raises(BuildError) as via_gateway:
            client.solve(lowered.definition(), locations=locations, export=Export("moby", {"name": _tag()}),
                         image_config=lowered.image_config)
    assert (via_gateway.value.vertex, via_gateway.value.exit_code) == (daemon.value.vertex, 3)
    ours, theirs = embedded.value, daemon.value
    assert (theirs.vertex, theirs.name, theirs.exit_code, theirs.filename, theirs.line) == \
           (ours.vertex, ours.name, ours.exit_code, ours.filename, ours.line)
    assert theirs.exit_code == 3 and theirs.line == 3
    assert "about to fail" in theirs.log_tail and "about to fail" in ours.log_tail
    assert "exit code: 3" in theirs.message


def test_cancel_stops_the_daemons_build(dockerd, busybox_ref: str) -> None:
    import threading
    import time
    nonce = uuid.uuid4().hex
    st = llb.image(busybox_ref).run(f"sleep 60; echo {nonce}", shell=True, network=pb.NetMode.HOST).root()
    cancel = threading.Event()
    started = threading.Event()

    def on_event(event: p.ProgressEvent) -> None:
        if isinstance(event, p.VertexStarted) and "sleep 60" in event.name:
            started.set()

    def interrupt() -> None:
        started.wait(60)
        cancel.set()
    threading.Thread(target=interrupt, daemon=True).start()
    with BuildKitClient("dockerd://") as client:
        with pytest.raises(KeyboardInterrupt):
            client.solve(st.marshal(platform=PLATFORM), progress=on_event, cancel=cancel)
    assert started.is_set()  # interrupted while the 60 s RUN ran
    deadline = time.monotonic() + 20  # the daemon kills the RUN's processes
    while time.monotonic() < deadline and _running(nonce):
        time.sleep(0.5)
    assert not _running(nonce)


def _running(text: str) -> bool:
    for proc in Path("/proc").iterdir():
        try:
            if text.encode() in (proc / "cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_keyboard_interrupt_while_waiting_cancels_the_build(dockerd, busybox_ref: str) -> None:
    """A Ctrl-C (or a notebook kernel interrupt) in the waiting thread cancels the daemon's solve."""
    import _thread
    import threading
    import time
    nonce = uuid.uuid4().hex
    st = llb.image(busybox_ref).run(f"sleep 60; echo {nonce}", shell=True, network=pb.NetMode.HOST).root()
    started = threading.Event()

    def on_event(event: p.ProgressEvent) -> None:
        if isinstance(event, p.VertexStarted) and "sleep 60" in event.name:
            started.set()

    def interrupt() -> None:
        if started.wait(60):
            time.sleep(0.5)
            _thread.interrupt_main()
    threading.Thread(target=interrupt, daemon=True).start()
    with BuildKitClient("dockerd://") as client:
        with pytest.raises(KeyboardInterrupt):
            client.solve(st.marshal(platform=PLATFORM), progress=on_event)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(nonce):
        time.sleep(0.5)
    assert not _running(nonce)


def test_disk_usage_and_prune(dockerd, busybox_ref: str) -> None:
    nonce = uuid.uuid4().hex
    with BuildKitClient("dockerd://") as client:
        client.solve(_definition(busybox_ref, nonce))
        records = client.disk_usage()
        assert records and all(r.id for r in records)
        assert any(nonce in r.description for r in records)  # "mount / from exec /bin/sh -c echo <nonce> ..."
        mine = next(r for r in records if nonce in r.description)
        assert mine.size > 0 and mine.created_at is not None
        assert client.prune(filters=["id==llbook-no-such-record"]) == []  # a filter that matches nothing
        # the file op's result sits on the exec's: prune that leaf (a parent stays while it has children)
        leaf = next(r for r in records if r.parent == mine.id or mine.id in r.parents)
        pruned = client.prune(filters=[f"id=={leaf.id}"])
        assert [r.id for r in pruned] == [leaf.id]
        assert leaf.id not in {r.id for r in client.disk_usage()}
