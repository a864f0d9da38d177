"""Exec ops through the real runc executor on overlay snapshots: caching, parallel stages,
failures (BuildError with line, exit code, log tail; nothing left behind), cancel,
entitlements, secrets and cache mounts."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from solver import llb
from solver.errors import BuildError
from solver.solve.entitlements import EntitlementError
from solver.solve.progress import VertexCompleted, VertexStarted
from solver.solve.scheduler import Canceled
from solver.solve.solver import Solver

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("runc + overlay tests need root", allow_module_level=True)


def _make(cache: Path, registry_config, **kw) -> Solver:
    from solver.executor.runc import RuncExecutor
    from solver.snapshot.overlay import OverlaySnapshotter
    return Solver(cache_dir=cache, snapshotter=OverlaySnapshotter(cache / "snapshots"),
                  executor=RuncExecutor(), registry_config=registry_config.config, **kw)


@pytest.fixture
def solver(tmp_path: Path, registry_config):
    s = _make(tmp_path / "cache", registry_config)
    yield s
    s.close()


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


def _mount_count(under: Path) -> int:
    """Mounts below ``under`` (other tests on this machine mount elsewhere concurrently)."""
    prefix = str(under).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4].startswith(prefix))


def _children() -> set[int]:
    """This process's children, less the executor's helpers (the watcher, RUN networks)."""
    from solver.executor.reaper import helper_pids
    helpers = helper_pids()
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found.add(int(entry))
    return found - helpers - helper_pids()  # before and after: reaped or started meanwhile


def _run(base, cmd: str, name: str):
    return base.run(cmd, shell=True, custom_name=name).root()


def test_run_caches_and_rebuilds_only_the_changed_last_step(solver: Solver):
    base = llb.image("busybox")

    def build(last: str):
        st = _run(base, "echo one > /one", "[2/3] RUN echo one")
        return _run(st, last, "[3/3] RUN last")

    first = solver.solve(build("echo two > /two"), place_scope="df")
    with _view(solver, first.snapshot) as root:
        assert (root / "one").read_text() == "one\n"
        assert (root / "two").read_text() == "two\n"
    warm = solver.solve(build("echo two > /two"), place_scope="df")
    assert warm.executed == []
    edited = solver.solve(build("echo three > /two"), place_scope="df")
    assert [v.name for v in edited.executed] == ["[3/3] RUN last"]
    reason = edited.executed[0].reasons[0]
    assert reason["kind"] == "command"
    assert "echo two" in reason["old"] and "echo three" in reason["new"]


def test_three_sleeping_stages_overlap(solver: Solver):
    base = llb.image("busybox")
    stages = [_run(base, f"sleep 1; echo {i} > /s{i}", f"[s{i} 2/2] RUN sleep") for i in range(3)]
    events = []
    solver.solve(base, progress=events.append)  # pull first so only the sleeps are timed
    result = solver.solve(llb.merge(stages), progress=events.append)
    spans = {}
    for e in events:
        if isinstance(e, VertexStarted) and e.name.endswith("RUN sleep"):
            spans.setdefault(e.digest, [e.started, None])
        if isinstance(e, VertexCompleted) and e.name.endswith("RUN sleep"):
            spans[e.digest][1] = e.completed
    assert len(spans) == 3
    latest_start = max(s for s, _ in spans.values())
    earliest_end = min(c for _, c in spans.values())
    assert latest_start < earliest_end  # all three ran at the same time
    with _view(solver, result.snapshot) as root:
        assert sorted(p.name for p in root.glob("s[0-9]")) == ["s0", "s1", "s2"]


def test_failing_run_raises_build_error_and_leaves_nothing(solver: Solver):
    base = llb.image("busybox")
    solver.solve(base)
    mounts_before, children_before = _mount_count(solver.paths.root), _children()
    records_before = len(solver.store.records())
    bad = _run(base, "echo about to fail; echo oops >&2; exit 3", "[2/2] RUN exit 3")
    with pytest.raises(BuildError) as info:
        solver.solve(bad)
    err = info.value
    assert err.exit_code == 3
    assert err.name == "[2/2] RUN exit 3"
    assert err.vertex.startswith("sha256:")
    assert "oops" in "\n".join(err.log_tail) and "about to fail" in "\n".join(err.log_tail)
    assert len(solver.store.records()) == records_before
    assert _mount_count(solver.paths.root) == mounts_before
    assert _children() <= children_before
    active = [i for i in solver.snapshotter.list() if i.kind != "committed"]
    assert active == []


def test_build_error_carries_dockerfile_line(solver: Solver):
    base = llb.image("busybox")
    bad = _run(base, "exit 5", "[2/2] RUN exit 5")
    from solver.llb.definition import load
    graph = load(bad.marshal())
    with pytest.raises(BuildError) as info:
        solver.solve(bad, locations={graph.result.digest: ("Dockerfile", 7)})
    assert info.value.line == 7 and info.value.filename == "Dockerfile"
    assert "Dockerfile:7" in str(info.value)


def test_cancel_kills_the_container_quickly_and_leaves_nothing(solver: Solver):
    base = llb.image("busybox")
    solver.solve(base)
    mounts_before, children_before = _mount_count(solver.paths.root), _children()
    cancel = threading.Event()
    started = threading.Event()

    def on_event(e):
        if isinstance(e, VertexStarted) and e.name == "[2/2] RUN sleep 100":
            started.set()

    errors = []

    def run():
        try:
            solver.solve(_run(base, "sleep 100", "[2/2] RUN sleep 100"), progress=on_event, cancel=cancel)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert started.wait(30), errors
        time.sleep(0.5)
    finally:
        cancel.set()
        thread.join(10)
    assert not thread.is_alive()  # canceled well within the join's bound, long before sleep 100 ends
    assert errors and isinstance(errors[0], Canceled)
    assert _mount_count(solver.paths.root) == mounts_before
    assert _children() <= children_before
    assert not [i for i in solver.snapshotter.list() if i.kind != "committed"]


def test_entitlements_checked_before_anything_runs(tmp_path: Path, registry_config):
    st = llb.image("busybox").run("echo hi", shell=True, network=llb.NetMode.HOST).root()
    with _make(tmp_path / "c1", registry_config) as s:
        with pytest.raises(EntitlementError, match="network.host"):
            s.solve(st)
        assert s.store.records() == []
    insecure = llb.image("busybox").run("echo hi", shell=True, security=llb.SecurityMode.INSECURE).root()
    with _make(tmp_path / "c2", registry_config, entitlements=["network.host"]) as s:
        s.solve(st)
        with pytest.raises(EntitlementError, match="security.insecure"):
            s.solve(insecure)


def test_secret_is_readable_but_not_in_layer_or_key(solver: Solver, tmp_path: Path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    st = llb.image("busybox").run("cat /run/secrets/tok > /seen; ls -la /run/secrets", shell=True,
                                  mounts=[llb.secret("/run/secrets/tok", "tok")]).root()
    result = solver.solve(st, secrets={"tok": secret})
    with _view(solver, result.snapshot) as root:
        assert (root / "seen").read_text() == "s3cr3t-value"
        assert not (root / "run" / "secrets" / "tok").exists()
    diff = solver.snapshotter.diff_dir(result.snapshot)
    for path in diff.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"s3cr3t-value" not in path.read_bytes() or path.name == "seen"
    secret.write_text("changed")
    again = solver.solve(st, secrets={"tok": secret})
    assert again.executed == []  # the secret is not part of the key


def test_cache_mount_persists_and_is_not_in_key(solver: Solver):
    def build(tag: str):
        return llb.image("busybox").run(
            f"echo {tag} >> /cache/log; cat /cache/log > /out", shell=True,
            mounts=[llb.cache_mount("/cache", "mycache")]).root()
    solver.solve(build("a"))
    second = solver.solve(build("b"))
    with _view(solver, second.snapshot) as root:
        assert (root / "out").read_text() == "a\nb\n"


def _spans(events, suffix: str) -> list[tuple[float, float]]:
    spans: dict[str, list[float]] = {}
    for e in events:
        if isinstance(e, VertexStarted) and e.name.endswith(suffix):
            spans[e.digest] = [e.started, 0.0]
        if isinstance(e, VertexCompleted) and e.name.endswith(suffix):
            spans[e.digest][1] = e.completed
    return sorted((a, b) for a, b in spans.values())


@pytest.mark.parametrize("sharing", ["locked", "shared", "private"])
def test_cache_mount_sharing_modes(solver: Solver, sharing: str):
    mode = {"locked": llb.CacheSharingOpt.LOCKED, "shared": llb.CacheSharingOpt.SHARED,
            "private": llb.CacheSharingOpt.PRIVATE}[sharing]
    base = llb.image("busybox")
    solver.solve(base)
    stages = [base.run(f"echo {i} >> /cache/log; sleep 0.6; cat /cache/log > /seen{i}", shell=True,
                       mounts=[llb.cache_mount("/cache", "shared-id", sharing=mode)],
                       custom_name=f"[s{i} 2/2] RUN cache user").root() for i in range(2)]
    events = []
    result = solver.solve(llb.merge(stages), progress=events.append)
    (a_start, a_end), (b_start, b_end) = _spans(events, "RUN cache user")
    assert b_start < a_end  # both vertices were in flight together
    with _view(solver, result.snapshot) as root:
        seen = sorted(len((root / f"seen{i}").read_text().split()) for i in range(2))
    if sharing == "locked":
        assert seen == [1, 2]  # the second waited for the first, then saw its line
    elif sharing == "shared":
        assert seen[1] == 2  # one directory for both
    else:
        assert seen == [1, 1]  # the second got its own instance instead of waiting


def test_readonly_cache_mount_can_be_read_but_not_written(solver: Solver):
    """`RUN --mount=type=cache,ro` (Go's llb.Readonly on a cache mount)."""
    base = llb.image("busybox")
    solver.solve(base.run("echo seeded > /c/seed", shell=True, mounts=[llb.cache_mount("/c", "ro-demo")]).root())
    reader = base.run("cat /c/seed > /seen; touch /c/new 2>/dev/null && echo wrote > /outcome || echo refused > /outcome",
                      shell=True, mounts=[llb.cache_mount("/c", "ro-demo", readonly=True)]).root()
    result = solver.solve(reader)
    with _view(solver, result.snapshot) as root:
        assert (root / "seen").read_text() == "seeded\n"
        assert (root / "outcome").read_text() == "refused\n"
