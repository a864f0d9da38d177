"""No orphans: SIGTERM and kill -9 of `llbook build` during `RUN sleep N` leave no process,
mount, container or bundle directory (after the watcher, or after `llbook check`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_rootfs import unique_number
from solver.executor.runc import runtime_commands

pytestmark = pytest.mark.root

if os.geteuid() != 0 or shutil.which("runc") is None:
    pytest.skip("llbook build with runc needs root and runc here", allow_module_level=True)

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0  # bound of every wait for something to start
GONE = 5.0  # the contract: a dead build's RUN is gone within 5 s


def _env(registry_config, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(registry_config.env)
    env["PYTHONPATH"] = str(ROOT)
    env["TMPDIR"] = str(tmp)  # the bundles of this test's builds are made here, and only theirs
    return env


def _cmdlines() -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            found[int(entry)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def _pids_of(cmdline: str) -> list[int]:
    return [pid for pid, text in _cmdlines().items() if text == cmdline]


def _mounts_under(root: Path) -> int:
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4].startswith(prefix))


def _bundles(tmp: Path) -> list[str]:
    return [p for p in os.listdir(tmp) if p.startswith("llbook-bundle-")]


def _containers_of(owner: int) -> list[str]:
    ids = []
    for runc in runtime_commands():
        out = subprocess.run([*runc, "list", "--format", "json"], capture_output=True, text=True, timeout=30)
        ids += [c["id"] for c in json.loads(out.stdout or "null") or [] if c["id"].startswith(f"llbook-{owner}-")]
    return ids


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def setup(registry_config, tmp_path: Path):
    marker = unique_number()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN sleep {marker}\n")
    (ctx / "Dockerfile.pull").write_text("FROM busybox\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    cache = tmp_path / "cache"
    env = _env(registry_config, tmp)
    subprocess.run([*LLBOOK, "build", "--progress", "quiet", "--cache-dir", str(cache), "-f",
                    str(ctx / "Dockerfile.pull"), str(ctx)], env=env, check=True, timeout=300)
    yield marker, ctx, cache, tmp, env
    for pid in _pids_of(f"sleep {marker}"):  # only if a test failed
        os.kill(pid, signal.SIGKILL)


def _start_build(marker: str, ctx: Path, cache: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(cache), str(ctx)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert _wait_until(lambda: bool(_pids_of(f"sleep {marker}")), WAIT), "the RUN did not start"
    return proc


def _check(cache: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run([*LLBOOK, "check", "--cache-dir", str(cache)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def _leftovers(marker: str, cache: Path, tmp: Path, owner: int) -> dict[str, int]:
    return {"processes": len(_pids_of(f"sleep {marker}")), "mounts": _mounts_under(cache),
            "bundles": len(_bundles(tmp)), "containers": len(_containers_of(owner))}


NONE = {"processes": 0, "mounts": 0, "bundles": 0, "containers": 0}


def test_sigterm_cleans_up_like_sigint(setup) -> None:
    marker, ctx, cache, tmp, env = setup
    proc = _start_build(marker, ctx, cache, env)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert _leftovers(marker, cache, tmp, proc.pid) == NONE
    assert "removed leftover" not in _check(cache, env).stdout  # nothing was left for check


def _watcher_of(owner: int) -> int:
    from solver.executor.proctree import descendants
    watchers = [pid for pid in descendants(owner) if "solver.executor.reaper" in _cmdlines().get(pid, "")]
    assert len(watchers) == 1, watchers
    return watchers[0]


def _network_helpers_of(owner: int) -> list[tuple[int, int]]:
    """slirp4netns and the namespace holders (`cat` under `unshare --net`) below ``owner``."""
    from solver.executor.proctree import descendants, identity
    lines = _cmdlines()
    found = [identity(pid) for pid in descendants(owner)
             if lines.get(pid, "").startswith("slirp4netns ") or lines.get(pid, "") == "cat"]
    return [i for i in found if i is not None]


def test_kill_9_the_watcher_ends_the_run_within_5_s(setup) -> None:
    from solver.executor.proctree import still_running
    marker, ctx, cache, tmp, env = setup
    proc = _start_build(marker, ctx, cache, env)
    watcher = _watcher_of(proc.pid)
    helpers = _network_helpers_of(proc.pid)
    assert len(helpers) >= 2  # the RUN's network (and maybe a spare): slirp4netns + holder each
    proc.kill()
    proc.wait(10)
    assert _wait_until(lambda: not _pids_of(f"sleep {marker}") and not _bundles(tmp), GONE)
    assert _wait_until(lambda: watcher not in _cmdlines(), GONE)  # the watcher exits too
    assert _wait_until(lambda: not any(still_running(h) for h in helpers), GONE)  # and the network's
    assert _wait_until(lambda: _leftovers(marker, cache, tmp, proc.pid) == NONE, GONE)  # the root's mount too
    out = _check(cache, env)  # the snapshot mount of the dead build is check's job
    assert "removed leftover" in out.stdout
    assert _leftovers(marker, cache, tmp, proc.pid) == NONE


def test_kill_9_of_build_and_watcher_then_check_ends_the_container(setup) -> None:
    marker, ctx, cache, tmp, env = setup
    proc = _start_build(marker, ctx, cache, env)
    os.kill(_watcher_of(proc.pid), signal.SIGKILL)
    proc.kill()
    proc.wait(10)
    time.sleep(0.5)
    before = _leftovers(marker, cache, tmp, proc.pid)
    assert before["processes"] == 1 and before["containers"] == 1 and before["bundles"] == 1  # an orphan
    out = _check(cache, env)
    assert f"removed leftover: container llbook-{proc.pid}-" in out.stdout
    assert "removed leftover: bundle " in out.stdout
    assert _leftovers(marker, cache, tmp, proc.pid) == NONE
