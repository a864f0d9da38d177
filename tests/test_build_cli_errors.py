"""`llbook build` without a usable context or Dockerfile: one line naming the cause, exit 1,
no traceback (a removed working directory, an unreadable Dockerfile, a context that is
a file or missing), for the embedded solver and a BuildKit daemon alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINES = {"embedded": [], "buildkit": ["--buildkit-host", "unix:///nonexistent/buildkitd.sock"]}


def llbook(*args: str, cwd: Path | None = None, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "solver.cli", "build", *args],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("engine", ENGINES)
def test_removed_working_directory(tmp_path: Path, engine: str) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f'cd "{gone}" && rmdir "{gone}" && exec "$@"'
    proc = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "solver.cli", "build",
                           *ENGINES[engine], "--cache-dir", str(tmp_path / "cache"), "."],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    one_line_error(proc, "current directory no longer exists")


@pytest.mark.parametrize("engine", ENGINES)
def test_context_that_is_a_file_or_missing(tmp_path: Path, engine: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("FROM scratch\n")
    one_line_error(llbook(*ENGINES[engine], str(afile)), str(afile), "is a file")
    one_line_error(llbook(*ENGINES[engine], str(tmp_path / "missing")), "missing", "does not exist")


def test_dockerfile_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "ctx" / "Dockerfile").mkdir(parents=True)
    one_line_error(llbook("--cache-dir", str(tmp_path / "cache"), str(tmp_path / "ctx")),
                   "Dockerfile", "Is a directory")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="drops root's DAC capabilities with setpriv so a mode-000 file is unreadable")
def test_unreadable_dockerfile(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "Dockerfile").chmod(0)
    caps = "-dac_override,-dac_read_search"
    proc = llbook("--cache-dir", str(tmp_path / "cache"), str(ctx),
                  prefix=["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"])
    one_line_error(proc, str(ctx / "Dockerfile"), "Permission denied")
