"""The extension in a real kernel: cell ids from execute requests, kernel restarts,
interrupts through the kernel manager, text progress in nbconvert-style execution, and
the session's Dockerfile built by docker build."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from kernel_driver import Kernel


@pytest.fixture
def kernel_env(tmp_path: Path, registry_config) -> dict[str, str]:
    env = dict(os.environ)
    env.update(registry_config.env)
    env["LLBOOK_CACHE_DIR"] = str(tmp_path / "cache")
    return env


@pytest.fixture
def kernel(kernel_env, tmp_path: Path):
    k = Kernel(kernel_env, str(tmp_path))
    yield k
    k.shutdown()


def step_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"#\d+ \[", line)]


def test_kernel_restart_then_rerun_all_is_cached(kernel) -> None:
    cells = {"c1": "%%dockerfile\nFROM busybox\nRUN echo one > /one\n",
             "c2": "%%dockerfile\nRUN echo two > /two\nRUN cat /one /two\n"}
    assert kernel.execute("%load_ext kernel_ext").status == "ok"
    for cid, code in cells.items():
        run = kernel.execute(code, cell_id=cid)
        assert run.status == "ok", run.text
    kernel.restart()
    assert kernel.execute("%load_ext kernel_ext").status == "ok"
    for cid, code in cells.items():
        run = kernel.execute(code, cell_id=cid)
        assert run.status == "ok", run.text
        steps = step_lines(run.text)
        assert steps and all(line.split()[-2] == "CACHED" for line in steps), run.text
    summary = kernel.execute("%llb status")
    assert "c2" not in summary.text and summary.text.count(" ok ") == 2, summary.text


def test_rerun_with_same_cell_id_replaces_the_snippet(kernel) -> None:
    kernel.execute("%load_ext kernel_ext")
    kernel.execute("%%dockerfile\nFROM busybox\nRUN echo a > /x\n", cell_id="one")
    kernel.execute("%%dockerfile\nRUN cat /x\n", cell_id="two")
    run = kernel.execute("%%dockerfile\nFROM busybox\nRUN echo b > /x\n", cell_id="one")
    assert "stale: cell 2" in run.text
    text = kernel.execute("%llb dockerfile").text
    assert "echo b" in text and "echo a" not in text


def test_cell_shows_its_build_check_warnings_at_the_cell_line(kernel) -> None:
    loaded = kernel.execute("%load_ext kernel_ext")
    assert loaded.status == "ok" and not loaded.text, loaded.text
    first = kernel.execute("%%dockerfile\nFROM busybox AS Base\nARG greeting=hi\n", cell_id="w1")
    assert first.status == "ok", first.text
    assert "StageNameCasing: Stage name 'Base' should be lowercase (cell 1, line 1)" in first.text
    second = kernel.execute("%%dockerfile\n# the ARG is in cell 1: the checks see the whole session\n"
                            "ENV GREETING=$greting\nENV mode quiet\n", cell_id="w2")
    assert second.status == "ok", second.text
    text = second.text
    assert "2 warnings found:" in text, text
    assert ("UndefinedVar: Usage of undefined variable '$greting' (did you mean $greeting?) (cell 2, line 2)"
            in text), text
    assert "LegacyKeyValueFormat" in text and "(cell 2, line 3)" in text
    assert "cell 2:2" in text and "   2 | >>> ENV GREETING=$greting" in text
    assert "(cell 1, line 1)" not in text  # cell 1's warning is listed under cell 1 only
    # the DAG names the warnings of a vertex's instruction (here the FROM of cell 1)
    assert "warning: StageNameCasing: Stage name 'Base' should be lowercase" in text
    report = kernel.execute("%llb check").text
    assert "Check complete, 3 warnings have been found!" in report, report
    assert "cell 1:1" in report and "   1 | >>> FROM busybox AS Base" in report


def _mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line]


def test_interrupt_stops_a_long_run(kernel, tmp_path: Path) -> None:
    kernel.execute("%load_ext kernel_ext")
    assert kernel.execute("%%dockerfile\nFROM busybox\n", cell_id="base").status == "ok"
    mounts_before = _mounts_under(tmp_path)
    marker = f"llbook-interrupt-{os.getpid()}-{time.monotonic_ns()}"

    def running() -> list[str]:
        return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()

    def interrupt_once_running() -> None:
        deadline = time.monotonic() + 60
        while not running() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        kernel.interrupt()

    timer = threading.Thread(target=interrupt_once_running)
    timer.start()
    run = kernel.execute(f"%%dockerfile\nRUN echo {marker} && sleep 100 && true\n", cell_id="long", timeout=90)
    timer.join()
    assert run.status == "error"
    assert "interrupted" in run.text
    assert _mounts_under(tmp_path) == mounts_before, run.text  # the 90 s timeout is below the RUN's 100 s
    assert running() == []
    assert re.search(r" cell 2 +canceled ", kernel.execute("%llb history").text)  # recorded as interrupted
    # the session stays usable: fix the interrupted cell and run it again
    after = kernel.execute("%%dockerfile\nRUN echo still usable\n", cell_id="long")
    assert after.status == "ok" and "still usable" in after.text


def test_nbconvert_execution_shows_text_progress(registry_config, tmp_path: Path, kernel_env) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext kernel_ext"),
                nbformat.v4.new_code_cell("%%dockerfile\nFROM busybox\nRUN echo from-nbconvert\n")]
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    old = dict(os.environ)
    os.environ.update(kernel_env)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    outputs = nb.cells[1].outputs
    text = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "RUN echo from-nbconvert" in text
    assert "from-nbconvert" in text.split("RUN echo from-nbconvert", 1)[1]
    assert re.search(r"\d+ steps, \d+ cached, [\d.]+ s", text)
    html = "\n".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "llbook-progress" in html


def _tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size if p.is_file() and not p.is_symlink() else 0,
                                              os.readlink(p) if p.is_symlink() else "")
    return out


def test_session_dockerfile_builds_the_same_files_with_docker(kernel, tmp_path: Path, dockerd,
                                                              registry_with_busybox) -> None:
    daemon = dockerd
    kernel.execute("%load_ext kernel_ext")
    cells = ["%%dockerfile\nFROM busybox AS build\nRUN mkdir -p /out && echo built > /out/file\n",
             "%%dockerfile\nFROM busybox\nWORKDIR /app\nCOPY --from=build /out /app/out\n",
             "%%dockerfile\nRUN echo more > /app/more && chmod 600 /app/more && ln -s out/file /app/link\n"]
    for i, code in enumerate(cells):
        assert kernel.execute(code, cell_id=f"d{i}").status == "ok"
    dockerfile = tmp_path / "Dockerfile.session"
    assert kernel.execute(f"%llb dockerfile --write {dockerfile}").status == "ok"
    ours = tmp_path / "ours"
    run = kernel.execute(f"%llb export -o type=local,dest={ours}")
    assert run.status == "ok", run.text
    # docker build needs busybox: pull the same fixture image from the loopback registry.
    mirrored = f"{registry_with_busybox.host}/library/busybox:latest"
    daemon.docker("pull", mirrored)
    daemon.docker("tag", mirrored, "busybox:latest")
    theirs, context = tmp_path / "theirs", tmp_path / "ctx"
    context.mkdir()
    proc = subprocess.run([daemon.client, "build", "--network=host", "-f", str(dockerfile), "-o", str(theirs),
                           str(context)], capture_output=True, text=True,
                          env={**os.environ, "DOCKER_BUILDKIT": "1"})
    assert proc.returncode == 0, proc.stderr
    a, b = _tree(ours), _tree(theirs)
    for path in ("app/out/file", "app/more", "app/link"):
        assert a[path] == b[path], path
    assert {p for p in a if p.startswith("app")} == {p for p in b if p.startswith("app")}
