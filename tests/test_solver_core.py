"""Solver core with real components: image pull from a loopback registry, snapshots,
merge/diff ops, the persistent store. No executor needed here."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from solver import llb
from solver.solve.cachekey import KeyInputs, DepKey
from solver.solve import reasons
from solver.solve.progress import VertexCompleted, VertexStarted
from solver.solve.scheduler import Canceled, Scheduler
from solver.solve.solver import Solver, place_of


def _snapshotter(root: Path):
    from solver.snapshot.overlay import OverlaySnapshotter
    return OverlaySnapshotter(root)


@pytest.fixture
def solver(tmp_path: Path, registry_config):
    cache = tmp_path / "cache"
    s = Solver(cache_dir=cache, snapshotter=_snapshotter(cache / "snapshots"),
               registry_config=registry_config.config)
    yield s
    s.close()


def _events():
    seen = []
    lock = threading.Lock()

    def record(event):
        with lock:
            seen.append(event)
    return seen, record


def test_scheduler_runs_independent_jobs_in_parallel():
    deps = {"a": [], "b": [], "c": [], "d": ["a", "b", "c"]}
    spans = {}

    def job(node):
        start = time.monotonic()
        time.sleep(0.3)
        spans[node] = (start, time.monotonic())
        return node

    results = Scheduler(max_workers=3).run(deps, job)
    assert set(results) == set(deps)
    starts = [spans[n][0] for n in "abc"]
    ends = [spans[n][1] for n in "abc"]
    assert max(starts) < min(ends)  # all three overlapped
    assert spans["d"][0] >= max(ends)


def test_scheduler_stops_on_first_error_and_reraises_it():
    ran = []

    def job(node):
        if node == "a":
            raise ValueError("boom")
        ran.append(node)
        return node

    with pytest.raises(ValueError, match="boom"):
        Scheduler(max_workers=1).run({"a": [], "b": ["a"]}, job)
    assert "b" not in ran


def test_scheduler_cancel_raises_canceled():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Canceled):
        Scheduler().run({"a": []}, lambda n: n, cancel)


def test_place_uses_stage_and_step_not_command():
    a = place_of("[builder 2/5] RUN make", "d1", "df", 0)
    b = place_of("[builder 2/6] RUN make install", "d2", "df", 0)
    assert a == b
    assert a != place_of("[stage-1 2/5] RUN make", "d1", "df", 0)


def test_reasons_name_command_env_and_files():
    old = KeyInputs("op1", 0, (DepKey("k1", ""), DepKey(None, "s", "c1", {"a.txt": "x", "b": "y"})),
                    {"args": ["sh", "-c", "echo 1"], "env": ["A=1"]})
    new = KeyInputs("op2", 0, (DepKey("k1", ""), DepKey(None, "s", "c2", {"a.txt": "z", "b": "y"})),
                    {"args": ["sh", "-c", "echo 2"], "env": ["A=2"]})
    got = {r.kind: r for r in reasons.explain(new, old)}
    assert got["command"].old == "sh -c echo 1" and got["command"].new == "sh -c echo 2"
    assert "A: 1 → 2" in got["env"].message
    assert got["files"].files == ("a.txt",)
    assert reasons.explain(new, None)[0].kind == "no-previous"
    assert reasons.explain(new, old, no_cache=True)[0].kind == "no-cache"


def test_image_pull_then_cached(solver: Solver):
    state = llb.image("busybox")
    seen, record = _events()
    result = solver.solve(state, progress=record)
    assert result.snapshot is not None
    assert solver.snapshotter.exists(result.snapshot)
    assert [type(e) for e in seen if not hasattr(e, "stream")][:1] == [VertexStarted]
    assert any(isinstance(e, VertexCompleted) for e in seen)
    assert not result.vertices[0].cached
    again = solver.solve(state)
    assert again.vertices[0].cached
    assert again.snapshot == result.snapshot


def test_merge_and_diff_results(solver: Solver, tmp_path: Path):
    base = llb.image("busybox")
    merged = llb.merge([base, base])
    result = solver.solve(merged)
    with _view(solver, result.snapshot) as root:
        assert (root / "bin" / "busybox").exists()
    d = llb.diff(base, base)
    empty = solver.solve(d)
    with _view(solver, empty.snapshot) as root:
        assert list(root.iterdir()) == []
    warm = solver.solve(merged)
    assert all(v.cached for v in warm.vertices)


def test_cache_survives_new_solver(tmp_path: Path, registry_config):
    cache = tmp_path / "cache"
    state = llb.merge([llb.image("busybox"), llb.image("busybox")])
    with Solver(cache_dir=cache, snapshotter=_snapshotter(cache / "snapshots"),
                registry_config=registry_config.config) as first:
        cold = first.solve(state)
    assert not any(v.cached for v in cold.vertices)
    with Solver(cache_dir=cache, snapshotter=_snapshotter(cache / "snapshots"),
                registry_config=registry_config.config) as second:
        warm = second.solve(state)
    assert all(v.cached for v in warm.vertices)
    assert warm.snapshot == cold.snapshot


from contextlib import contextmanager


@contextmanager
def _view(solver: Solver, name: str):
    from solver.snapshot.mount import mounted
    key = f"testview-{time.time_ns()}"
    mounts = solver.snapshotter.view(key, name)
    try:
        with mounted(mounts) as root:
            yield root
    finally:
        solver.snapshotter.remove(key)


def _read(solver: Solver, snapshot: str, rel: str) -> str:
    with _view(solver, snapshot) as root:
        return (root / rel).read_text()


def test_file_ops_and_context_copy_caching(solver: Solver, tmp_path: Path):
    ctx_dir = tmp_path / "ctx"
    ctx_dir.mkdir()
    (ctx_dir / "a.txt").write_text("A1")
    (ctx_dir / "b.txt").write_text("B1")
    (ctx_dir / "secret.key").write_text("nope")

    def build():
        context = llb.local("context", exclude_patterns=["*.key"])
        base = llb.image("busybox")
        st = base.file(llb.copy(context, "/a.txt", "/app/a.txt", create_dest_path=True),
                       custom_name="[1/3] COPY a.txt /app/")
        st = st.file(llb.copy(context, "/b.txt", "/app/b.txt", create_dest_path=True),
                     custom_name="[2/3] COPY b.txt /app/")
        st = st.file(llb.mkfile("/app/c.txt", 0o644, b"C"), custom_name="[3/3] mkfile")
        return st

    first = solver.solve(build(), context_dirs={"context": ctx_dir}, place_scope="t")
    assert _read(solver, first.snapshot, "app/a.txt") == "A1"
    assert _read(solver, first.snapshot, "app/c.txt") == "C"
    warm = solver.solve(build(), context_dirs={"context": ctx_dir}, place_scope="t")
    assert [v.name for v in warm.executed] == []
    import os
    os.utime(ctx_dir / "a.txt", (1, 1))  # mtime only
    (ctx_dir / "other.key").write_text("ignored")  # excluded file
    touched = solver.solve(build(), context_dirs={"context": ctx_dir}, place_scope="t")
    assert [v.name for v in touched.executed] == []
    (ctx_dir / "b.txt").write_text("B2")
    changed = solver.solve(build(), context_dirs={"context": ctx_dir}, place_scope="t")
    assert [v.name for v in changed.executed] == ["[2/3] COPY b.txt /app/", "[3/3] mkfile"]
    copy_b = changed.vertex(changed.executed[0].digest)
    kinds = {r["kind"]: r for r in copy_b.reasons}
    assert kinds["files"]["files"] == ["b.txt"]
    assert _read(solver, changed.snapshot, "app/b.txt") == "B2"
    with _view(solver, changed.snapshot) as root:
        assert not (root / "app" / "secret.key").exists()


def test_oci_layout_source(solver: Solver, tmp_path: Path, busybox_images):
    from fixtures.imagebuild import OCILayoutWriter
    layout = tmp_path / "layout"
    writer = OCILayoutWriter(layout)
    writer.add_image(busybox_images["linux/amd64"], "v1")
    st = llb.oci_layout(f"{layout}:v1", platform=llb.Platform.parse("linux/amd64"))
    first = solver.solve(st)
    with _view(solver, first.snapshot) as root:
        assert (root / "bin" / "busybox").exists()
    assert solver.solve(st).executed == []


def test_http_source_keyed_by_content(solver: Solver, tmp_path: Path):
    import http.server
    import functools
    served = tmp_path / "www"
    served.mkdir()
    (served / "file.txt").write_text("v1")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/file.txt"
        st = llb.http(url, perm=0o644)
        first = solver.solve(st)
        assert _read(solver, first.snapshot, "file.txt") == "v1"
        assert solver.solve(st).executed == []
        (served / "file.txt").write_text("v2")
        changed = solver.solve(st)
        assert len(changed.executed) == 1
        assert _read(solver, changed.snapshot, "file.txt") == "v2"
    finally:
        server.shutdown()


def test_whole_context_copy_applies_dockerignore(solver: Solver, tmp_path: Path):
    ctx_dir = tmp_path / "ctx"
    (ctx_dir / "src").mkdir(parents=True)
    (ctx_dir / "src" / "a.txt").write_text("a")
    (ctx_dir / "src" / "debug.log").write_text("log")
    (ctx_dir / "keep.log").write_text("kept by exception")
    (ctx_dir / ".git").mkdir()
    (ctx_dir / ".git" / "HEAD").write_text("ref")
    excludes = ["**/*.log", ".git", "!keep.log"]
    st = llb.scratch().file(llb.copy(llb.local("context", exclude_patterns=excludes), "/", "/app/",
                                     create_dest_path=True, copy_dir_contents=True))
    result = solver.solve(st, context_dirs={"context": ctx_dir})
    with _view(solver, result.snapshot) as root:
        found = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert found == ["app", "app/keep.log", "app/src", "app/src/a.txt"]


def test_scratch_solves_to_an_empty_result(solver: Solver):
    result = solver.solve(llb.scratch())
    assert result.snapshot is None and result.vertices == [] and result.ref.kind == "scratch"


def test_parent_change_reason_names_the_parent(solver: Solver):
    def build(text: bytes):
        a = llb.scratch().file(llb.mkfile("/a", 0o644, text), custom_name="[1/2] mkfile a")
        return a.file(llb.mkfile("/b", 0o644, b"b"), custom_name="[2/2] mkfile b")
    solver.solve(build(b"1"), place_scope="p")
    changed = solver.solve(build(b"2"), place_scope="p")
    second = [v for v in changed.executed if v.name == "[2/2] mkfile b"][0]
    assert second.reasons[0]["kind"] == "parent"
    assert "[1/2] mkfile a" in second.reasons[0]["message"]
    first = [v for v in changed.executed if v.name == "[1/2] mkfile a"][0]
    assert first.reasons[0]["kind"] == "command"


def test_context_memo_between_solves_sees_same_size_same_mtime_edits(solver: Solver, tmp_path: Path):
    """A Solver reuses its earlier context walk only while no lstat changed: a rewrite
    with the same size and mtime put back is still seen (ctime), as is a new file."""
    import os
    ctx_dir = tmp_path / "ctx"
    (ctx_dir / "d").mkdir(parents=True)
    (ctx_dir / "d" / "f.txt").write_text("v1")

    def build():
        context = llb.local("context")
        return llb.image("busybox").file(llb.copy(context, "/d", "/d", copy_dir_contents=True,
                                                  create_dest_path=True), custom_name="[1/1] COPY d /d")

    def solve():
        return solver.solve(build(), context_dirs={"context": ctx_dir}, place_scope="memo")

    first = solve()
    assert [v.name for v in solve().executed] == []
    before = os.lstat(ctx_dir / "d" / "f.txt")
    (ctx_dir / "d" / "f.txt").write_text("v2")
    os.utime(ctx_dir / "d" / "f.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    second = solve()
    assert [v.name for v in second.executed] == ["[1/1] COPY d /d"]
    assert _read(solver, second.snapshot, "d/f.txt") == "v2" != _read(solver, first.snapshot, "d/f.txt")
    (ctx_dir / "d" / "g.txt").write_text("new")
    third = solve()
    assert [v.name for v in third.executed] == ["[1/1] COPY d /d"]
    assert _read(solver, third.snapshot, "d/g.txt") == "new"


def test_machine_executor_verdict_is_shared_only_when_private(tmp_path: Path, monkeypatch):
    """A new cache dir reuses this user's probe verdict from the runtime dir, but never
    one that another user could have written (it could pick a weaker executor)."""
    import json
    import os
    import shutil
    from solver.executor import probe
    from solver.solve import solver as solver_mod
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    machine = tmp_path / "run" / "executor.json"
    machine.parent.mkdir(mode=0o700)
    monkeypatch.setattr(solver_mod, "_machine_executor_memo", lambda: machine)
    probed: list[object] = []

    class Probed:
        runtime = "runc"

    monkeypatch.setattr(probe, "choose_executor", lambda preference=None: probed.append(preference) or Probed())
    machine.write_text(json.dumps({"machine": solver_mod._machine_identity(), "wanted": "auto", "name": "proot"}))
    os.chmod(machine, 0o666)  # writable by others: ignored
    (tmp_path / "c1").mkdir()
    assert isinstance(solver_mod.remembered_executor(tmp_path / "c1", None), Probed) and len(probed) == 1
    assert json.loads(machine.read_text())["name"] == "runc" and not machine.stat().st_mode & 0o022
    (tmp_path / "c2").mkdir()
    executor = solver_mod.remembered_executor(tmp_path / "c2", None)
    assert getattr(executor, "name", "") == "runc" and len(probed) == 1  # no second probe
    assert json.loads((tmp_path / "c2" / "executor.json").read_text())["name"] == "runc"


def test_snapshotter_probe_verdict_is_kept_per_block_device(tmp_path: Path, monkeypatch):
    import json
    import os
    from solver.solve import solver as solver_mod
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    if os.major(os.stat(scratch).st_dev) == 0:
        pytest.skip("tmp_path is on an anonymous device (tmpfs): no verdict is kept there")
    machine = tmp_path / "run" / "executor.json"
    machine.parent.mkdir(mode=0o700)
    monkeypatch.setattr(solver_mod, "_machine_executor_memo", lambda: machine)
    probes: list[Path] = []
    monkeypatch.setattr(solver_mod, "_overlay_works", lambda path: probes.append(path) or False)
    memo = machine.with_name("snapshotter.json")
    device = os.stat(scratch).st_dev
    memo.write_text(json.dumps({"machine": solver_mod._machine_identity(),
                                "devices": {f"{os.major(device)}:{os.minor(device)}": "overlay"}}))
    os.chmod(memo, 0o666)  # writable by others: ignored, probed again
    assert solver_mod._probed_snapshotter(scratch) == "native" and len(probes) == 1
    assert solver_mod._probed_snapshotter(scratch) == "native" and len(probes) == 1  # kept
    assert not memo.stat().st_mode & 0o022
