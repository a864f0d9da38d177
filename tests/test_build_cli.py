"""`llbook build` end to end, in subprocesses: Dockerfile frontend, loopback registry (mirror
config), runc, overlay snapshots, the persistent cache; metadata file; interrupts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("llbook build with runc needs root here", allow_module_level=True)

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _env(registry_config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(registry_config.env)
    env["PYTHONPATH"] = str(ROOT)
    return env


def build(registry_config, context: Path, cache: Path, *extra: str, dockerfile: Path | None = None,
          check: bool = True, timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
    meta = context.parent / f"meta-{time.time_ns()}.json"
    args = [*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(cache), "--metadata-file", str(meta)]
    if dockerfile is not None:
        args += ["-f", str(dockerfile)]
    proc = subprocess.run([*args, *extra, str(context)], env=_env(registry_config), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"llbook build failed ({proc.returncode}):\n{proc.stderr}")
    data = json.loads(meta.read_text()) if meta.exists() else {}
    return proc, data


def executed(meta: dict) -> list[str]:
    return [v["name"] for v in meta["llbook.vertices"] if not v["cached"] and not v["name"].startswith("[internal]")
            and "load build context" not in v["name"] and not v["name"].startswith("local://")
            and not v["name"].startswith("[context ")]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    write(ctx / "app" / "main.txt", "main v1\n")
    write(ctx / "app" / "other.txt", "other v1\n")
    write(ctx / "notes.md", "not copied\n")
    write(ctx / "Dockerfile", "FROM busybox\n"
                              "RUN echo base > /base\n"
                              "COPY app/main.txt /srv/\n"
                              "RUN cat /srv/main.txt > /srv/copy\n"
                              "RUN echo last > /last\n")
    return ctx


def test_cold_warm_edit_touch_and_file_change(registry_config, project: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    proc, cold = build(registry_config, project, cache)
    names = [v["name"] for v in cold["llbook.vertices"]]
    assert any(n.startswith("[1/5] FROM") for n in names), names
    assert "[2/5] RUN echo base > /base" in names
    assert cold["containerimage.config.digest"].startswith("sha256:")
    for v in cold["llbook.vertices"]:
        assert set(v) >= {"digest", "name", "cached", "started", "completed", "error"}
    assert "#1 " in proc.stderr and "DONE" in proc.stderr

    proc, warm = build(registry_config, project, cache)
    assert executed(warm) == []
    assert "CACHED" in proc.stderr

    os.utime(project / "app" / "main.txt", (12345, 12345))
    _, touched = build(registry_config, project, cache)
    assert executed(touched) == []

    write(project / "app" / "other.txt", "other v2\n")  # not selected by any COPY
    write(project / "notes.md", "changed\n")
    _, unrelated = build(registry_config, project, cache)
    assert executed(unrelated) == []

    write(project / "app" / "main.txt", "main v2\n")
    _, changed = build(registry_config, project, cache)
    assert executed(changed) == ["[3/5] COPY app/main.txt /srv/", "[4/5] RUN cat /srv/main.txt > /srv/copy",
                                 "[5/5] RUN echo last > /last"]

    text = (project / "Dockerfile").read_text().replace("echo last", "echo LAST")
    write(project / "Dockerfile", text)
    _, edited = build(registry_config, project, cache)
    assert executed(edited) == ["[5/5] RUN echo LAST > /last"]
    record = [v for v in edited["llbook.vertices"] if v["name"] == "[5/5] RUN echo LAST > /last"][0]
    assert record["reasons"][0]["kind"] == "command"


def test_multistage_sibling_stays_cached(registry_config, tmp_path: Path):
    ctx = tmp_path / "ctx"
    df = write(ctx / "Dockerfile", "FROM busybox AS a\nRUN echo a1 > /a\n"
                                   "FROM busybox AS b\nRUN echo b1 > /b\n"
                                   "FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n")
    cache = tmp_path / "cache"
    build(registry_config, ctx, cache)
    write(df, df.read_text().replace("echo b1", "echo b2"))
    _, meta = build(registry_config, ctx, cache)
    ran = executed(meta)
    assert any("echo b2" in n for n in ran)
    assert not any("echo a1" in n for n in ran)
    assert any("COPY --from=b" in n for n in ran)
    assert not any("COPY --from=a" in n for n in ran)


def test_failing_run_reports_line_exit_code_and_log(registry_config, tmp_path: Path):
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN echo fine\nRUN echo broken-step >&2; exit 42\n")
    proc, meta = build(registry_config, ctx, tmp_path / "cache", check=False)
    assert proc.returncode == 1
    assert "Dockerfile:3" in proc.stderr
    assert "exit code: 42" in proc.stderr
    assert "broken-step" in proc.stderr
    failed = [v for v in meta["llbook.vertices"] if v["error"]]
    assert failed and "RUN echo broken-step" in failed[0]["name"]


def test_sigint_during_long_run_returns_quickly_and_leaves_nothing(registry_config, tmp_path: Path):
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM busybox\nRUN sleep 1013\n")
    cache = tmp_path / "cache"
    write(ctx / "Dockerfile.pull", "FROM busybox\n")
    build(registry_config, ctx, cache, dockerfile=ctx / "Dockerfile.pull")
    mounts_before = _mounts_under(cache)
    proc = subprocess.Popen([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(cache), str(ctx)],
                            env=_env(registry_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not _has_process("sleep 1013"):
        time.sleep(0.1)
    assert _has_process("sleep 1013")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.wait(60)  # a hang detector, far below the 1013 s the RUN would take (no speed assertion)
    assert proc.returncode == 130
    assert not _has_process("sleep 1013")
    assert _mounts_under(cache) == mounts_before == 0
    out = subprocess.run([*LLBOOK, "check", "--cache-dir", str(cache)], env=_env(registry_config),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # `llbook check` ends the containers and bundles of every dead owner on the machine
    # (other tests' killed builds too); this build's own would carry its pid
    ours = [line for line in out.stdout.splitlines() if "leftover" in line
            and (f"-{proc.pid}-" in line or f"mnt-{proc.pid}" in line)]
    assert ours == []


def _mounts_under(root: Path) -> int:
    prefix = str(root).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4].startswith(prefix))


def _has_process(cmdline: str) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                text = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text == cmdline:
            return True
    return False


def _pids_of(cmdline: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                text = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text == cmdline:
            found.append(int(entry))
    return found


def test_kill_9_repeated_then_check_and_build_succeed(registry_config, tmp_path: Path):
    ctx = tmp_path / "ctx"
    write(ctx / "big.txt", "x" * 200_000)
    write(ctx / "Dockerfile", "FROM busybox\nCOPY big.txt /big.txt\nRUN echo step > /step\nRUN sleep 1014\n")
    cache = tmp_path / "cache"
    try:
        for delay in (0.2, 0.6, 1.2, None):
            proc = subprocess.Popen([*LLBOOK, "build", "--progress", "quiet", "--cache-dir", str(cache), str(ctx)],
                                    env=_env(registry_config), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            if delay is None:  # the last one dies while the container runs
                deadline = time.time() + 60
                while time.time() < deadline and not _pids_of("sleep 1014"):
                    time.sleep(0.05)
            else:
                time.sleep(delay)
            proc.kill()
            proc.wait(10)
    finally:
        for pid in _pids_of("sleep 1014"):  # containers of the killed builds (started by this test)
            os.kill(pid, signal.SIGKILL)
    out = subprocess.run([*LLBOOK, "check", "--cache-dir", str(cache)], env=_env(registry_config),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "corrupt" not in out.stdout.lower().replace("corrupt entries", "")
    assert _mounts_under(cache) == 0
    write(ctx / "Dockerfile", "FROM busybox\nCOPY big.txt /big.txt\nRUN echo step > /step\nRUN echo done\n")
    build(registry_config, ctx, cache)
    _, warm = build(registry_config, ctx, cache)
    assert executed(warm) == []


def test_two_concurrent_builds_in_one_cache_dir(registry_config, tmp_path: Path):
    ctx = tmp_path / "ctx"
    write(ctx / "a.txt", "a\n")
    write(ctx / "Dockerfile", "FROM busybox\nCOPY a.txt /a.txt\nRUN sleep 1; echo one > /one\n"
                              "RUN echo two > /two\n")
    cache = tmp_path / "cache"
    metas = [tmp_path / "m1.json", tmp_path / "m2.json"]
    procs = [subprocess.Popen([*LLBOOK, "build", "--progress", "plain", "--cache-dir", str(cache),
                               "--metadata-file", str(m), str(ctx)], env=_env(registry_config),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in metas]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    results = [json.loads(m.read_text()) for m in metas]
    snapshots = {r["llbook.result.snapshot"] for r in results}
    assert len(snapshots) == 1  # the second waited for the first's result instead of building again
    ran = [executed(r) for r in results]
    assert not set(ran[0]) & set(ran[1])  # each step ran in one build; the other waited and reused it
    assert len(set(ran[0]) | set(ran[1])) == 4
    _, third = build(registry_config, ctx, cache)
    assert executed(third) == []
    out = subprocess.run([*LLBOOK, "check", "--cache-dir", str(cache)], env=_env(registry_config),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_no_cache_reruns_everything_and_du_prune_check(registry_config, project: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    build(registry_config, project, cache)
    _, again = build(registry_config, project, cache, "--no-cache")
    ran = executed(again)
    assert "[5/5] RUN echo last > /last" in ran and "[2/5] RUN echo base > /base" in ran
    reasons = [v.get("reasons") for v in again["llbook.vertices"] if v["name"].startswith("[2/5]")][0]
    assert reasons[0]["kind"] == "no-cache"
    env = _env(registry_config)
    du = subprocess.run([*LLBOOK, "du", "--cache-dir", str(cache)], env=env, capture_output=True, text=True)
    assert du.returncode == 0 and "RUN echo base" in du.stdout and "Total:" in du.stdout
    prune = subprocess.run([*LLBOOK, "prune", "--all", "--cache-dir", str(cache)], env=env, capture_output=True,
                           text=True)
    assert prune.returncode == 0, prune.stderr
    assert "Total reclaimed" in prune.stdout
    check = subprocess.run([*LLBOOK, "check", "--cache-dir", str(cache)], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    _, rebuilt = build(registry_config, project, cache)
    assert "[5/5] RUN echo last > /last" in executed(rebuilt)


def test_secret_flag_and_entitlement_refusal(registry_config, tmp_path: Path):
    ctx = tmp_path / "ctx"
    secret = write(tmp_path / "token.txt", "top-secret-token")
    write(ctx / "Dockerfile", "FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len\n")
    cache = tmp_path / "cache"
    proc, _ = build(registry_config, ctx, cache, "--secret", f"id=tok,src={secret}")
    assert "top-secret-token" not in proc.stderr
    write(ctx / "Dockerfile", "FROM busybox\nRUN --network=host echo hi\n")
    proc, _ = build(registry_config, ctx, cache, check=False)
    assert proc.returncode == 1 and "network.host" in proc.stderr and "--allow" in proc.stderr
    build(registry_config, ctx, cache, "--allow", "network.host")


@pytest.mark.parametrize("example", ["hello", "multistage"])
def test_examples_build(registry_config, tmp_path: Path, example: str):
    import shutil
    ctx = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, ctx)
    cache = tmp_path / "cache"
    build(registry_config, ctx, cache)
    _, warm = build(registry_config, ctx, cache)
    assert executed(warm) == []
    if example == "multistage":
        write(ctx / "notes.txt", "edited\n")
        _, edited = build(registry_config, ctx, cache)
        assert [n.split("] ", 1)[1] for n in executed(edited)] == ["COPY notes.txt /data/",
                                                                    "RUN paste /data/words /data/numbers > /data/table"]


def test_outputs_local_and_oci_with_the_embedded_solver(registry_config, project: Path, tmp_path: Path):
    import tarfile
    cache = tmp_path / "cache"
    local = tmp_path / "out-local"
    oci = tmp_path / "out.tar"
    _, meta = build(registry_config, project, cache, "--output", f"type=local,dest={local}",
                    "--output", f"type=oci,dest={oci}", "-t", "example.com/app:1")
    assert (local / "srv" / "copy").read_text() == "main v1\n"
    assert (local / "last").read_text() == "last\n"
    with tarfile.open(oci) as tar:
        names = tar.getnames()
        index = json.loads(tar.extractfile("index.json").read())
    assert "oci-layout" in names and any(n.startswith("blobs/sha256/") for n in names)
    assert index["manifests"][0]["digest"] == meta["containerimage.digest"]
    assert meta["containerimage.config.digest"].startswith("sha256:")


def test_build_contexts_directory_and_oci_layout(registry_config, tmp_path: Path, busybox_images):
    from fixtures.imagebuild import OCILayoutWriter
    extra = tmp_path / "extra"
    write(extra / "data.txt", "from a named context\n")
    layout = tmp_path / "layout"
    OCILayoutWriter(layout).add_image(busybox_images["linux/amd64"], "v1")
    ctx = tmp_path / "ctx"
    write(ctx / "Dockerfile", "FROM base\nCOPY --from=extra /data.txt /data.txt\nRUN cat /data.txt > /seen\n")
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    args = ("--build-context", f"extra={extra}", "--build-context", f"base=oci-layout://{layout}:v1",
            "--platform", "linux/amd64", "--output", f"type=local,dest={out}")
    _, meta = build(registry_config, ctx, cache, *args)
    assert (out / "seen").read_text() == "from a named context\n"
    assert (out / "bin" / "busybox").exists()
    _, warm = build(registry_config, ctx, cache, *args)
    assert executed(warm) == []
    write(extra / "data.txt", "changed\n")
    _, changed = build(registry_config, ctx, cache, *args)
    assert [n.split("] ", 1)[1] for n in executed(changed)] == ["COPY --from=extra /data.txt /data.txt",
                                                                 "RUN cat /data.txt > /seen"]


def test_executor_proot_flag(registry_config, project: Path, tmp_path: Path):
    out = tmp_path / "out"
    proc, meta = build(registry_config, project, tmp_path / "cache", "--executor", "proot",
                       "--output", f"type=local,dest={out}")
    assert (out / "srv" / "copy").read_text() == "main v1\n"
    assert json.loads((tmp_path / "cache" / "executor.json").read_text())["name"] == "proot"


def test_add_url(registry_config, tmp_path: Path):
    import functools
    import http.server
    import threading
    served = tmp_path / "www"
    write(served / "tool.sh", "echo tool v1\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tool.sh"
        ctx = tmp_path / "ctx"
        write(ctx / "Dockerfile", f"FROM busybox\nADD {url} /opt/tool.sh\nRUN sh /opt/tool.sh > /out\n")
        cache, out = tmp_path / "cache", tmp_path / "out"
        build(registry_config, ctx, cache, "--output", f"type=local,dest={out}")
        assert (out / "out").read_text() == "tool v1\n"
        _, warm = build(registry_config, ctx, cache)
        assert executed(warm) == []  # same bytes: the download's content digest is the key
        write(served / "tool.sh", "echo tool v2\n")
        build(registry_config, ctx, cache, "--output", f"type=local,dest={out}")
        assert (out / "out").read_text() == "tool v2\n"
    finally:
        server.shutdown()


def test_unprivileged_user_builds_with_proot_and_native_snapshots(registry_config, tmp_path: Path):
    """What mybinder.org has: no root, no mounts. proot runs RUN, native snapshots copy."""
    import shutil
    import tempfile
    work = Path(tempfile.mkdtemp(prefix="llbook-nobody-"))  # pytest's tmp dirs are private to root
    ctx = work / "ctx"
    write(ctx / "in.txt", "data\n")
    write(ctx / "Dockerfile", "FROM busybox\nCOPY in.txt /in.txt\nRUN cat /in.txt > /out; id -u >> /out\n")
    shutil.copy(registry_config.path, work / "llbook.toml")
    (work / "docker").mkdir()
    for path in [work, *work.rglob("*")]:
        os.chown(path, 65534, 65534)
    try:
        _build_as_nobody(registry_config, work, ctx)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_as_nobody(registry_config, work: Path, ctx: Path) -> None:
    import shutil
    env = _env(registry_config)
    env.update({"HOME": str(work), "LLBOOK_CONFIG": str(work / "llbook.toml"), "DOCKER_CONFIG": str(work / "docker"),
                "XDG_CACHE_HOME": str(work / "xdg")})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # the venv's interpreter lives under /root here; the system Python of the same version
    # runs the same code and packages for another user
    python = shutil.which("python3", path="/usr/bin")
    if python is None or subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                                        capture_output=True, text=True).stdout.strip() != str(sys.version_info[:2]):
        pytest.skip("no system python3 of the same version to run as another user")
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    env["PYTHONPATH"] = f"{ROOT}:{site}"
    cmd = ["runuser", "-u", "nobody", "--", python, "-m", "solver.cli", "build", "--progress", "plain", "--output",
           f"type=local,dest={work / 'out'}", str(ctx)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "out" / "out").read_text() == "data\n0\n"  # proot's fake root
    assert (work / "xdg" / "llbook" / "snapshots" / "driver").read_text().strip() == "native"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=work)
    assert again.returncode == 0 and again.stderr.count("CACHED") >= 3, again.stderr
