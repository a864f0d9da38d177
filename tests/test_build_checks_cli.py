"""`llbook build --check`, `--call=check`, and the build-check warnings of a normal build
(buildx's "N warnings found" with line and excerpt, check=error=true, the metadata file),
in subprocesses with a loopback registry for the base image."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LLBOOK = [sys.executable, "-m", "solver.cli"]
ROOT = Path(__file__).resolve().parents[1]
MISTAKES = "FROM busybox as base\nCOPY hello.txt /hello.txt\nCMD cat /hello.txt\n"
FIXED = 'FROM busybox AS base\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n'


@pytest.fixture
def env(registry_config, tmp_path: Path) -> dict[str, str]:
    out = dict(os.environ)
    out.update(registry_config.env)
    out["PYTHONPATH"] = str(ROOT)
    out["LLBOOK_CACHE_DIR"] = str(tmp_path / "cache")
    out.pop("BUILDX_METADATA_WARNINGS", None)
    return out


def project(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "hello.txt").write_text("hello\n")
    return ctx


def llbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LLBOOK, "build", "--progress", "plain", *args], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("flag", [["--check"], ["--call=check"], ["--call", "check"]])
def test_check_exits_1_with_warnings_and_prints_each_with_its_source(env, tmp_path, flag):
    ctx = project(tmp_path, MISTAKES)
    proc = llbook(env, *flag, str(ctx))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert out.startswith("Check complete, 2 warnings have been found!\n"), out
    assert "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n" \
           "'as' and 'FROM' keywords' casing do not match\n" in out
    assert f"{ctx / 'Dockerfile'}:1\n--------------------\n   1 | >>> FROM busybox as base\n" in out
    assert "WARNING: JSONArgsRecommended" in out and "   3 | >>> CMD cat /hello.txt" in out
    assert "built " not in proc.stderr  # checks only: nothing was built


def test_check_exits_0_without_warnings(env, tmp_path):
    proc = llbook(env, "--check", str(project(tmp_path, FIXED)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "Check complete, no warnings found.\n"


def test_check_reports_a_build_error_after_the_warnings(env, tmp_path):
    proc = llbook(env, "--check", str(project(tmp_path, "FROM scratch AS BadName\nMAINTAINER me\nBADCMD\n")))
    assert proc.returncode == 1
    assert proc.stdout.startswith("Check complete, 2 warnings have been found!")
    assert "unknown instruction: BADCMD" in proc.stdout and "   3 | >>> BADCMD" in proc.stdout


def test_build_prints_warnings_after_it_and_in_the_metadata(env, tmp_path):
    ctx = project(tmp_path, MISTAKES)
    meta = tmp_path / "meta.json"
    proc = llbook(dict(env, BUILDX_METADATA_WARNINGS="1"), "--metadata-file", str(meta), str(ctx))
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    tail = err[err.index("\n 2 warnings found:\n"):]
    assert " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n" in tail
    assert " - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related " \
           "to OS signals (line 3)\n" in tail
    assert "   1 | >>> FROM busybox as base" in tail and "   3 | >>> CMD cat /hello.txt" in tail
    warnings = json.loads(meta.read_text())["buildx.build.warnings"]
    assert [base64.b64decode(w["short"]).decode() for w in warnings] == [
        "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
        "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS "
        "signals (line 3)"]
    assert warnings[0]["range"] == [{"start": {"line": 1}, "end": {"line": 1}}]
    quiet_meta = tmp_path / "meta2.json"
    assert llbook(env, "--metadata-file", str(quiet_meta), str(ctx)).returncode == 0
    assert "buildx.build.warnings" not in json.loads(quiet_meta.read_text())  # opt-in, as in buildx


def test_error_true_fails_the_build_and_skip_silences_it(env, tmp_path):
    ctx = project(tmp_path, "# check=error=true\n" + MISTAKES)
    proc = llbook(env, str(ctx))
    assert proc.returncode == 1
    assert "lint violation found for rules: FromAsCasing, JSONArgsRecommended" in proc.stderr
    assert "2 warnings found" in proc.stderr
    skipped = llbook(env, "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all", str(ctx))
    assert skipped.returncode == 0, skipped.stderr
    assert "warnings found" not in skipped.stderr and "warning found" not in skipped.stderr


def test_check_with_a_buildkit_host_runs_the_checks_and_builds_nothing(env, tmp_path):
    # nothing listens on port 9: a build would fail to connect, the checks need no daemon
    proc = llbook(env, "--check", "--buildkit-host", "tcp://127.0.0.1:9", str(project(tmp_path, MISTAKES)))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("Check complete, 2 warnings have been found!"), proc.stdout + proc.stderr
