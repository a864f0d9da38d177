"""The resident build server: same output, exit codes, metadata and cache effects as an
in-process build; never serves another uid; a killed server leaves nothing and the next
build starts a new one; the thin client imports no engine module."""

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

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("llbook build with runc needs root here", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
LLBOOK = [sys.executable, "-m", "solver.cli"]
VOLATILE = ("digest", "started", "completed", "cache_keys", "inputs", "reasons")


@pytest.fixture
def server_env(registry_config, tmp_path: Path):
    import tempfile
    run = tempfile.mkdtemp(prefix="llbook-server-test-")  # below /tmp: another uid can reach it
    env = dict(os.environ)
    env.update(registry_config.env)
    env.update(PYTHONPATH=str(ROOT), LLBOOK_SERVER="1", LLBOOK_SERVER_DIR=run, LLBOOK_SERVER_IDLE="120")
    yield env
    subprocess.run([*LLBOOK, "server", "stop"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(run, ignore_errors=True)


def llbook(env: dict[str, str], *args: str, server: bool = True, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(env, LLBOOK_SERVER="1" if server else "0")
    return subprocess.run([*LLBOOK, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def server_pid(env: dict[str, str]) -> int | None:
    proc = llbook(env, "server", "status")
    if proc.returncode != 0:
        return None
    return int(proc.stdout.split()[1])


def normalised(meta: dict) -> dict:
    """The metadata without what differs between any two builds (times; the local source's
    random session id, and so the digests and keys that hang on it)."""
    data = dict(meta)
    data["llbook.vertices"] = [{k: v for k, v in rec.items() if k not in VOLATILE}
                               for rec in meta.get("llbook.vertices", [])]
    data.pop("llbook.result.cache_key", None)
    data.pop("llbook.result.snapshot", None)  # a new snapshot's name is random
    return data


def project(root: Path, last: str = "last") -> Path:
    ctx = root / "ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "main.txt").write_text("main\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo base > /base\nCOPY main.txt /srv/\n"
                                    f"RUN echo {last} > /last\n")
    return ctx


def build_both(env: dict[str, str], tmp_path: Path, name: str, *extra: str) -> dict[str, tuple]:
    """The same build (same cache state before it) through the server and in-process."""
    out = {}
    seed = tmp_path / f"seed-{name}"
    for way, server in (("server", True), ("local", False)):
        cache = tmp_path / f"cache-{name}-{way}"
        if seed.exists():
            shutil.copytree(seed, cache, symlinks=True)
        meta = tmp_path / f"meta-{name}-{way}.json"
        proc = llbook(env, "build", "--progress", "plain", "--cache-dir", str(cache),
                      "--metadata-file", str(meta), *extra, server=server)
        data = json.loads(meta.read_text()) if meta.exists() else {}
        out[way] = (proc, data, cache)
    return out


def plain(text: str) -> str:
    """Progress text without its timings and new snapshots' random names."""
    import re
    text = re.sub(r"(?m)^(#\d+ )\d+\.\d+ ", r"\1T ", text)  # log lines' offsets
    return re.sub(r"\bs-[0-9a-f]{32}\b", "SNAPSHOT", re.sub(r"\b\d+\.\d+s\b", "T", text))


def test_same_output_exit_code_metadata_and_cache_effects(server_env, tmp_path: Path):
    ctx = project(tmp_path)
    for name, extra in (("ok", [str(ctx)]), ("fail", ["--build-arg", "X=1", "-f", str(ctx / "Bad"), str(ctx)]),
                        ("usage", ["--progress", "bogus", str(ctx)])):
        if name == "fail":
            (ctx / "Bad").write_text("FROM busybox\nRUN echo out; exit 3\n")
        both = build_both(server_env, tmp_path, name, *extra)
        (sp, smeta, scache), (lp, lmeta, lcache) = both["server"], both["local"]
        assert sp.returncode == lp.returncode, (sp.stderr, lp.stderr)
        assert plain(sp.stderr) == plain(lp.stderr)
        assert sp.stdout == lp.stdout
        assert normalised(smeta) == normalised(lmeta)
        if name == "ok":
            assert sp.returncode == 0
            # cache effects: a second build of the other way's cache is all cached either way
            for cache in (scache, lcache):
                again = tmp_path / f"again-{cache.name}.json"
                for server in (True, False):
                    proc = llbook(server_env, "build", "--progress", "plain", "--cache-dir", str(cache),
                                  "--metadata-file", str(again), str(ctx), server=server)
                    assert proc.returncode == 0, proc.stderr
                    records = json.loads(again.read_text())["llbook.vertices"]
                    assert [r["name"] for r in records if not r["cached"] and "RUN" in r["name"]] == []
        elif name == "fail":
            assert sp.returncode == 1 and "out" in sp.stderr and smeta["llbook.error"]
        else:
            assert sp.returncode == 2 and "invalid choice" in sp.stderr
    assert server_pid(server_env) is not None  # the server stayed up for the next build


def test_second_build_reuses_the_server_and_edit_reruns_only_the_last_step(server_env, tmp_path: Path):
    ctx = project(tmp_path)
    cache = tmp_path / "cache"
    meta = tmp_path / "meta.json"
    args = ["build", "--progress", "plain", "--cache-dir", str(cache), "--metadata-file", str(meta), str(ctx)]
    assert llbook(server_env, *args).returncode == 0
    first = server_pid(server_env)
    project(tmp_path, last="edited")
    proc = llbook(server_env, *args)
    assert proc.returncode == 0, proc.stderr
    ran = [r["name"] for r in json.loads(meta.read_text())["llbook.vertices"] if not r["cached"]
           and "RUN" in r["name"]]
    assert ran == ["[4/4] RUN echo edited > /last"]
    assert server_pid(server_env) == first
    status = llbook(server_env, "server", "status").stdout
    assert "2 builds" in status and "1 solvers kept" in status


def test_socket_is_private_and_another_uid_is_refused(server_env, tmp_path: Path):
    ctx = project(tmp_path)
    assert llbook(server_env, "build", "--progress", "quiet", "--cache-dir", str(tmp_path / "c"), str(ctx)).returncode == 0
    run = Path(server_env["LLBOOK_SERVER_DIR"])
    sock = next(run.glob("server-*.sock"))
    assert run.stat().st_mode & 0o777 == 0o700 and sock.stat().st_mode & 0o777 == 0o600
    assert run.stat().st_uid == sock.stat().st_uid == os.geteuid()
    # the thin client needs only the standard library: run it as nobody with the system python
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    probe = ("import sys; sys.path.insert(0, %r); from solver.server import client, protocol\n"
             "try:\n    s = client.connect(%r)\nexcept PermissionError:\n    print('EACCES'); sys.exit()\n"
             "import time; time.sleep(0.5)\n"  # let the server refuse and close first: the send then meets EPIPE
             "protocol.send_request(s, {'op': 'status'})\nprint(protocol.receive(s)[0])\n") % (str(ROOT), str(sock))
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", probe]
    denied = subprocess.run(nobody, capture_output=True, text=True, timeout=60, cwd="/")
    assert denied.stdout.strip() == "EACCES", denied.stderr
    # with the directory and socket opened up, the server itself still refuses (SO_PEERCRED)
    os.chmod(run, 0o755)
    os.chmod(sock, 0o666)
    try:
        refused = subprocess.run(nobody, capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        os.chmod(sock, 0o600)
        os.chmod(run, 0o700)
    assert "refused" in refused.stdout and "'pid'" not in refused.stdout, (refused.stdout, refused.stderr)
    assert "refused a connection from uid 65534" in next(run.glob("server-*.log")).read_text()


def _mounts_under(root: Path) -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4].startswith(str(root)))


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == marker.encode():
                    found.append(int(pid))
            except OSError:
                pass
    return found


def test_killed_server_leaves_nothing_and_the_next_build_starts_a_new_one(server_env, tmp_path: Path):
    seconds = str(300 + time.time_ns() % 100000)  # the RUN's sleep, found by its exact argv
    marker = f"sleep\0{seconds}\0"
    ctx = project(tmp_path)
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo started; sleep {seconds}\n")
    cache = tmp_path / "cache"
    client = subprocess.Popen([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(cache), str(ctx)],
                              env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    while "started" not in seen:  # the RUN's own output, streamed from the server
        line = client.stderr.readline()
        assert line, (seen, client.wait())
        seen += line
    deadline = time.monotonic() + 60
    while not _processes_with(marker):
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    pid = server_pid(server_env)
    assert pid is not None
    assert _mounts_under(cache) > 0  # the RUN's rootfs, before the kill
    os.kill(pid, signal.SIGKILL)
    _, err = client.communicate(timeout=60)
    assert client.returncode == 1 and "server ended during the build" in err
    deadline = time.monotonic() + 30
    while (_processes_with(marker) or _mounts_under(cache)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker) == [] and _mounts_under(cache) == 0
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo after > /after\n")
    proc = llbook(server_env, "build", "--progress", "plain", "--cache-dir", str(cache), str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert server_pid(server_env) not in (None, pid)


def test_client_imports_no_engine_module(tmp_path: Path):
    code = ("import sys; from solver.cli import main as m; words, on = m._server_choice(['build', '.']);"
            "import solver.server.client; print(on, sorted(n for n in sys.modules if n.startswith('solver')),"
            "'argparse' in sys.modules, 'typing' in sys.modules or 'dataclasses' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), LLBOOK_SERVER="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("True ['solver', 'solver.cli', 'solver.cli.main', 'solver.server', "
                           "'solver.server.client', 'solver.server.paths', 'solver.server.protocol'] False False")
    env["LLBOOK_SERVER"] = "0"
    out = subprocess.run([sys.executable, "-c", code.replace("['build', '.']", "['build', '--no-server', '.']")],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("False")
